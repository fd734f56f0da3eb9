// StratifiedSplit: the held-out split of labelled examples that head fitting and
// fine-tuning share. Each class's examples are shuffled (seeded) and its first
// round(fraction * n) held out, keeping at least one for training.
//
// Pure function; thread-safe.
#ifndef HEADWAY_MODEL_STORE_EXAMPLE_SPLIT_H_
#define HEADWAY_MODEL_STORE_EXAMPLE_SPLIT_H_

#include <cstdint>
#include <vector>

namespace headway {

struct ExampleSplit {
  std::vector<int64_t> train;       // example indices, grouped by class
  std::vector<int64_t> validation;  // empty when fraction <= 0
};

// `labels`: each example's class in [0, num_classes).
ExampleSplit StratifiedSplit(const std::vector<int>& labels, int num_classes,
                             double fraction, uint64_t seed);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_EXAMPLE_SPLIT_H_
