// InputView: one request input as the core sees it, free of gRPC and LibTorch types.
// A view: it points into the request's bytes, which must outlive it.
#ifndef HEADWAY_MODEL_STORE_INPUT_H_
#define HEADWAY_MODEL_STORE_INPUT_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace headway {

enum class TensorType {
  kUnspecified,
  // Pixels 0..255, shape [H, W] or [H, W, C], C = 1 (grey) or 3 (RGB order).
  kUint8,
  // A preprocessed model input, shape [C, H, W].
  kFloat32,
};

struct InputView {
  enum class Kind { kEncodedImage, kTensor };

  Kind kind = Kind::kEncodedImage;
  // The encoded image, or the tensor's little-endian row-major elements.
  absl::string_view data;
  // For tensors only.
  TensorType dtype = TensorType::kUnspecified;
  std::vector<int64_t> shape;
};

// Request sizes a server accepts, checked before any work is spent on an input: the
// encoded image's bytes and the pixels it claims (from its header, before decoding),
// and a tensor's elements. Each refusal is INVALID_ARGUMENT naming the limit.
struct InputLimits {
  int max_inputs_per_request = 64;
  int64_t max_image_bytes = int64_t{16} << 20;
  int64_t max_image_pixels = 40'000'000;
  int64_t max_tensor_elements = int64_t{16} << 20;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_INPUT_H_
