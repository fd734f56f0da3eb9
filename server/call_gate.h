// CallGate: admission of inference calls, from arrival to answer, for every service
// that runs inference.
//
// Open: at most `limit` calls are admitted at once (queued for a worker,
// preprocessing, waiting for a batch or running); a call beyond that gets
// RESOURCE_EXHAUSTED at once, naming --max_requests_in_flight, so overload is shed
// instead of piling up in front of the batchers.
//
// Shutting down, the server closes the gate in two steps so that no client sees
// CANCELLED. Hold(): calls that arrive from then on are held unanswered (a closed-loop
// client sends nothing more), while the admitted ones finish (WaitIdle) and the calls
// their answers set off arrive and are held too (WaitQuiet). The server then stops
// gRPC, which tells clients to go away (GOAWAY); gRPC cancels calls that reach it
// after that point before any handler sees them, and held clients have none on the
// wire. RefuseAll() then answers the held calls, and any later one, UNAVAILABLE, which
// clients retry on another replica.
//
// Thread-safe. The metrics must outlive it.
#ifndef HEADWAY_SERVER_CALL_GATE_H_
#define HEADWAY_SERVER_CALL_GATE_H_

#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/server_metrics.h"

namespace headway {

class CallGate {
 public:
  CallGate(int limit, ServerMetrics* metrics);
  CallGate(const CallGate&) = delete;
  CallGate& operator=(const CallGate&) = delete;

  // True when the call is admitted: the caller runs it and calls Release() once it is
  // answered. Otherwise the gate answers or holds the call (counted in the metrics).
  bool Admit(const char* rpc, grpc::ServerUnaryReactor* reactor);
  void Release();

  // Calls that arrive from now on are held until RefuseAll().
  void Hold();
  // Waits until no admitted call is left, or until `deadline`; true when none is.
  bool WaitIdle(absl::Time deadline);
  // Waits until `quiet` has passed since the last answer to an admitted call and the
  // last held arrival, or until `deadline`; true when it has.
  bool WaitQuiet(absl::Duration quiet, absl::Time deadline);
  // Answers every held call, and every later one, UNAVAILABLE.
  void RefuseAll();

 private:
  enum class Phase { kOpen, kHolding, kRefusing };
  struct HeldCall {
    const char* rpc;
    grpc::ServerUnaryReactor* reactor;
  };

  void Answer(const char* rpc, grpc::ServerUnaryReactor* reactor,
              const absl::Status& status);
  // Notes that an admitted call was answered or a call was held.
  void NoteActivity();

  const int limit_;
  ServerMetrics* const metrics_;
  std::atomic<int> admitted_{0};
  std::atomic<Phase> phase_{Phase::kOpen};
  // absl::GetCurrentTimeNanos() of the last NoteActivity().
  std::atomic<int64_t> last_activity_ns_{0};
  absl::Mutex mu_;
  std::vector<HeldCall> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace headway

#endif  // HEADWAY_SERVER_CALL_GATE_H_
