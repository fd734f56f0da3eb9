#include "model_store/admission.h"

#include <algorithm>
#include <cmath>

namespace headway {

Admission::Admission(const Options& options) : options_(options) {}

int Admission::flood_capacity() const {
  const int per_pass = options_.flood_batch_size > 0
                           ? std::min(options_.flood_batch_size, options_.max_batch_size)
                           : options_.max_batch_size;
  return options_.workers * per_pass;
}

int64_t Admission::Surplus() const {
  return arrivals_.load(std::memory_order_relaxed) -
         answers_.load(std::memory_order_relaxed);
}

int Admission::DeepLimit(const Passes& recent) const {
  int64_t queue = options_.max_queue_size;
  if (recent.time > absl::ZeroDuration()) {
    const int64_t passes = std::max<int64_t>(2, options_.max_queue_wait / recent.time);
    const int64_t per_round =
        std::clamp<int64_t>(std::llround(options_.workers * std::max(1.0, recent.inputs)),
                            1, running_capacity());
    queue = std::min<int64_t>(queue, std::max<int64_t>(kMinQueue, passes * per_round));
  }
  return static_cast<int>(running_capacity() + queue);
}

Admission::Limit Admission::Arrive(const Passes& recent, absl::Time now) {
  arrivals_.fetch_add(1, std::memory_order_relaxed);
  const int64_t surplus = Surplus();
  const int64_t now_ns = absl::ToUnixNanos(now);
  const int64_t step_ns = absl::ToInt64Nanoseconds(kWindowStep);
  int64_t step_ends = step_ends_ns_.load(std::memory_order_relaxed);
  // One caller a step moves the window on; the others read it as it was.
  if (now_ns >= step_ends &&
      step_ends_ns_.compare_exchange_strong(step_ends, now_ns + step_ns)) {
    // After a quiet step or longer, the window starts afresh.
    const bool quiet = now_ns >= step_ends + step_ns;
    surplus_at_window_start_.store(
        quiet ? surplus : surplus_at_step_start_.load(std::memory_order_relaxed),
        std::memory_order_relaxed);
    surplus_at_step_start_.store(surplus, std::memory_order_relaxed);
  }
  const int deep = DeepLimit(recent);
  const int64_t unanswered =
      surplus - surplus_at_window_start_.load(std::memory_order_relaxed);
  Limit limit;
  limit.flooded = unanswered > 2 * static_cast<int64_t>(deep);
  limit.requests = limit.flooded ? std::min(deep, ShallowLimit()) : deep;
  return limit;
}

bool Admission::TryHold(int limit) {
  if (held_.fetch_add(1, std::memory_order_relaxed) < limit) return true;
  held_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

void Admission::Release(bool answered) {
  held_.fetch_sub(1, std::memory_order_relaxed);
  if (answered) answers_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace headway
