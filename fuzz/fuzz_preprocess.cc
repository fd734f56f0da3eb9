// Fuzzes image decoding and preprocessing with raw bytes: the header size check, the
// truncated-JPEG check, OpenCV's decoders, and each resize mode.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_preprocessors.h"
#include "model_store/image_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  headway::PeekImageSize(bytes);
  headway::InputView input;
  input.kind = headway::InputView::Kind::kEncodedImage;
  input.data = bytes;
  for (const auto& preprocessor : headway::fuzz::Preprocessors()) {
    preprocessor->Process(input).IgnoreError();
  }
  return 0;
}
