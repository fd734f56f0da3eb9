#include "model_store/batch_policy.h"

#include <algorithm>
#include <cmath>

namespace headway {

namespace {

// Waking a waiting worker takes tens of microseconds: a silence shorter than this is
// scheduling noise, not arrivals that stopped.
constexpr absl::Duration kMinSilence = absl::Microseconds(100);

BatchPolicy::Decision RunNow(BatchPolicy::Reason reason) {
  return {true, reason, absl::InfinitePast()};
}

}  // namespace

BatchPolicy::BatchPolicy(const Options& options) : options_(options) {}

void BatchPolicy::NoteArrival(absl::Time at, int64_t inputs) {
  if (arrivals_ > 0) {
    gaps_[(arrivals_ - 1) % kGapsKept] =
        std::max(absl::ZeroDuration(), at - last_arrival_);
  }
  inputs_per_arrival_ = arrivals_ == 0
                            ? static_cast<double>(inputs)
                            : (inputs_per_arrival_ * 7 + static_cast<double>(inputs)) / 8;
  ++arrivals_;
  last_arrival_ = at;
}

absl::Duration BatchPolicy::typical_gap() const {
  const int64_t known = std::min<int64_t>(arrivals_ - 1, kGapsKept);
  if (known < kGapsNeeded) return absl::ZeroDuration();
  std::array<absl::Duration, kGapsKept> sorted = gaps_;
  const auto middle = sorted.begin() + known / 2;
  std::nth_element(sorted.begin(), middle, sorted.begin() + known);
  return *middle;
}

int64_t BatchPolicy::SharingWorkers(int idle_workers) const {
  return options_.adaptive ? std::max(1, idle_workers) : 1;
}

int64_t BatchPolicy::Share(int idle_workers) const {
  const int64_t sharing = SharingWorkers(idle_workers);
  return (options_.max_batch_size + sharing - 1) / sharing;
}

int64_t BatchPolicy::TakeAtMost(int64_t queued_inputs, int idle_workers) const {
  const int64_t sharing = SharingWorkers(idle_workers);
  return std::min<int64_t>(
      options_.max_batch_size,
      std::max(Share(idle_workers), (queued_inputs + sharing - 1) / sharing));
}

absl::Duration BatchPolicy::SilenceLimit(absl::Duration gap) const {
  return std::max(kMinSilence, gap * kSilenceGaps);
}

BatchPolicy::Decision BatchPolicy::Decide(absl::Time now, int64_t queued_inputs,
                                          absl::Time oldest_queued,
                                          int idle_workers) const {
  if (options_.max_batch_size <= 1) return RunNow(Reason::kBatchingOff);
  const int64_t share = Share(idle_workers);
  if (queued_inputs >= share) return RunNow(Reason::kFull);
  const absl::Time delay_over = oldest_queued + options_.max_queue_delay;
  if (now >= delay_over) return RunNow(Reason::kDelayOver);
  if (!options_.adaptive) return {false, Reason::kFilling, delay_over};
  if (arrivals_ - 1 < kGapsNeeded) return RunNow(Reason::kRateUnknown);
  const absl::Duration gap = typical_gap();
  const absl::Time silent_after = last_arrival_ + SilenceLimit(gap);
  if (now >= silent_after) return RunNow(Reason::kArrivalsStopped);
  const double arrivals_needed = std::ceil(static_cast<double>(share - queued_inputs) /
                                           std::max(1.0, inputs_per_arrival_));
  if (last_arrival_ + gap * arrivals_needed > delay_over) {
    return RunNow(Reason::kWouldNotFill);
  }
  return {false, Reason::kFilling, std::min(delay_over, silent_after)};
}

const char* ReasonName(BatchPolicy::Reason reason) {
  switch (reason) {
    case BatchPolicy::Reason::kBatchingOff:
      return "batching off";
    case BatchPolicy::Reason::kFull:
      return "full";
    case BatchPolicy::Reason::kDelayOver:
      return "delay over";
    case BatchPolicy::Reason::kRateUnknown:
      return "rate unknown";
    case BatchPolicy::Reason::kArrivalsStopped:
      return "arrivals stopped";
    case BatchPolicy::Reason::kWouldNotFill:
      return "would not fill";
    case BatchPolicy::Reason::kFilling:
      return "filling";
  }
  return "unknown";
}

}  // namespace headway
