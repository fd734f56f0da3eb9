// BatchingStats: what a model instance's batcher has done so far. Torch-free, so
// model.h can carry it.
#ifndef HEADWAY_MODEL_STORE_BATCHING_STATS_H_
#define HEADWAY_MODEL_STORE_BATCHING_STATS_H_

#include <cstdint>

namespace headway {

struct BatchingStats {
  int64_t batches = 0;
  int64_t inputs = 0;
  int64_t largest_batch = 0;
  int64_t expired = 0;    // dropped: deadline passed while queued
  int64_t cancelled = 0;  // dropped: client went away while queued
  int64_t refused = 0;    // the queue was full
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BATCHING_STATS_H_
