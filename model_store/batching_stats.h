// BatchingStats: what a model instance's batcher has done so far; BatchRecord: one
// forward pass, as the batcher reports it to an observer (metrics). Torch-free, so
// model.h can carry them.
#ifndef HEADWAY_MODEL_STORE_BATCHING_STATS_H_
#define HEADWAY_MODEL_STORE_BATCHING_STATS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace headway {

struct BatchingStats {
  int64_t batches = 0;
  int64_t inputs = 0;
  int64_t largest_batch = 0;
  int64_t expired = 0;         // dropped: deadline passed while queued
  int64_t cancelled = 0;       // dropped: client went away while queued
  int64_t refused = 0;         // the queue was full
  int64_t refused_late = 0;    // its deadline would pass before the queue ahead ran
  int64_t shed = 0;            // queued, then refused when a flood began (ShedNewest)
  int64_t failed_answers = 0;  // a task's answer threw (it may not have reached it)
};

struct BatchRecord {
  int64_t inputs = 0;                       // rows in the forward pass
  absl::Duration forward_time;              // the backbone pass
  std::vector<absl::Duration> queue_times;  // per request, queued until taken
};

// Called on a batcher thread after each forward pass, with the model's name and
// device. Must be cheap and thread-safe.
using BatchObserver = std::function<void(const std::string& model,
                                         const std::string& device, const BatchRecord&)>;

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BATCHING_STATS_H_
