#include "model_store/image_codecs.h"

// clang-format off
#include <cstdio>   // jpeglib.h needs FILE declared first
#include <jpeglib.h>
// clang-format on
#include <png.h>
#include <webp/decode.h>

#include <csetjmp>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace headway {
namespace {

// --- JPEG ---------------------------------------------------------------------

// libjpeg's error manager, extended: errors and warnings both end the decode, through
// longjmp back to DecodeJpeg, with the library's message.
struct JpegErrors {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

[[noreturn]] void OnJpegError(j_common_ptr info) {
  auto* errors = reinterpret_cast<JpegErrors*>(info->err);
  info->err->format_message(info, errors->message);
  std::longjmp(errors->jump, 1);
}

void OnJpegMessage(j_common_ptr info, int level) {
  if (level < 0) OnJpegError(info);  // a warning: corrupt data, a premature end
}

// --- PNG ----------------------------------------------------------------------

struct PngInput {
  const unsigned char* data;
  size_t size;
  size_t position = 0;
  std::string message;  // the first error or warning
};

void ReadPng(png_structp png, png_bytep out, png_size_t length) {
  auto* input = static_cast<PngInput*>(png_get_io_ptr(png));
  if (input->size - input->position < length) {
    png_error(png, "the data ends early (a truncated PNG, or one without IEND)");
  }
  std::memcpy(out, input->data + input->position, length);
  input->position += length;
}

[[noreturn]] void OnPngError(png_structp png, png_const_charp message) {
  auto* input = static_cast<PngInput*>(png_get_error_ptr(png));
  if (input->message.empty()) input->message = message;
  png_longjmp(png, 1);
}

// A warning (a bad CRC in an ancillary chunk, extra data) ends the decode too.
void OnPngWarning(png_structp png, png_const_charp message) { OnPngError(png, message); }

// --- WebP ---------------------------------------------------------------------

// What libwebp's status says of the file.
absl::Status WebpError(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError("out of memory decoding a WebP");
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return absl::InvalidArgumentError(
          "unsupported WebP: it uses a feature libwebp cannot decode");
    case VP8_STATUS_BITSTREAM_ERROR:
      return absl::InvalidArgumentError(
          "corrupt WebP: libwebp finds its bitstream corrupt");
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return absl::InvalidArgumentError("corrupt WebP: the data ends early");
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt WebP: libwebp cannot read it (status ",
                       static_cast<int>(status), ")"));
  }
}

}  // namespace

absl::StatusOr<cv::Mat> DecodeWebp(absl::string_view bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  WebPBitstreamFeatures features;
  if (const VP8StatusCode status = WebPGetFeatures(data, bytes.size(), &features);
      status != VP8_STATUS_OK) {
    return WebpError(status);
  }
  if (features.has_animation) {
    return absl::InvalidArgumentError(
        "unsupported WebP: it is animated; send one frame as a still image");
  }
  // 8-bit BGR, alpha dropped, as OpenCV's WebP decoder gives for IMREAD_COLOR.
  cv::Mat image(features.height, features.width, CV_8UC3);
  if (WebPDecodeBGRInto(data, bytes.size(), image.data, image.total() * image.elemSize(),
                        static_cast<int>(image.step)) == nullptr) {
    return absl::InvalidArgumentError(
        "corrupt WebP: its header reads, but its image data cannot be decoded");
  }
  return image;
}

absl::StatusOr<cv::Mat> DecodeJpeg(absl::string_view bytes) {
  // Everything with a destructor lives outside the setjmp region.
  cv::Mat image;
  jpeg_decompress_struct info;
  JpegErrors errors;
  info.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = OnJpegError;
  errors.manager.emit_message = OnJpegMessage;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&info);
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG: ", errors.message));
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  // CMYK and YCCK (Adobe) JPEGs convert only to CMYK in libjpeg: OpenCV's decoder
  // handles those.
  const bool cmyk =
      info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_BGR;
  jpeg_start_decompress(&info);
  image.create(static_cast<int>(info.output_height), static_cast<int>(info.output_width),
               CV_8UC(info.output_components));
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image.ptr(static_cast<int>(info.output_scanline));
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);  // reads up to the end-of-image marker, no further
  jpeg_destroy_decompress(&info);
  if (cmyk) {
    // Adobe writes CMYK inverted: each channel is 255 - ink.
    cv::Mat bgr(image.rows, image.cols, CV_8UC3);
    for (int y = 0; y < image.rows; ++y) {
      const unsigned char* in = image.ptr(y);
      unsigned char* out = bgr.ptr(y);
      for (int x = 0; x < image.cols; ++x, in += 4, out += 3) {
        out[0] = static_cast<unsigned char>(in[2] * in[3] / 255);
        out[1] = static_cast<unsigned char>(in[1] * in[3] / 255);
        out[2] = static_cast<unsigned char>(in[0] * in[3] / 255);
      }
    }
    return bgr;
  }
  return image;
}

absl::StatusOr<cv::Mat> DecodePng(absl::string_view bytes) {
  cv::Mat image;
  std::vector<png_bytep> rows;
  PngInput input{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0,
                 ""};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &input, OnPngError, OnPngWarning);
  if (png == nullptr) return absl::ResourceExhaustedError("cannot start a PNG decoder");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::InvalidArgumentError(absl::StrCat("corrupt PNG: ", input.message));
  }
  png_set_read_fn(png, &input, ReadPng);
  // Benign errors (an ancillary chunk's bad CRC) are errors here.
  png_set_benign_errors(png, 0);
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  // 8-bit BGR whatever the source, with the transforms OpenCV's decoder uses.
  const png_byte color = png_get_color_type(png, info);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color & PNG_COLOR_MASK_COLOR) == 0) {
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
  }
  png_set_packing(png);
  png_set_bgr(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  image.create(static_cast<int>(height), static_cast<int>(width), CV_8UC3);
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.ptr(static_cast<int>(y));
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);  // the chunks after the image, up to IEND
  png_destroy_read_struct(&png, &info, nullptr);
  return image;
}

}  // namespace headway
