// Labelled examples as head fitting and fine-tuning take them: IndexLabels turns
// each example's class name into an index, and StratifiedSplit holds some of each
// class out. Each class's examples are shuffled (seeded) and its first
// round(fraction * n) held out, keeping at least one for training.
//
// Pure functions; thread-safe.
#ifndef HEADWAY_MODEL_STORE_EXAMPLE_SPLIT_H_
#define HEADWAY_MODEL_STORE_EXAMPLE_SPLIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace headway {

struct ExampleSplit {
  std::vector<int64_t> train;       // example indices, grouped by class
  std::vector<int64_t> validation;  // empty when fraction <= 0
};

// Each label's index into `classes`; empty `classes` becomes the labels' distinct
// names, sorted. INVALID_ARGUMENT (names shown as EchoName does) for a class listed
// twice, fewer than two classes, a label not among them, or a class without an
// example.
absl::Status IndexLabels(const std::vector<std::string>& labels,
                         std::vector<std::string>& classes, std::vector<int>& indices);

// How many examples each class has. INVALID_ARGUMENT for a label outside
// [0, num_classes) ("example 3 has class 7, not in [0, 5)") or a class without an
// example ("class 4 has no example").
absl::StatusOr<std::vector<int64_t>> ExamplesPerClass(const std::vector<int>& labels,
                                                      int num_classes);

// `labels`: each example's class in [0, num_classes).
ExampleSplit StratifiedSplit(const std::vector<int>& labels, int num_classes,
                             double fraction, uint64_t seed);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_EXAMPLE_SPLIT_H_
