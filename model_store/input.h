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

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_INPUT_H_
