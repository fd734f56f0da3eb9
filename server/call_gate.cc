#include "server/call_gate.h"

#include <algorithm>

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
        NoteActivity();
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

void CallGate::Release() {
  // Noted before the count drops, so that WaitQuiet, once it sees no admitted call,
  // also sees when the last one was answered.
  NoteActivity();
  admitted_.fetch_sub(1);
}

void CallGate::NoteActivity() {
  last_activity_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
}

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

bool CallGate::WaitQuiet(absl::Duration quiet, absl::Time deadline) {
  while (true) {
    const absl::Time quiet_from =
        absl::FromUnixNanos(last_activity_ns_.load(std::memory_order_relaxed)) + quiet;
    const absl::Time now = absl::Now();
    if (now >= quiet_from) return true;
    if (now >= deadline) return false;
    absl::SleepFor(std::min(quiet_from, deadline) - now);
  }
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
