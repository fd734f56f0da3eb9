// TLS for the server's ports from PEM files (plaintext, TLS, or mutual TLS: clients
// must present a certificate signed by the given CA), with certificates that can be
// replaced while serving:
//   - ReadTlsMaterial reads the files and checks them (certificates parse, the key
//     matches the first one) before anything serves with them;
//   - GrpcServerTls is the gRPC port's credentials: gRPC's file-watching provider
//     reads the material each second from memory files (memfd) that Update replaces
//     atomically, so a key and its chain change together and no writable folder is
//     needed (the container's root file system is read-only);
//   - MakeHttpsContext builds the HTTPS port's OpenSSL context for the same material.
//
// Functions are stateless and thread-safe; GrpcServerTls::Update is thread-safe.
#ifndef HEADWAY_SERVER_TLS_H_
#define HEADWAY_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace grpc::experimental {
class CertificateProviderInterface;
}  // namespace grpc::experimental

namespace headway {

struct ServerTlsFiles {
  std::string cert_file;       // PEM certificate chain; set means TLS
  std::string key_file;        // its PEM private key
  std::string client_ca_file;  // set means mutual TLS: verify clients against it

  bool tls() const { return !cert_file.empty(); }
};

// INVALID_ARGUMENT for a key without a certificate (or the reverse) or a client CA
// without TLS, naming the flags.
absl::Status CheckTlsFlags(const ServerTlsFiles& files);

// What a TLS port serves with: the files' PEM texts, checked.
struct TlsMaterial {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;  // empty without mutual TLS
  absl::Time not_after;   // when the first certificate of the chain expires

  bool SameFiles(const TlsMaterial& other) const {
    return cert_chain == other.cert_chain && private_key == other.private_key &&
           client_ca == other.client_ca;
  }
};

// Reads `files` (TLS on). NOT_FOUND naming a file that cannot be read;
// INVALID_ARGUMENT naming the file for a chain or client CA without a PEM
// certificate, a key that does not parse (or is encrypted), or a key that does not
// match the chain's first certificate.
absl::StatusOr<TlsMaterial> ReadTlsMaterial(const ServerTlsFiles& files);

struct SslContextFree {
  void operator()(SSL_CTX* context) const;
};
using SslContextPtr = std::unique_ptr<SSL_CTX, SslContextFree>;

// An HTTPS server context for `material`: TLS 1.2 or later, no compression; with a
// client CA, clients must present a certificate it signed (as cpp-httplib's own
// context does).
absl::StatusOr<SslContextPtr> MakeHttpsContext(const TlsMaterial& material);

class GrpcServerTls {
 public:
  // INTERNAL when the memory files cannot be made or read back through /proc.
  static absl::StatusOr<std::unique_ptr<GrpcServerTls>> Create(
      const TlsMaterial& material);
  ~GrpcServerTls();

  GrpcServerTls(const GrpcServerTls&) = delete;
  GrpcServerTls& operator=(const GrpcServerTls&) = delete;

  // For the server's listening port; holds the provider that reads the material.
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }

  // The handshakes after gRPC's next read of the files (within a second) use
  // `material`; connections already made keep theirs. INTERNAL if no memory file can
  // be made (nothing changes then).
  absl::Status Update(const TlsMaterial& material);

 private:
  GrpcServerTls() = default;

  int identity_fd_ = -1;  // the private key, then the chain
  int client_ca_fd_ = -1;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_TLS_H_
