#include "model_store/preprocessor.h"

#include <torch/types.h>

#include <cmath>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "model_store/cerr_capture.h"
#include "model_store/finite_floats.h"
#include "model_store/image_codecs.h"
#include "model_store/image_header.h"
#include "model_store/status_macros.h"

namespace headway {
namespace {

// Refuses an image that is not PNG, JPEG, BMP or WebP, or whose header claims more
// pixels than `max_pixels`, before decoding. Other bytes never reach OpenCV, whose
// fallback decoders (GDAL and the libraries behind it) can abort on crafted input.
absl::StatusOr<ImageFormat> CheckImageHeader(absl::string_view bytes,
                                             int64_t max_pixels) {
  const std::optional<ImageSize> size = PeekImageSize(bytes);
  if (!size.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot decode image (", bytes.size(),
                     " bytes): expected JPEG, PNG, BMP or WebP"));
  }
  if (!size->problem.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(size->corrupt ? "corrupt " : "unsupported ",
                     ImageFormatName(size->format), ": ", size->problem));
  }
  if (size->width <= 0 || size->height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image header claims ", size->width, "x", size->height, " pixels"));
  }
  // Header sizes are at most 32 bits each, so their product fits in 64 unsigned bits.
  const uint64_t pixels =
      static_cast<uint64_t>(size->width) * static_cast<uint64_t>(size->height);
  if (pixels > static_cast<uint64_t>(max_pixels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("image claims ", size->width, "x", size->height, " = ", pixels,
                     " pixels; the limit is ", max_pixels, " (max_image_pixels)"));
  }
  return size->format;
}

// Refuses a tensor with more elements than `max_elements`, without overflowing.
absl::Status CheckTensorElements(const std::vector<int64_t>& shape,
                                 int64_t max_elements) {
  int64_t elements = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor shape [", absl::StrJoin(shape, ", "), "] has a negative dimension"));
    }
    if (dim != 0 && elements > max_elements / dim) {
      elements = max_elements + 1;
      break;
    }
    elements *= dim;
  }
  if (elements > max_elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor of shape [", absl::StrJoin(shape, ", "),
                     "] has more elements than the limit of ", max_elements,
                     " (max_tensor_elements)"));
  }
  return absl::OkStatus();
}

// Decodes to 8-bit pixels with `channels` channels (BGR when 3, OpenCV's order).
// Always decodes as colour and converts here, so a colour image becomes grey by the
// same formula (cv::cvtColor) whether it arrives encoded or as a pixel tensor.
absl::StatusOr<cv::Mat> DecodeImage(absl::string_view bytes, int channels,
                                    const InputLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError("empty image");
  if (static_cast<int64_t>(bytes.size()) > limits.max_image_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", bytes.size(), " bytes; the limit is ",
                     limits.max_image_bytes, " (max_image_bytes)"));
  }
  HEADWAY_ASSIGN_OR_RETURN(const ImageFormat format,
                           CheckImageHeader(bytes, limits.max_image_pixels));
  cv::Mat image;
  if (format == ImageFormat::kJpeg) {
    HEADWAY_ASSIGN_OR_RETURN(image, DecodeJpeg(bytes));
  } else if (format == ImageFormat::kPng) {
    HEADWAY_ASSIGN_OR_RETURN(image, DecodePng(bytes));
  } else if (format == ImageFormat::kWebp) {
    HEADWAY_ASSIGN_OR_RETURN(image, DecodeWebp(bytes));
  } else {
    // BMP: OpenCV's BMP decoder is the first it tries, and takes any bytes that start
    // with "BM", as the header check has made sure these do.
    const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1,
                          const_cast<char*>(bytes.data()));
    // OpenCV prints why it gives up to std::cerr: quote it instead.
    ScopedCerrCapture opencv_output;
    try {
      image = cv::imdecode(encoded, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt ", ImageFormatName(format), ": ", e.what()));
    }
    if (image.empty()) {
      const std::string reason = OpenCvDecodeReason(opencv_output.text());
      return absl::InvalidArgumentError(absl::StrCat(
          "corrupt ", ImageFormatName(format), " (", bytes.size(), " bytes): ",
          reason.empty() ? "its header reads as one, but it cannot be decoded"
                         : absl::StrCat("OpenCV ", reason)));
    }
  }
  if (int64_t{image.rows} * image.cols > limits.max_image_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", image.cols, "x", image.rows, " pixels; the limit is ",
                     limits.max_image_pixels, " (max_image_pixels)"));
  }
  if (channels == 1) cv::cvtColor(image, image, cv::COLOR_BGR2GRAY);
  return image;
}

// Wraps a uint8 pixel tensor [H, W] or [H, W, C] (RGB) as a Mat with `channels`
// channels, in RGB order when `rgb` (else BGR, what DecodeImage gives). When nothing
// needs converting, the Mat is a read-only view of the request's bytes: no copy.
absl::StatusOr<cv::Mat> PixelsFromTensor(const InputView& input, int channels, bool rgb) {
  const std::vector<int64_t>& shape = input.shape;
  const int64_t c = shape.size() == 3 ? shape[2] : 1;
  if ((shape.size() != 2 && shape.size() != 3) || shape[0] <= 0 || shape[1] <= 0 ||
      (c != 1 && c != 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat("uint8 tensor has shape [", absl::StrJoin(shape, ", "),
                     "]; expected [H, W] or [H, W, C] with C 1 or 3"));
  }
  constexpr int64_t kMaxSide = 65536;  // OpenCV's images are addressed in int
  if (shape[0] > kMaxSide || shape[1] > kMaxSide) {
    return absl::InvalidArgumentError(absl::StrCat(
        "uint8 tensor of shape [", absl::StrJoin(shape, ", "), "] has a side over ",
        kMaxSide, " pixels, the limit of a pixel tensor's height and width"));
  }
  const int64_t expected_bytes = shape[0] * shape[1] * c;
  if (static_cast<int64_t>(input.data.size()) != expected_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("uint8 tensor of shape [", absl::StrJoin(shape, ", "), "] needs ",
                     expected_bytes, " bytes, got ", input.data.size()));
  }
  const cv::Mat view(static_cast<int>(shape[0]), static_cast<int>(shape[1]),
                     CV_8UC(static_cast<int>(c)), const_cast<char*>(input.data.data()));
  if (c == channels && (c == 1 || rgb)) return view;
  cv::Mat pixels;
  if (c == channels) {
    cv::cvtColor(view, pixels, cv::COLOR_RGB2BGR);
  } else if (c == 3) {
    cv::cvtColor(view, pixels, cv::COLOR_RGB2GRAY);
  } else {
    cv::cvtColor(view, pixels, rgb ? cv::COLOR_GRAY2RGB : cv::COLOR_GRAY2BGR);
  }
  return pixels;
}

// Writes 8-bit pixels [H, W, C] (continuous or not) into a new float tensor [C, H, W],
// each channel c as
// pixel * scale[c] + offset[c]: one OpenCV pass per channel, straight into the
// tensor's memory (LibTorch's permute, convert, divide, subtract, divide and copy took
// six passes and as many allocations).
at::Tensor ToNormalizedChw(const cv::Mat& pixels, const std::vector<float>& scale,
                           const std::vector<float>& offset) {
  const int channels = pixels.channels();
  at::Tensor chw = torch::empty({channels, pixels.rows, pixels.cols}, torch::kFloat32);
  std::vector<cv::Mat> planes;
  if (channels == 1) {
    planes.push_back(pixels);
  } else {
    cv::split(pixels, planes);
  }
  float* data = chw.data_ptr<float>();
  const size_t plane_size = static_cast<size_t>(pixels.rows) * pixels.cols;
  for (int c = 0; c < channels; ++c) {
    cv::Mat plane(pixels.rows, pixels.cols, CV_32FC1, data + c * plane_size);
    planes[c].convertTo(plane, CV_32F, scale[c], offset[c]);
  }
  return chw;
}

}  // namespace

Preprocessor::Preprocessor(const v1::InputSpec& spec, const InputLimits& limits)
    : spec_(spec),
      limits_(limits),
      input_shape_{spec.channels(), spec.height(), spec.width()} {
  for (int c = 0; c < spec.channels(); ++c) {
    const float mean = spec.mean(spec.mean_size() == 1 ? 0 : c);
    const float std = spec.std(spec.std_size() == 1 ? 0 : c);
    // (x / 255 - mean) / std
    scale_.push_back(1.0f / (255.0f * std));
    offset_.push_back(-mean / std);
  }
}

absl::StatusOr<std::unique_ptr<Preprocessor>> Preprocessor::Create(
    const v1::InputSpec& spec, const InputLimits& limits) {
  if ((spec.channels() != 1 && spec.channels() != 3) || spec.height() <= 0 ||
      spec.width() <= 0 || spec.mean().empty() || spec.std().empty()) {
    return absl::InvalidArgumentError("input spec is incomplete");
  }
  return std::unique_ptr<Preprocessor>(new Preprocessor(spec, limits));
}

absl::StatusOr<at::Tensor> Preprocessor::Process(const InputView& input) const {
  const int channels = spec_.channels();
  const int height = spec_.height();
  const int width = spec_.width();

  if (input.kind == InputView::Kind::kTensor) {
    HEADWAY_RETURN_IF_ERROR(
        CheckTensorElements(input.shape, limits_.max_tensor_elements));
    if (input.dtype == TensorType::kFloat32) {
      if (input.shape != input_shape_) {
        return absl::InvalidArgumentError(
            absl::StrCat("float32 tensor has shape [", absl::StrJoin(input.shape, ", "),
                         "]; the model takes [", absl::StrJoin(input_shape_, ", "), "]"));
      }
      const size_t expected_bytes = sizeof(float) * channels * height * width;
      if (input.data.size() != expected_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "float32 tensor of shape [", absl::StrJoin(input.shape, ", "), "] needs ",
            expected_bytes, " bytes, got ", input.data.size(),
            input.data.size() == 2 * expected_bytes
                ? " (twice as many: float64 values? send float32, e.g. numpy's "
                  "astype(np.float32))"
                : ""));
      }
      if (!AllFiniteFloats(input.data.data(), expected_bytes / sizeof(float))) {
        return absl::InvalidArgumentError("float32 tensor holds NaN or infinite values");
      }
      at::Tensor tensor = at::empty(input_shape_, torch::kFloat32);
      std::memcpy(tensor.data_ptr<float>(), input.data.data(), expected_bytes);
      return tensor;
    }
    if (input.dtype != TensorType::kUint8) {
      return absl::InvalidArgumentError("tensor dtype must be UINT8 or FLOAT32");
    }
  }

  // 8-bit, `channels` channels in the model's order. Never written in place: it may
  // view the request's bytes; each step below makes a new Mat or a view.
  const bool rgb = channels == 3 && spec_.color_order() == v1::InputSpec::RGB;
  cv::Mat pixels;
  if (input.kind == InputView::Kind::kTensor) {
    HEADWAY_ASSIGN_OR_RETURN(pixels, PixelsFromTensor(input, channels, rgb));
  } else {
    HEADWAY_ASSIGN_OR_RETURN(const cv::Mat bgr,
                             DecodeImage(input.data, channels, limits_));
    if (rgb) {
      cv::cvtColor(bgr, pixels, cv::COLOR_BGR2RGB);
    } else {
      pixels = bgr;
    }
  }

  switch (spec_.resize()) {
    case v1::InputSpec::NONE:
      if (pixels.rows != height || pixels.cols != width) {
        return absl::InvalidArgumentError(absl::StrCat("image is ", pixels.cols, "x",
                                                       pixels.rows, "; the model takes ",
                                                       width, "x", height));
      }
      break;
    case v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP: {
      const double scale = static_cast<double>(spec_.resize_shorter_side()) /
                           std::min(pixels.rows, pixels.cols);
      const int resized_rows =
          std::max(height, static_cast<int>(std::lround(pixels.rows * scale)));
      const int resized_cols =
          std::max(width, static_cast<int>(std::lround(pixels.cols * scale)));
      cv::Mat resized;
      cv::resize(pixels, resized, cv::Size(resized_cols, resized_rows), 0, 0,
                 cv::INTER_LINEAR);
      const int top = static_cast<int>(std::lround((resized_rows - height) / 2.0));
      const int left = static_cast<int>(std::lround((resized_cols - width) / 2.0));
      // A view of the crop: ToNormalizedChw reads it row by row.
      pixels = resized(cv::Rect(left, top, width, height));
      break;
    }
    default:  // STRETCH
      if (pixels.rows != height || pixels.cols != width) {
        cv::Mat resized;
        cv::resize(pixels, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
        pixels = resized;
      }
      break;
  }
  return ToNormalizedChw(pixels, scale_, offset_);
}

}  // namespace headway
