// Server transport credentials from PEM files: plaintext, TLS, or mutual TLS (clients
// must present a certificate signed by the given CA).
//
// Stateless; thread-safe.
#ifndef HEADWAY_SERVER_TLS_H_
#define HEADWAY_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace headway {

struct ServerTlsFiles {
  std::string cert_file;       // PEM certificate chain; set means TLS
  std::string key_file;        // its PEM private key
  std::string client_ca_file;  // set means mutual TLS: verify clients against it
};

// INVALID_ARGUMENT for a key without a certificate (or the reverse) or a client CA
// without TLS; NOT_FOUND for a file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsFiles& files);

}  // namespace headway

#endif  // HEADWAY_SERVER_TLS_H_
