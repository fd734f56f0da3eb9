// Head: a model's output layer on the backbone's device, mapping features [N, D] to
// logits [N, C], with one label per class and a version. It comes from a TorchScript
// module, or from a state_dict or training checkpoint holding a linear layer's
// weight [C, D] and bias [C] (for example the "fc." keys of a whole ResNet's
// state_dict). Load checks that the head takes the backbone's D features and warms it
// up.
//
// Immutable after Load; Forward is thread-safe. Shared as shared_ptr<const Head> so a
// request keeps the head it started with while another replaces it.
#ifndef HEADWAY_MODEL_STORE_HEAD_H_
#define HEADWAY_MODEL_STORE_HEAD_H_

#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

struct HeadSpec {
  std::string name;
  // A TorchScript archive, state_dict or training checkpoint, from a file or a request.
  std::string checkpoint;
  // For state_dicts: the linear layer's keys are <key_prefix>weight and
  // <key_prefix>bias.
  std::string key_prefix;
  // One per class. When empty: the checkpoint's labels (class_to_idx, ...) if it has
  // them, else the class indices ("0", "1", ...).
  std::vector<std::string> labels;
  c10::Device device = c10::Device(c10::kCPU);
  // The backbone's feature dimension the head must take.
  int64_t feature_dim = 0;
  int64_t version = 1;
  // Of the checkpoint, labels and key prefix (HeadDigest); carried, not checked.
  std::string digest;
  // Where it came from; carried.
  std::string source;
};

class Head {
 public:
  // INVALID_ARGUMENT when the checkpoint is not a TorchScript module, when the head
  // takes another feature size than spec.feature_dim, or when labels and classes
  // differ in number.
  static absl::StatusOr<std::shared_ptr<const Head>> Load(const HeadSpec& spec);

  // features: [N, D] on the head's device; returns logits [N, C]. Must run under
  // c10::InferenceMode. Failures as Backbone::Forward's: INTERNAL, or
  // RESOURCE_EXHAUSTED when memory runs out.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& features) const;

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const std::string& digest() const { return digest_; }
  const std::string& source() const { return source_; }
  int64_t num_classes() const { return static_cast<int64_t>(labels_.size()); }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  // INVALID_ARGUMENT naming the first parameter or buffer holding NaN or infinity.
  absl::Status CheckFiniteWeights() const;

  Head(std::string name, int64_t version);

  std::string name_;
  // A TorchScript head, or a linear layer's weight and (optional) bias.
  mutable std::optional<torch::jit::Module> module_;  // forward() is thread-safe
  at::Tensor weight_;
  at::Tensor bias_;
  int64_t version_;
  std::string digest_;
  std::string source_;
  std::vector<std::string> labels_;
};

// Reads a labels file: one label per line, class index order; a trailing empty line
// and carriage returns are ignored.
absl::StatusOr<std::vector<std::string>> ReadLabelsFile(
    const std::filesystem::path& path);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_HEAD_H_
