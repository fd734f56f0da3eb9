#include "server/call_gate.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/grpc_status.h"

namespace headway {
namespace {

absl::Status ShuttingDown() {
  return absl::UnavailableError("the server is shutting down; retry on another replica");
}

}  // namespace

CallGate::CallGate(int limit, ServerMetrics* metrics)
    : limit_(limit), metrics_(metrics) {}

bool CallGate::Admit(const char* rpc, grpc::ServerUnaryReactor* reactor) {
  if (phase_.load() != Phase::kOpen) {
    {
      // Read again under the lock: RefuseAll may have taken held_ meanwhile.
      absl::MutexLock lock(&mu_);
      if (phase_.load() == Phase::kHolding) {
        held_.push_back({rpc, reactor});
        return false;
      }
    }
    Answer(rpc, reactor, ShuttingDown());
    return false;
  }
  if (admitted_.fetch_add(1) < limit_) return true;
  admitted_.fetch_sub(1);
  Answer(rpc, reactor,
         absl::ResourceExhaustedError(
             absl::StrCat("the server is answering ", limit_,
                          " requests already, its limit (--max_requests_in_flight); "
                          "retry later or on another replica")));
  return false;
}

void CallGate::Release() { admitted_.fetch_sub(1); }

void CallGate::Hold() {
  absl::MutexLock lock(&mu_);
  if (phase_.load() == Phase::kOpen) phase_.store(Phase::kHolding);
}

bool CallGate::WaitIdle(absl::Time deadline) {
  while (admitted_.load() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

void CallGate::RefuseAll() {
  std::vector<HeldCall> held;
  {
    absl::MutexLock lock(&mu_);
    phase_.store(Phase::kRefusing);
    held.swap(held_);
  }
  for (const HeldCall& call : held) Answer(call.rpc, call.reactor, ShuttingDown());
}

void CallGate::Answer(const char* rpc, grpc::ServerUnaryReactor* reactor,
                      const absl::Status& status) {
  metrics_->RequestStarted();
  metrics_->RequestFinished(rpc, "", "", status.code(), absl::ZeroDuration());
  reactor->Finish(ToGrpcStatus(status));
}

}  // namespace headway
