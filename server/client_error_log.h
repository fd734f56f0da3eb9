// ClientErrorLog: keeps the log readable when a client gets the same error on every
// request (an unknown model, a malformed input). Of each kind of failure (its RPC and
// status code), the first in every interval is logged and the others are counted; the
// next line of that kind says how many were left out since the last (its
// `suppressed` field). Metrics count every failure regardless.
//
// Server faults are not rate-limited here: each is logged.
//
// Thread-safe.
#ifndef HEADWAY_SERVER_CLIENT_ERROR_LOG_H_
#define HEADWAY_SERVER_CLIENT_ERROR_LOG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace headway {

class ClientErrorLog {
 public:
  explicit ClientErrorLog(absl::Duration interval = absl::Seconds(10));

  // Whether a failure of `rpc` with `code`, happening `now`, is to be logged; when it
  // is, `suppressed` is how many of its kind were not logged since the last one.
  bool ShouldLog(absl::string_view rpc, absl::StatusCode code, absl::Time now,
                 int64_t& suppressed);

  // Logs the failure of an `rpc` call: a server fault (server_fault.h) each time
  // (event request_failed_server_fault, error), a client error at this log's rate
  // (request_failed, warning). `model` and `head` are as the request named them,
  // shown as the log may show them (EchoName), empty when it named none.
  void LogFailure(absl::string_view rpc, absl::string_view model, absl::string_view head,
                  const absl::Status& status, absl::Duration latency);

 private:
  struct Kind {
    absl::Time logged = absl::InfinitePast();
    int64_t suppressed = 0;
  };

  const absl::Duration interval_;
  absl::Mutex mu_;
  std::map<std::pair<std::string, absl::StatusCode>, Kind> kinds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace headway

#endif  // HEADWAY_SERVER_CLIENT_ERROR_LOG_H_
