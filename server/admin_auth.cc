#include "server/admin_auth.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/status_macros.h"
#include "model_store/store/model_files.h"

namespace headway {
namespace {

constexpr absl::string_view kBearerPrefix = "Bearer ";

// The verified client certificate's common name, or "" without one.
std::string ClientCommonName(const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  const std::vector<grpc::string_ref> names =
      auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty()) return "";
  return std::string(names.front().data(), names.front().size());
}

}  // namespace

void AdminAuthorizer::ReplaceToken(std::string token) {
  if (!has_token_ || token.empty()) return;
  absl::MutexLock lock(&mu_);
  token_ = std::move(token);
}

bool AdminAuthorizer::TokenMatches(absl::string_view presented) const {
  absl::MutexLock lock(&mu_);
  const std::string& expected = token_;
  if (expected.empty()) return false;
  // Constant time in the token's contents: every byte is compared.
  unsigned char difference = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char byte = i < presented.size() ? presented[i] : 0;
    difference |= byte ^ static_cast<unsigned char>(expected[i]);
  }
  return difference == 0;
}

absl::Status AdminAuthorizer::Authorize(const grpc::ServerContextBase& context) const {
  if (options_.open) return absl::OkStatus();
  if (!enabled()) {
    return absl::PermissionDeniedError(
        "management RPCs are off on this server; start it with --admin_token_file or "
        "--admin_client_cn (or --admin_open on a trusted network)");
  }
  const std::string common_name = ClientCommonName(context);
  if (!common_name.empty() && options_.client_common_names.count(common_name) > 0) {
    return absl::OkStatus();
  }
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  if (header != metadata.end()) {
    const absl::string_view value(header->second.data(), header->second.size());
    if (absl::StartsWith(value, kBearerPrefix) &&
        TokenMatches(value.substr(kBearerPrefix.size()))) {
      return absl::OkStatus();
    }
    return absl::PermissionDeniedError("the admin bearer token is not valid");
  }
  if (!common_name.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("client certificate \"", common_name, "\" is not an admin"));
  }
  return absl::UnauthenticatedError(
      "this RPC changes what the server serves and needs an admin credential: "
      "metadata \"authorization: Bearer <token>\" or an admin client certificate");
}

absl::StatusOr<std::string> ReadAdminTokenFile(const std::string& path) {
  if (path.empty()) return std::string();
  HEADWAY_ASSIGN_OR_RETURN(const std::string contents, ReadFileToString(path));
  std::string token(absl::StripAsciiWhitespace(contents));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin token file ", path, " is empty"));
  }
  return token;
}

}  // namespace headway
