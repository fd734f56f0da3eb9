// Admission: how many requests one model instance holds at once, counted from their
// arrival at the server to their answer, so that overload is refused before any work
// is spent on it (the caller answers RESOURCE_EXHAUSTED at once, naming the limit).
//
// Two limits, one in force at a time:
//  - deep: what the workers run at once (the running capacity: model_workers x
//    max_batch_size) plus a queue of what they answer within max_queue_wait at the
//    recent passes' time and inputs (a model that may batch 8 but runs passes of 2
//    answers 2 a pass), never under two passes' worth nor kMinQueue requests, never
//    over max_queue_size. A closed-loop client (each caller sends its next call when
//    the last is answered) that fits here is never refused, however slow the model.
//  - shallow: the flood capacity twice over (one pass running, the next forming):
//    model_workers x the inputs a pass is given under a flood, which the serving
//    plan bounds by time (ServingPlan::flood_batch_size), so a large model that
//    batches 8 under a closed loop admits a flood about one input per worker. In force
//    while calls flood in: when, within the last window (0.5-1 s), more calls arrived
//    than were answered (refusals count as unanswered) by more than twice the deep limit.
//    An open-loop flood (callers that send whatever the answers do) then gets refusals at
//    once and accepted calls wait about a pass, not the deep queue's second of work; a
//    closed loop, whose arrivals follow its answers, never trips it, nor does a burst of
//    up to twice the deep limit. When arrivals fall back to what is answered, the deep
//    limit is in force again within a window. (Model sheds what the deep queue held
//    beyond one pass when a flood is seen.)
//
// Pure: the caller passes the time and the recent passes, so a test scripts
// arrivals with a fake clock. Thread-safe and lock-free (atomics only): called on
// every request.
#ifndef HEADWAY_MODEL_STORE_ADMISSION_H_
#define HEADWAY_MODEL_STORE_ADMISSION_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace headway {

class Admission {
 public:
  struct Options {
    int workers = 1;
    int max_batch_size = 1;
    // Inputs a pass takes under a flood (at most max_batch_size); 0: max_batch_size.
    int flood_batch_size = 0;
    int max_queue_size = 256;
    absl::Duration max_queue_wait = absl::Seconds(1);
  };

  // The fewest requests the deep queue holds (see above): a machine slowed by a
  // noisy neighbour must not refuse a closed-loop client's calls.
  static constexpr int kMinQueue = 32;
  // Half the window over which arrivals are compared with answers.
  static constexpr absl::Duration kWindowStep = absl::Milliseconds(500);

  explicit Admission(const Options& options);
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  // The model's recent passes: the moving averages of a pass's time (zero while none
  // ran) and of its inputs.
  struct Passes {
    absl::Duration time;
    double inputs = 1;
  };

  struct Limit {
    int requests = 0;
    bool flooded = false;  // the shallow limit
  };

  // Counts a request arriving at `now` and returns the limit in force for it.
  Limit Arrive(const Passes& recent, absl::Time now);

  // Holds one more request if fewer than `limit` are held. Every true needs one
  // Release; `answered` false for a request refused after all (its deadline, a full
  // queue), which counts toward a flood as a refusal here does.
  bool TryHold(int limit);
  void Release(bool answered);

  // The deep limit at the recent passes.
  int DeepLimit(const Passes& recent) const;
  // The shallow limit.
  int ShallowLimit() const { return 2 * flood_capacity(); }
  // What the workers are given at once under a flood (workers x flood_batch_size).
  int flood_capacity() const;
  // What the workers run at once (workers x max_batch_size).
  int running_capacity() const { return options_.workers * options_.max_batch_size; }

  int held() const { return held_.load(std::memory_order_relaxed); }

 private:
  // Calls that arrived and were not answered (yet, or ever: refused ones), so far.
  int64_t Surplus() const;

  const Options options_;
  std::atomic<int> held_{0};
  std::atomic<int64_t> arrivals_{0};
  std::atomic<int64_t> answers_{0};
  // The window: the surplus when it began (a step before the current one) and when
  // the current step began, and when the current step ends (ns since the epoch).
  std::atomic<int64_t> surplus_at_window_start_{0};
  std::atomic<int64_t> surplus_at_step_start_{0};
  std::atomic<int64_t> step_ends_ns_{0};
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_ADMISSION_H_
