// Strict decoders for JPEG and PNG, on libjpeg and libpng directly: OpenCV 4.6 decodes
// a corrupt file into an image of garbage or grey and only prints the libraries'
// warnings to stderr, so Headway would answer OK from it. These refuse what the
// libraries report, warnings included (bad entropy-coded data, a premature end, a bad
// CRC, missing image data), with INVALID_ARGUMENT quoting the library's own message.
// Data after a JPEG's end-of-image marker (a phone's "motion photo" video, metadata,
// padding) is ignored, as libjpeg does.
//
// WebP is decoded with libwebp directly for another reason: cv::imdecode picks its
// decoder by content, and a WebP whose header libwebp refuses falls through to the
// other decoders OpenCV was built with. Debian's include GDCM, which takes any bytes
// with "DICM" at offset 128 for a DICOM file and aborts the process on some of them.
//
// Pure functions of their input; thread-safe (each call has its own decoder state).
#ifndef HEADWAY_MODEL_STORE_IMAGE_CODECS_H_
#define HEADWAY_MODEL_STORE_IMAGE_CODECS_H_

#include <opencv2/core.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// 8-bit BGR pixels (OpenCV's order), as cv::imdecode(IMREAD_COLOR) gives.
absl::StatusOr<cv::Mat> DecodeJpeg(absl::string_view bytes);
absl::StatusOr<cv::Mat> DecodePng(absl::string_view bytes);
absl::StatusOr<cv::Mat> DecodeWebp(absl::string_view bytes);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_IMAGE_CODECS_H_
