#include "server/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ctime>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model_store/status_macros.h"
#include "model_store/store/model_files.h"

namespace headway {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never asks for a passphrase (OpenSSL's default prompts on the terminal).
int NoPassphrase(char*, int, int, void*) { return 0; }

// The PEM certificates in `text`, in order; INVALID_ARGUMENT naming `path` if none.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& text,
                                                       const std::string& path) {
  std::vector<X509Ptr> certificates;
  BioPtr bio = MemoryBio(text);
  while (X509* certificate =
             PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certificates.emplace_back(certificate);
  }
  ERR_clear_error();
  if (certificates.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"));
  }
  return certificates;
}

absl::StatusOr<KeyPtr> ParseKey(const std::string& text, const std::string& path) {
  BioPtr bio = MemoryBio(text);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds no PEM private key that can be read without a passphrase"));
  }
  return key;
}

absl::Time NotAfter(X509* certificate) {
  std::tm expiry{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &expiry) != 1) {
    return absl::InfinitePast();
  }
  return absl::FromTM(expiry, absl::UTCTimeZone());
}

// A memory file holding `text`; its descriptor, or INTERNAL.
absl::StatusOr<int> MemoryFile(const std::string& text) {
  const int fd = memfd_create("headway-tls", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError("cannot make a memory file for TLS material");
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n <= 0) {
      close(fd);
      return absl::InternalError("cannot write TLS material to a memory file");
    }
    written += static_cast<size_t>(n);
  }
  return fd;
}

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// Puts `text` in place of what descriptor `fd` holds, in one step.
absl::Status ReplaceMemoryFile(int fd, const std::string& text) {
  HEADWAY_ASSIGN_OR_RETURN(const int replacement, MemoryFile(text));
  const bool replaced = dup2(replacement, fd) == fd;
  close(replacement);
  if (!replaced) return absl::InternalError("cannot replace a TLS memory file");
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTlsFlags(const ServerTlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert_file and --tls_key_file");
  }
  if (files.cert_file.empty() && !files.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file (mutual TLS) needs --tls_cert_file and --tls_key_file");
  }
  return absl::OkStatus();
}

absl::StatusOr<TlsMaterial> ReadTlsMaterial(const ServerTlsFiles& files) {
  TlsMaterial material;
  HEADWAY_ASSIGN_OR_RETURN(material.cert_chain, ReadFileToString(files.cert_file));
  HEADWAY_ASSIGN_OR_RETURN(material.private_key, ReadFileToString(files.key_file));
  if (!files.client_ca_file.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(material.client_ca, ReadFileToString(files.client_ca_file));
    HEADWAY_RETURN_IF_ERROR(
        ParseCertificates(material.client_ca, files.client_ca_file).status());
  }
  HEADWAY_ASSIGN_OR_RETURN(const std::vector<X509Ptr> chain,
                           ParseCertificates(material.cert_chain, files.cert_file));
  HEADWAY_ASSIGN_OR_RETURN(const KeyPtr key,
                           ParseKey(material.private_key, files.key_file));
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("the private key in ", files.key_file,
                                                   " does not match the certificate in ",
                                                   files.cert_file));
  }
  material.not_after = NotAfter(chain.front().get());
  return material;
}

void SslContextFree::operator()(SSL_CTX* context) const { SSL_CTX_free(context); }

absl::StatusOr<SslContextPtr> MakeHttpsContext(const TlsMaterial& material) {
  const auto failed = [](const char* step) {
    ERR_clear_error();
    return absl::InternalError(absl::StrCat("HTTPS context: ", step));
  };
  SslContextPtr context(SSL_CTX_new(TLS_server_method()));
  if (context == nullptr) return failed("SSL_CTX_new failed");
  SSL_CTX* ctx = context.get();
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  HEADWAY_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                           ParseCertificates(material.cert_chain, "the certificate"));
  HEADWAY_ASSIGN_OR_RETURN(const KeyPtr key, ParseKey(material.private_key, "the key"));
  if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) {
    return failed("the certificate was refused");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
      return failed("a chain certificate was refused");
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return failed("the private key was refused");
  }
  if (!material.client_ca.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(const std::vector<X509Ptr> authorities,
                             ParseCertificates(material.client_ca, "the client CA"));
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (const X509Ptr& authority : authorities) {
      if (X509_STORE_add_cert(store, authority.get()) != 1) {
        return failed("a client CA certificate was refused");
      }
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return context;
}

absl::StatusOr<std::unique_ptr<GrpcServerTls>> GrpcServerTls::Create(
    const TlsMaterial& material) {
  std::unique_ptr<GrpcServerTls> tls(new GrpcServerTls());
  // gRPC reads the key and the chain as two files; one file holding both changes
  // them together.
  HEADWAY_ASSIGN_OR_RETURN(tls->identity_fd_,
                           MemoryFile(material.private_key + "\n" + material.cert_chain));
  if (!material.client_ca.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(tls->client_ca_fd_, MemoryFile(material.client_ca));
  }
  const std::string identity = FdPath(tls->identity_fd_);
  if (access(identity.c_str(), R_OK) != 0) {
    return absl::InternalError(
        absl::StrCat("TLS material in memory cannot be read back through ", identity,
                     " (is /proc mounted?)"));
  }
  constexpr unsigned int kReadEverySeconds = 1;
  tls->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      identity, identity, tls->client_ca_fd_ < 0 ? "" : FdPath(tls->client_ca_fd_),
      kReadEverySeconds);
  grpc::experimental::TlsServerCredentialsOptions options(tls->provider_);
  options.watch_identity_key_cert_pairs();
  if (tls->client_ca_fd_ >= 0) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  tls->credentials_ = grpc::experimental::TlsServerCredentials(options);
  return tls;
}

GrpcServerTls::~GrpcServerTls() {
  credentials_.reset();
  provider_.reset();
  if (identity_fd_ >= 0) close(identity_fd_);
  if (client_ca_fd_ >= 0) close(client_ca_fd_);
}

absl::Status GrpcServerTls::Update(const TlsMaterial& material) {
  if (client_ca_fd_ >= 0 && !material.client_ca.empty()) {
    HEADWAY_RETURN_IF_ERROR(ReplaceMemoryFile(client_ca_fd_, material.client_ca));
  }
  return ReplaceMemoryFile(identity_fd_,
                           material.private_key + "\n" + material.cert_chain);
}

}  // namespace headway
