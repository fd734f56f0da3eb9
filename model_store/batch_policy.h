// BatchPolicy: when an idle batcher worker runs what is queued, and when it waits for
// a fuller batch. Dynamic batching pays only while requests arrive fast enough to fill
// a batch; a request that waits for a batch that will not fill pays the whole queue
// delay for nothing (a lone client at concurrency 1 pays it on every call).
//
// Idle workers share the work: with k workers idle, each aims at a k-th of a full
// batch (its share), so that requests arriving together run on every idle worker side
// by side instead of on one while the others wait. On the CPU, where each worker's
// pass gets its own CPUs, that serves the most.
//
// The policy: a worker runs what is queued at once when
//  - batching is off, or the queue holds its share of a batch;
//  - the oldest waiting request has waited max_queue_delay;
//  - too few arrivals were seen yet to know their rate;
//  - arrivals stopped: the last one is more than a few typical gaps ago; or
//  - at the recent arrival rate the batch would not fill before the delay is up.
// Otherwise it waits, and looks again at the returned time (or when the batch fills).
// The typical gap is the median of the recent gaps between arrivals: closed-loop
// clients send in bursts (a pass's callers all send again when it answers), and the
// median keeps a burst's rate where a mean would mix in the pause before it.
//
// Pure: the caller says when requests arrive and what time it is, so a test scripts
// an arrival pattern with a fake clock. Not thread-safe: the batcher calls it under its
// lock.
#ifndef HEADWAY_MODEL_STORE_BATCH_POLICY_H_
#define HEADWAY_MODEL_STORE_BATCH_POLICY_H_

#include <array>
#include <cstdint>

#include "absl/time/time.h"

namespace headway {

class BatchPolicy {
 public:
  struct Options {
    // Inputs per forward pass; 1 turns batching off.
    int max_batch_size = 1;
    // The longest the oldest waiting request waits for a batch to fill.
    absl::Duration max_queue_delay = absl::ZeroDuration();
    // Off: wait for a full batch or the delay, however slowly requests arrive, with
    // no sharing among idle workers (fixed-delay batching).
    bool adaptive = true;
  };

  enum class Reason {
    kBatchingOff,
    kFull,  // the queue holds the worker's share of a batch
    kDelayOver,
    kRateUnknown,
    kArrivalsStopped,
    kWouldNotFill,
    kFilling,  // the one reason to wait
  };

  struct Decision {
    bool run_now = true;
    Reason reason = Reason::kBatchingOff;
    // When waiting: decide again at this time at the latest.
    absl::Time decide_again = absl::InfinitePast();
  };

  explicit BatchPolicy(const Options& options);

  // A request of `inputs` inputs arrived at `at` (times never decrease).
  void NoteArrival(absl::Time at, int64_t inputs);

  // What an idle worker does with `queued_inputs` waiting, the oldest queued at
  // `oldest_queued`, `idle_workers` idle (itself included).
  Decision Decide(absl::Time now, int64_t queued_inputs, absl::Time oldest_queued,
                  int idle_workers = 1) const;

  // The most inputs a worker that runs now takes: its share of a batch, or of what
  // is queued when that is more, and never over max_batch_size.
  int64_t TakeAtMost(int64_t queued_inputs, int idle_workers) const;

  // The median of the recent gaps between arrivals; zero until enough were seen.
  absl::Duration typical_gap() const;

  // Arrivals that stay within this many typical gaps of each other are still coming.
  static constexpr int kSilenceGaps = 3;
  // Gaps remembered, and the fewest that give a rate.
  static constexpr int kGapsKept = 16;
  static constexpr int kGapsNeeded = 3;

 private:
  // The workers that split a batch: the idle ones when adaptive, else one.
  int64_t SharingWorkers(int idle_workers) const;
  // A worker's share of a full batch when `idle_workers` are idle.
  int64_t Share(int idle_workers) const;
  // How long after the last arrival arrivals count as stopped.
  absl::Duration SilenceLimit(absl::Duration gap) const;

  const Options options_;
  std::array<absl::Duration, kGapsKept> gaps_;
  int64_t arrivals_ = 0;
  absl::Time last_arrival_ = absl::InfinitePast();
  // A moving average of inputs per request, to count arrivals still needed.
  double inputs_per_arrival_ = 1;
};

// "full", "delay over", ...: for logs and test messages.
const char* ReasonName(BatchPolicy::Reason reason);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BATCH_POLICY_H_
