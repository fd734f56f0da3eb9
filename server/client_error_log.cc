#include "server/client_error_log.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model_store/server_fault.h"
#include "server/event_log.h"

namespace headway {

ClientErrorLog::ClientErrorLog(absl::Duration interval) : interval_(interval) {}

bool ClientErrorLog::ShouldLog(absl::string_view rpc, absl::StatusCode code,
                               absl::Time now, int64_t& suppressed) {
  absl::MutexLock lock(&mu_);
  // The kinds are bounded: RPC names are the server's own, codes are 17.
  Kind& kind = kinds_[{std::string(rpc), code}];
  if (now - kind.logged < interval_) {
    ++kind.suppressed;
    return false;
  }
  suppressed = kind.suppressed;
  kind.suppressed = 0;
  kind.logged = now;
  return true;
}

void ClientErrorLog::LogFailure(absl::string_view rpc, absl::string_view model,
                                absl::string_view head, const absl::Status& status,
                                absl::Duration latency) {
  const bool server_fault = IsServerFault(status);
  int64_t suppressed = 0;
  if (!server_fault && !ShouldLog(rpc, status.code(), absl::Now(), suppressed)) return;
  LogEvent(server_fault ? LogLevel::kError : LogLevel::kWarning,
           server_fault ? "request_failed_server_fault" : "request_failed",
           {{"rpc", std::string(rpc)},
            {"model", std::string(model)},
            {"head", std::string(head)},
            {"code", absl::StatusCodeToString(status.code())},
            {"duration_ms", absl::StrCat(absl::ToDoubleMilliseconds(latency))},
            {"suppressed", absl::StrCat(suppressed)},
            {"message", std::string(status.message())}});
}

}  // namespace headway
