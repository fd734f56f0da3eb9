// Backbone: a TorchScript feature extractor (the network without its output layer) on
// one device. Load probes it with a zero input of the model's shape to learn its
// feature dimension, which also warms it up.
//
// Immutable after Load; Forward is thread-safe (TorchScript modules may run
// concurrently for inference).
#ifndef HEADWAY_MODEL_STORE_BACKBONE_H_
#define HEADWAY_MODEL_STORE_BACKBONE_H_

#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace headway {

class Backbone {
 public:
  // Loads a torch.jit.save archive with every tensor mapped onto `device`.
  // INVALID_ARGUMENT when the file is not a TorchScript module, or when the module
  // fails on, or does not return one feature row per item of, an input of
  // `input_shape` ({C, H, W}).
  static absl::StatusOr<std::unique_ptr<Backbone>> Load(
      const std::filesystem::path& file, c10::Device device,
      const std::vector<int64_t>& input_shape);

  // batch: float [N, C, H, W] on device(). Returns features [N, feature_dim()] on
  // device(). Must run under c10::InferenceMode.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& batch) const;

  int64_t feature_dim() const { return feature_dim_; }
  c10::Device device() const { return device_; }

 private:
  Backbone(torch::jit::Module module, c10::Device device);

  mutable torch::jit::Module module_;  // forward() is not const but is thread-safe
  c10::Device device_;
  int64_t feature_dim_ = 0;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BACKBONE_H_
