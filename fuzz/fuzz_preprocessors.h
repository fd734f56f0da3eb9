// Preprocessors the fuzz targets feed their inputs through: one per resize mode, grey
// and colour, with a small pixel limit so each run stays cheap.
#ifndef HEADWAY_FUZZ_FUZZ_PREPROCESSORS_H_
#define HEADWAY_FUZZ_FUZZ_PREPROCESSORS_H_

#include <memory>
#include <vector>

#include "model_store/preprocessor.h"

namespace headway::fuzz {

inline std::unique_ptr<Preprocessor> MakePreprocessor(int channels,
                                                      v1::InputSpec::Resize resize) {
  v1::InputSpec spec;
  spec.set_channels(channels);
  spec.set_height(16);
  spec.set_width(16);
  spec.set_resize(resize);
  spec.set_resize_shorter_side(18);
  spec.add_mean(0.5f);
  spec.add_std(0.25f);
  InputLimits limits;
  limits.max_image_pixels = 1 << 20;
  return *Preprocessor::Create(spec, limits);
}

// Grey with stretch, colour with shorter-side crop, colour with no resize.
inline const std::vector<std::unique_ptr<Preprocessor>>& Preprocessors() {
  static const auto* preprocessors = [] {
    auto* all = new std::vector<std::unique_ptr<Preprocessor>>;
    all->push_back(MakePreprocessor(1, v1::InputSpec::STRETCH));
    all->push_back(MakePreprocessor(3, v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP));
    all->push_back(MakePreprocessor(3, v1::InputSpec::NONE));
    return all;
  }();
  return *preprocessors;
}

}  // namespace headway::fuzz

#endif  // HEADWAY_FUZZ_FUZZ_PREPROCESSORS_H_
