// Fuzzes what an inference request goes through before a model sees it: protobuf
// parsing of a ClassifyRequest, the server's wire-to-core input conversion, and
// preprocessing of each input for a greyscale and a colour model.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "headway/v1/inference.pb.h"
#include "model_store/preprocessor.h"
#include "server/request_inputs.h"

namespace {

std::unique_ptr<headway::Preprocessor> MakePreprocessor(
    int channels, headway::v1::InputSpec::Resize resize) {
  headway::v1::InputSpec spec;
  spec.set_channels(channels);
  spec.set_height(20);
  spec.set_width(20);
  spec.set_resize(resize);
  spec.set_resize_shorter_side(24);
  spec.add_mean(0.5f);
  spec.add_std(0.25f);
  headway::InputLimits limits;
  limits.max_image_pixels = 1 << 20;  // keep each run small
  return *headway::Preprocessor::Create(spec, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* grey =
      MakePreprocessor(1, headway::v1::InputSpec::STRETCH).release();
  static const auto* colour =
      MakePreprocessor(3, headway::v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP)
          .release();
  headway::v1::ClassifyRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const absl::StatusOr<std::vector<headway::InputView>> inputs =
      headway::ToInputViews(request.inputs());
  if (!inputs.ok()) return 0;
  for (const headway::InputView& input : *inputs) {
    grey->Process(input).IgnoreError();
    colour->Process(input).IgnoreError();
  }
  return 0;
}
