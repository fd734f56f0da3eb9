// Preprocessor turns request inputs into the backbone's input tensor [C, H, W] (float,
// CPU), following a model's InputSpec: OpenCV decodes images (JPEG, PNG, BMP, WebP),
// then colour conversion, resize or centre crop, scaling to [0, 1] and per-channel
// normalisation. Raw uint8 pixel tensors take the same path; float32 tensors are taken
// as already preprocessed and only checked.
//
// Immutable after Create; Process is thread-safe.
#ifndef HEADWAY_MODEL_STORE_PREPROCESSOR_H_
#define HEADWAY_MODEL_STORE_PREPROCESSOR_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "headway/v1/model_config.pb.h"
#include "model_store/input.h"

namespace headway {

class Preprocessor {
 public:
  // `spec` must be valid with defaults filled, as ReadModelConfig returns it.
  static absl::StatusOr<std::unique_ptr<Preprocessor>> Create(
      const v1::InputSpec& spec, const InputLimits& limits = InputLimits());

  // INVALID_ARGUMENT, naming the problem, for undecodable or truncated images, wrong
  // tensor shapes, types or sizes, NaN or infinite floats, and inputs over a limit
  // (naming the limit; an image's pixels are checked from its header, before decoding).
  absl::StatusOr<at::Tensor> Process(const InputView& input) const;

  // {C, H, W}.
  const std::vector<int64_t>& input_shape() const { return input_shape_; }

 private:
  Preprocessor(const v1::InputSpec& spec, const InputLimits& limits);

  v1::InputSpec spec_;
  InputLimits limits_;
  std::vector<int64_t> input_shape_;
  // Per channel: the normalised value is pixel * scale_ + offset_.
  std::vector<float> scale_;
  std::vector<float> offset_;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_PREPROCESSOR_H_
