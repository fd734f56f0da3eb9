#include "server/client_error_log.h"

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

}  // namespace headway
