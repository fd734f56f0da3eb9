#include "client/connection_flags.h"

#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificate to verify the server with; set means TLS.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate, for servers that require mutual TLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry, when not the target's host.");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the admin bearer token that management commands send.");

namespace headway {

TlsOptions TlsOptionsFromFlags() {
  TlsOptions tls;
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  return tls;
}

absl::StatusOr<std::string> AdminTokenFromFlags() {
  const std::string path = absl::GetFlag(FLAGS_admin_token_file);
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot read admin token file ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(contents.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin token file ", path, " is empty"));
  }
  return token;
}

std::function<bool(absl::string_view)> ConnectionFlagsInHelp(
    absl::string_view main_file) {
  return [main_file = std::string(main_file)](absl::string_view file) {
    return absl::EndsWith(file, main_file) || absl::EndsWith(file, "connection_flags.cc");
  };
}

}  // namespace headway
