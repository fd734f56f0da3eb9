#include "model_store/example_split.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "model_store/model_config.h"

namespace headway {

absl::Status IndexLabels(const std::vector<std::string>& labels,
                         std::vector<std::string>& classes, std::vector<int>& indices) {
  if (classes.empty()) {
    classes = labels;
    std::sort(classes.begin(), classes.end());
    classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  }
  std::map<std::string, int> index;
  for (size_t c = 0; c < classes.size(); ++c) {
    if (!index.emplace(classes[c], static_cast<int>(c)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("class \"", EchoName(classes[c]), "\" is listed twice"));
    }
  }
  if (classes.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "at least two classes are needed; the examples have ", classes.size(),
        classes.size() == 1 ? absl::StrCat(" (\"", EchoName(classes[0]), "\")") : ""));
  }
  std::vector<int64_t> counts(classes.size(), 0);
  indices.clear();
  for (size_t i = 0; i < labels.size(); ++i) {
    auto found = index.find(labels[i]);
    if (found == index.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("example ", i, " has label \"", EchoName(labels[i]),
                       "\", which is not among the classes"));
    }
    indices.push_back(found->second);
    ++counts[found->second];
  }
  for (size_t c = 0; c < classes.size(); ++c) {
    if (counts[c] == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("class \"", EchoName(classes[c]), "\" has no example"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ExamplesPerClass(const std::vector<int>& labels,
                                                      int num_classes) {
  std::vector<int64_t> per_class(std::max(0, num_classes), 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "example ", i, " has class ", labels[i], ", not in [0, ", num_classes, ")"));
    }
    ++per_class[labels[i]];
  }
  for (int c = 0; c < num_classes; ++c) {
    if (per_class[c] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("class ", c, " has no example"));
    }
  }
  return per_class;
}

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
