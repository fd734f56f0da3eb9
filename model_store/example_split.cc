#include "model_store/example_split.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace headway {

ExampleSplit StratifiedSplit(const std::vector<int>& labels, int num_classes,
                             double fraction, uint64_t seed) {
  std::vector<std::vector<int64_t>> by_class(num_classes);
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);
  std::mt19937_64 random(seed);
  ExampleSplit split;
  for (std::vector<int64_t>& members : by_class) {
    std::shuffle(members.begin(), members.end(), random);
    const int64_t wanted =
        fraction > 0 ? static_cast<int64_t>(std::lround(fraction * members.size())) : 0;
    const int64_t held =
        std::max<int64_t>(0, std::min<int64_t>(wanted, members.size() - 1));
    split.validation.insert(split.validation.end(), members.begin(),
                            members.begin() + held);
    split.train.insert(split.train.end(), members.begin() + held, members.end());
  }
  return split;
}

}  // namespace headway
