#include "server/tls.h"

#include "absl/strings/str_cat.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "model_store/store/model_files.h"

namespace headway {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert_file and --tls_key_file");
  }
  if (files.cert_file.empty()) {
    if (!files.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file (mutual TLS) needs --tls_cert_file and --tls_key_file");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  HEADWAY_ASSIGN_OR_RETURN(pair.cert_chain, ReadFileToString(files.cert_file));
  HEADWAY_ASSIGN_OR_RETURN(pair.private_key, ReadFileToString(files.key_file));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!files.client_ca_file.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFileToString(files.client_ca_file));
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace headway
