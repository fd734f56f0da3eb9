// PeekImageSize: an encoded image's width and height read from its header alone, so a
// server can refuse an image that claims too many pixels before decoding allocates
// them. Knows PNG, JPEG, BMP and WebP (the formats Headway's preprocessing names);
// other formats and headers too short to hold a size give nullopt.
//
// Pure function of its input; thread-safe.
#ifndef HEADWAY_MODEL_STORE_IMAGE_HEADER_H_
#define HEADWAY_MODEL_STORE_IMAGE_HEADER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace headway {

enum class ImageFormat { kPng, kJpeg, kBmp, kWebp };

// "PNG", "JPEG", "BMP" or "WebP".
const char* ImageFormatName(ImageFormat format);

struct ImageSize {
  int64_t width = 0;
  int64_t height = 0;
  ImageFormat format = ImageFormat::kPng;
  // What the header says that Headway cannot decode (a BMP with a negative width, an
  // animated WebP) or that shows the file is corrupt (a BMP shorter than its pixels);
  // empty when nothing.
  std::string problem;
  bool corrupt = false;  // `problem` says the file is damaged, not unsupported
};

std::optional<ImageSize> PeekImageSize(absl::string_view bytes);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_IMAGE_HEADER_H_
