#include "model_store/image_header.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace headway {
namespace {

ImageSize Sized(int64_t width, int64_t height, ImageFormat format) {
  ImageSize size;
  size.width = width;
  size.height = height;
  size.format = format;
  return size;
}

uint32_t Byte(absl::string_view bytes, size_t at) {
  return static_cast<unsigned char>(bytes[at]);
}

uint32_t BigEndian16(absl::string_view bytes, size_t at) {
  return Byte(bytes, at) << 8 | Byte(bytes, at + 1);
}

uint32_t BigEndian32(absl::string_view bytes, size_t at) {
  return BigEndian16(bytes, at) << 16 | BigEndian16(bytes, at + 2);
}

uint32_t LittleEndian16(absl::string_view bytes, size_t at) {
  return Byte(bytes, at) | Byte(bytes, at + 1) << 8;
}

uint32_t LittleEndian24(absl::string_view bytes, size_t at) {
  return LittleEndian16(bytes, at) | Byte(bytes, at + 2) << 16;
}

uint32_t LittleEndian32(absl::string_view bytes, size_t at) {
  return LittleEndian16(bytes, at) | LittleEndian16(bytes, at + 2) << 16;
}

std::optional<ImageSize> PngSize(absl::string_view bytes) {
  // Signature (8 bytes), then the IHDR chunk: length, "IHDR", width, height.
  if (bytes.size() < 24 || bytes.substr(12, 4) != "IHDR") return std::nullopt;
  return Sized(BigEndian32(bytes, 16), BigEndian32(bytes, 20), ImageFormat::kPng);
}

// Walks the JPEG segments up to the first start-of-frame marker, which holds the size.
std::optional<ImageSize> JpegSize(absl::string_view bytes) {
  size_t at = 2;  // after SOI
  while (at + 4 <= bytes.size()) {
    if (Byte(bytes, at) != 0xFF) return std::nullopt;
    const uint32_t marker = Byte(bytes, at + 1);
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no payload
      at += 2;
      continue;
    }
    const uint32_t length = BigEndian16(bytes, at + 2);
    const bool start_of_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
                                marker != 0xC8 && marker != 0xCC;
    if (start_of_frame) {
      if (at + 9 > bytes.size()) return std::nullopt;
      return Sized(BigEndian16(bytes, at + 7), BigEndian16(bytes, at + 5),
                   ImageFormat::kJpeg);
    }
    if (length < 2) return std::nullopt;
    at += 2 + length;
  }
  return std::nullopt;
}

std::optional<ImageSize> BmpSize(absl::string_view bytes) {
  if (bytes.size() < 26) return std::nullopt;
  const int32_t width = static_cast<int32_t>(LittleEndian32(bytes, 18));
  const int32_t height = static_cast<int32_t>(LittleEndian32(bytes, 22));
  // A negative height means rows stored top-down; a negative width means nothing.
  ImageSize size =
      Sized(std::abs(int64_t{width}), std::abs(int64_t{height}), ImageFormat::kBmp);
  if (width < 0) {
    size.problem = "its header gives a negative width";
    return size;
  }
  // Uncompressed (BI_RGB, BI_BITFIELDS) pixels: rows of 4-byte-aligned bits from the
  // data offset on. OpenCV prints a raw line to stderr for a file shorter than that.
  if (bytes.size() >= 34) {
    const uint64_t offset = LittleEndian32(bytes, 10);
    const uint64_t bits = LittleEndian16(bytes, 28);
    const uint32_t compression = LittleEndian32(bytes, 30);
    if (compression == 0 || compression == 3) {
      const uint64_t stride = (size.width * bits + 31) / 32 * 4;
      const uint64_t needed = offset + stride * static_cast<uint64_t>(size.height);
      if (needed > bytes.size()) {
        size.problem = absl::StrCat("the file holds ", bytes.size(),
                                    " bytes; its header needs ", needed, " (truncated)");
        size.corrupt = true;
      }
    }
  }
  return size;
}

std::optional<ImageSize> WebpSize(absl::string_view bytes) {
  if (bytes.size() < 30) return std::nullopt;
  const absl::string_view chunk = bytes.substr(12, 4);
  if (chunk == "VP8X") {
    ImageSize size = Sized(LittleEndian24(bytes, 24) + int64_t{1},
                           LittleEndian24(bytes, 27) + int64_t{1}, ImageFormat::kWebp);
    constexpr uint32_t kAnimation = 0x02;  // in the VP8X flags byte
    if (Byte(bytes, 20) & kAnimation) {
      size.problem = "it is animated; send one frame as a still image";
    }
    return size;
  }
  if (chunk == "VP8 ") {
    return Sized(LittleEndian16(bytes, 26) & 0x3FFF, LittleEndian16(bytes, 28) & 0x3FFF,
                 ImageFormat::kWebp);
  }
  if (chunk == "VP8L") {
    const uint32_t bits = LittleEndian32(bytes, 21);
    return Sized((bits & 0x3FFF) + int64_t{1}, ((bits >> 14) & 0x3FFF) + int64_t{1},
                 ImageFormat::kWebp);
  }
  return std::nullopt;
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kWebp:
      return "WebP";
  }
  return "image";
}

std::optional<ImageSize> PeekImageSize(absl::string_view bytes) {
  if (bytes.substr(0, 8) == absl::string_view("\x89PNG\r\n\x1a\n", 8)) {
    return PngSize(bytes);
  }
  if (bytes.size() >= 3 && Byte(bytes, 0) == 0xFF && Byte(bytes, 1) == 0xD8) {
    return JpegSize(bytes);
  }
  if (bytes.substr(0, 2) == "BM") return BmpSize(bytes);
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "RIFF" &&
      bytes.substr(8, 4) == "WEBP") {
    return WebpSize(bytes);
  }
  return std::nullopt;
}

}  // namespace headway
