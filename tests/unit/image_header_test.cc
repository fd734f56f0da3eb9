// PeekImageSize against real files OpenCV encodes (with their APP and metadata
// segments) and against truncated headers.
#include "model_store/image_header.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "tests/support/test_files.h"

namespace headway {
namespace {

TEST(PeekImageSizeTest, ReadsWidthAndHeightOfEachFormat) {
  const cv::Mat image = cv::Mat::zeros(37, 53, CV_8UC3);
  for (const char* extension : {".png", ".jpg", ".bmp", ".webp"}) {
    const std::optional<ImageSize> size =
        PeekImageSize(testing::EncodeImage(extension, image));
    ASSERT_TRUE(size.has_value()) << extension;
    EXPECT_EQ(size->width, 53) << extension;
    EXPECT_EQ(size->height, 37) << extension;
  }
  // Lossless WebP (quality above 100) has its own header layout.
  std::vector<unsigned char> bytes;
  cv::imencode(".webp", image, bytes, {cv::IMWRITE_WEBP_QUALITY, 101});
  const std::optional<ImageSize> size =
      PeekImageSize(std::string(bytes.begin(), bytes.end()));
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->width, 53);
  EXPECT_EQ(size->height, 37);
}

TEST(PeekImageSizeTest, GivesNothingForUnknownOrTruncatedHeaders) {
  const std::string png = testing::EncodeImage(".png", cv::Mat::zeros(4, 4, CV_8UC1));
  const std::string jpeg = testing::EncodeImage(".jpg", cv::Mat::zeros(4, 4, CV_8UC1));
  EXPECT_FALSE(PeekImageSize("").has_value());
  EXPECT_FALSE(PeekImageSize("GIF89a").has_value());
  EXPECT_FALSE(PeekImageSize(png.substr(0, 20)).has_value());
  EXPECT_FALSE(PeekImageSize(jpeg.substr(0, 4)).has_value());
  EXPECT_FALSE(PeekImageSize("RIFF").has_value());
  EXPECT_FALSE(PeekImageSize("BM").has_value());
}

}  // namespace
}  // namespace headway
