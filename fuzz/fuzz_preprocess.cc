// Fuzzes image decoding and preprocessing with raw bytes: the header size check, the
// truncated-JPEG check, OpenCV's decoders, and each resize mode.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "model_store/image_header.h"
#include "model_store/preprocessor.h"

namespace {

std::unique_ptr<headway::Preprocessor> MakePreprocessor(
    int channels, headway::v1::InputSpec::Resize resize) {
  headway::v1::InputSpec spec;
  spec.set_channels(channels);
  spec.set_height(16);
  spec.set_width(16);
  spec.set_resize(resize);
  spec.set_resize_shorter_side(18);
  spec.add_mean(0.5f);
  spec.add_std(0.25f);
  headway::InputLimits limits;
  limits.max_image_pixels = 1 << 20;
  return *headway::Preprocessor::Create(spec, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* preprocessors = new std::unique_ptr<headway::Preprocessor>[] {
    MakePreprocessor(1, headway::v1::InputSpec::STRETCH),
        MakePreprocessor(3, headway::v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP),
        MakePreprocessor(3, headway::v1::InputSpec::NONE),
  };
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  headway::PeekImageSize(bytes);
  headway::InputView input;
  input.kind = headway::InputView::Kind::kEncodedImage;
  input.data = bytes;
  for (int i = 0; i < 3; ++i) preprocessors[i]->Process(input).IgnoreError();
  return 0;
}
