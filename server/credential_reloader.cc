#include "server/credential_reloader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model_store/thread_name.h"
#include "server/admin_auth.h"
#include "server/event_log.h"

namespace headway {
namespace {

std::string TlsFileList(const ServerTlsFiles& files) {
  std::string list = absl::StrCat(files.cert_file, ",", files.key_file);
  if (!files.client_ca_file.empty()) absl::StrAppend(&list, ",", files.client_ca_file);
  return list;
}

}  // namespace

CredentialReloader::CredentialReloader(Options options, std::optional<TlsMaterial> tls,
                                       std::string admin_token)
    : options_(std::move(options)),
      tls_(std::move(tls)),
      admin_token_(std::move(admin_token)) {
  if (tls_.has_value() && options_.metrics != nullptr) {
    options_.metrics->SetTlsCertificateExpiry(tls_->not_after);
  }
  const bool follows = tls_.has_value() || !options_.admin_token_file.empty();
  if (follows && options_.poll_interval != absl::InfiniteDuration()) {
    thread_ = std::thread([this] { Run(); });
  }
}

CredentialReloader::~CredentialReloader() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void CredentialReloader::Run() {
  NameThisThread("hw-credentials");
  while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval)) CheckNow();
}

void CredentialReloader::CheckNow() {
  absl::MutexLock lock(&mu_);
  CheckTlsLocked();
  CheckAdminTokenLocked();
}

void CredentialReloader::CheckTlsLocked() {
  if (!tls_.has_value()) return;
  absl::StatusOr<TlsMaterial> read = ReadTlsMaterial(options_.tls);
  if (!read.ok()) return RefuseLocked("tls", read.status(), last_tls_refusal_);
  if (read->SameFiles(*tls_)) {
    last_tls_refusal_.clear();
    return;
  }
  if (read->not_after < absl::Now()) {
    return RefuseLocked("tls",
                        absl::InvalidArgumentError(absl::StrCat(
                            "the certificate in ", options_.tls.cert_file, " expired at ",
                            absl::FormatTime(read->not_after, absl::UTCTimeZone()))),
                        last_tls_refusal_);
  }
  if (absl::Status replaced = options_.replace_tls(*read); !replaced.ok()) {
    return RefuseLocked("tls", replaced, last_tls_refusal_);
  }
  tls_ = *std::move(read);
  last_tls_refusal_.clear();
  if (options_.metrics != nullptr) {
    options_.metrics->RecordCredentialReload("tls", true);
    options_.metrics->SetTlsCertificateExpiry(tls_->not_after);
  }
  LogEvent(LogLevel::kInfo, "credentials_reloaded",
           {{"credential", "tls"},
            {"files", TlsFileList(options_.tls)},
            {"not_after", absl::FormatTime(tls_->not_after, absl::UTCTimeZone())}});
}

void CredentialReloader::CheckAdminTokenLocked() {
  if (options_.admin_token_file.empty()) return;
  absl::StatusOr<std::string> token = ReadAdminTokenFile(options_.admin_token_file);
  if (!token.ok())
    return RefuseLocked("admin_token", token.status(), last_token_refusal_);
  last_token_refusal_.clear();
  if (*token == admin_token_) return;
  options_.replace_admin_token(*token);
  admin_token_ = *std::move(token);
  if (options_.metrics != nullptr) {
    options_.metrics->RecordCredentialReload("admin_token", true);
  }
  // The token itself is never logged.
  LogEvent(LogLevel::kInfo, "credentials_reloaded",
           {{"credential", "admin_token"}, {"file", options_.admin_token_file}});
}

void CredentialReloader::RefuseLocked(const char* credential, const absl::Status& why,
                                      std::string& last_refusal) {
  const std::string message(why.message());
  if (message == last_refusal) return;
  last_refusal = message;
  if (options_.metrics != nullptr) {
    options_.metrics->RecordCredentialReload(credential, false);
  }
  LogEvent(LogLevel::kWarning, "credentials_refused",
           {{"credential", credential}, {"error", message}});
}

}  // namespace headway
