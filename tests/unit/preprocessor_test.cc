#include "model_store/preprocessor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <algorithm>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "tests/support/digits_data.h"
#include "tests/support/test_files.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

v1::InputSpec Spec(int channels, int height, int width, v1::InputSpec::Resize resize) {
  v1::InputSpec spec;
  spec.set_channels(channels);
  spec.set_height(height);
  spec.set_width(width);
  spec.set_resize(resize);
  spec.set_color_order(v1::InputSpec::RGB);
  spec.add_mean(0.0f);
  spec.add_std(1.0f);
  return spec;
}

std::unique_ptr<Preprocessor> Make(const v1::InputSpec& spec) {
  absl::StatusOr<std::unique_ptr<Preprocessor>> preprocessor = Preprocessor::Create(spec);
  EXPECT_TRUE(preprocessor.ok()) << preprocessor.status();
  return *std::move(preprocessor);
}

InputView Image(const std::string& bytes) {
  InputView input;
  input.kind = InputView::Kind::kEncodedImage;
  input.data = bytes;
  return input;
}

InputView Tensor(TensorType dtype, std::vector<int64_t> shape, absl::string_view data) {
  InputView input;
  input.kind = InputView::Kind::kTensor;
  input.dtype = dtype;
  input.shape = std::move(shape);
  input.data = data;
  return input;
}

// A 2x2 BGR image whose pixels are all different.
cv::Mat KnownPixels() {
  cv::Mat image(2, 2, CV_8UC3);
  image.at<cv::Vec3b>(0, 0) = {10, 20, 30};  // B, G, R
  image.at<cv::Vec3b>(0, 1) = {40, 50, 60};
  image.at<cv::Vec3b>(1, 0) = {70, 80, 90};
  image.at<cv::Vec3b>(1, 1) = {100, 110, 120};
  return image;
}

TEST(PreprocessorTest, PngBecomesNormalisedRgbChw) {
  v1::InputSpec spec = Spec(3, 2, 2, v1::InputSpec::NONE);
  spec.clear_mean();
  spec.clear_std();
  for (float m : {0.1f, 0.2f, 0.3f}) spec.add_mean(m);
  for (float s : {0.5f, 0.25f, 0.125f}) spec.add_std(s);
  const std::string png = testing::EncodePng(KnownPixels());

  const absl::StatusOr<at::Tensor> tensor = Make(spec)->Process(Image(png));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  ASSERT_EQ(tensor->sizes(), (std::vector<int64_t>{3, 2, 2}));
  // Channel 0 is red: 30 at (0,0), 120 at (1,1).
  EXPECT_NEAR((*tensor)[0][0][0].item<float>(), (30 / 255.0f - 0.1f) / 0.5f, 1e-6);
  EXPECT_NEAR((*tensor)[0][1][1].item<float>(), (120 / 255.0f - 0.1f) / 0.5f, 1e-6);
  // Channel 1 is green, channel 2 blue.
  EXPECT_NEAR((*tensor)[1][0][1].item<float>(), (50 / 255.0f - 0.2f) / 0.25f, 1e-6);
  EXPECT_NEAR((*tensor)[2][1][0].item<float>(), (70 / 255.0f - 0.3f) / 0.125f, 1e-6);
}

TEST(PreprocessorTest, BgrModelsKeepOpenCvOrder) {
  v1::InputSpec spec = Spec(3, 2, 2, v1::InputSpec::NONE);
  spec.set_color_order(v1::InputSpec::BGR);
  const absl::StatusOr<at::Tensor> tensor =
      Make(spec)->Process(Image(testing::EncodePng(KnownPixels())));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_NEAR((*tensor)[0][0][0].item<float>(), 10 / 255.0f, 1e-6);
  EXPECT_NEAR((*tensor)[2][0][0].item<float>(), 30 / 255.0f, 1e-6);
}

TEST(PreprocessorTest, GreyModelsConvertColourImages) {
  const absl::StatusOr<at::Tensor> tensor =
      Make(Spec(1, 2, 2, v1::InputSpec::NONE))
          ->Process(Image(testing::EncodePng(KnownPixels())));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  ASSERT_EQ(tensor->sizes(), (std::vector<int64_t>{1, 2, 2}));
  // OpenCV's grey: 0.299 R + 0.587 G + 0.114 B = 21.85 -> 22 for R 30, G 20, B 10.
  EXPECT_NEAR((*tensor)[0][0][0].item<float>(), 22 / 255.0f, 1e-6);
}

TEST(PreprocessorTest, StretchResizesToTheModelSize) {
  const cv::Mat image(40, 60, CV_8UC1, cv::Scalar(200));
  const absl::StatusOr<at::Tensor> tensor =
      Make(Spec(1, 20, 20, v1::InputSpec::STRETCH))
          ->Process(Image(testing::EncodePng(image)));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  ASSERT_EQ(tensor->sizes(), (std::vector<int64_t>{1, 20, 20}));
  EXPECT_NEAR(tensor->min().item<float>(), 200 / 255.0f, 1e-6);
  EXPECT_NEAR(tensor->max().item<float>(), 200 / 255.0f, 1e-6);
}

TEST(PreprocessorTest, ShorterSideThenCentreCrop) {
  // 4 rows x 8 columns, each column its own value; shorter side 4 keeps the size, the
  // 2x2 centre crop takes rows 1..2 and columns 3..4.
  cv::Mat image(4, 8, CV_8UC1);
  for (int c = 0; c < 8; ++c) image.col(c).setTo(c * 10);
  v1::InputSpec spec = Spec(1, 2, 2, v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP);
  spec.set_resize_shorter_side(4);
  const absl::StatusOr<at::Tensor> tensor =
      Make(spec)->Process(Image(testing::EncodePng(image)));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_NEAR((*tensor)[0][0][0].item<float>(), 30 / 255.0f, 1e-6);
  EXPECT_NEAR((*tensor)[0][1][1].item<float>(), 40 / 255.0f, 1e-6);
}

TEST(PreprocessorTest, Uint8TensorMatchesTheSameImageAsPng) {
  const cv::Mat digit = testing::DigitCell(1234);
  const auto preprocessor = Make(Spec(1, 20, 20, v1::InputSpec::STRETCH));
  const absl::string_view pixels(reinterpret_cast<const char*>(digit.data), 400);
  const absl::StatusOr<at::Tensor> from_tensor =
      preprocessor->Process(Tensor(TensorType::kUint8, {20, 20}, pixels));
  const absl::StatusOr<at::Tensor> from_png =
      preprocessor->Process(Image(testing::EncodePng(digit)));
  ASSERT_TRUE(from_tensor.ok()) << from_tensor.status();
  ASSERT_TRUE(from_png.ok()) << from_png.status();
  EXPECT_TRUE(torch::equal(*from_tensor, *from_png));
}

TEST(PreprocessorTest, Uint8RgbTensorMatchesPng) {
  const cv::Mat bgr = KnownPixels();
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const auto preprocessor = Make(Spec(3, 2, 2, v1::InputSpec::NONE));
  const absl::StatusOr<at::Tensor> from_tensor = preprocessor->Process(
      Tensor(TensorType::kUint8, {2, 2, 3},
             absl::string_view(reinterpret_cast<char*>(rgb.data), 12)));
  const absl::StatusOr<at::Tensor> from_png =
      preprocessor->Process(Image(testing::EncodePng(bgr)));
  ASSERT_TRUE(from_tensor.ok()) << from_tensor.status();
  ASSERT_TRUE(from_png.ok()) << from_png.status();
  EXPECT_TRUE(torch::equal(*from_tensor, *from_png));
}

// Every pairing of a uint8 tensor (grey or RGB) with a model (grey, RGB, BGR) and a
// resize gives what the same image as PNG gives, and leaves the request's bytes as
// they were: a tensor that needs no conversion is read in place, never written.
TEST(PreprocessorTest, Uint8TensorsMatchPngInEveryOrderAndResizeAndStayUnwritten) {
  cv::Mat bgr(6, 10, CV_8UC3);
  for (int r = 0; r < bgr.rows; ++r) {
    for (int c = 0; c < bgr.cols; ++c) {
      bgr.at<cv::Vec3b>(r, c) = {static_cast<uchar>(r * 40 + c),
                                 static_cast<uchar>(c * 25),
                                 static_cast<uchar>(255 - r * 30 - c)};
    }
  }
  cv::Mat rgb, grey;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  struct Model {
    int channels;
    v1::InputSpec::ColorOrder order;
  };
  for (const Model model : {Model{1, v1::InputSpec::RGB}, Model{3, v1::InputSpec::RGB},
                            Model{3, v1::InputSpec::BGR}}) {
    for (const v1::InputSpec::Resize resize :
         {v1::InputSpec::NONE, v1::InputSpec::STRETCH,
          v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP}) {
      const bool none = resize == v1::InputSpec::NONE;
      v1::InputSpec spec = Spec(model.channels, none ? 6 : 4, none ? 10 : 4, resize);
      spec.set_color_order(model.order);
      spec.set_resize_shorter_side(5);
      const auto preprocessor = Make(spec);
      for (const cv::Mat* pixels : {&rgb, &grey}) {
        const std::string bytes(reinterpret_cast<const char*>(pixels->data),
                                pixels->total() * pixels->elemSize());
        std::vector<int64_t> shape = {pixels->rows, pixels->cols};
        if (pixels->channels() == 3) shape.push_back(3);
        const std::string sent = bytes;
        const absl::StatusOr<at::Tensor> from_tensor =
            preprocessor->Process(Tensor(TensorType::kUint8, shape, sent));
        const absl::StatusOr<at::Tensor> from_png =
            preprocessor->Process(Image(testing::EncodePng(pixels == &rgb ? bgr : grey)));
        const std::string where =
            absl::StrCat("model channels ", model.channels, " order ", model.order,
                         " resize ", resize, " tensor channels ", pixels->channels());
        ASSERT_TRUE(from_tensor.ok()) << where << ": " << from_tensor.status();
        ASSERT_TRUE(from_png.ok()) << where << ": " << from_png.status();
        EXPECT_TRUE(torch::equal(*from_tensor, *from_png)) << where;
        EXPECT_EQ(sent, bytes) << where;
      }
    }
  }
}

TEST(PreprocessorTest, Float32TensorPassesThrough) {
  const std::vector<float> values = {1.5f, -2.0f, 0.25f, 8.0f};
  const absl::StatusOr<at::Tensor> tensor =
      Make(Spec(1, 2, 2, v1::InputSpec::STRETCH))
          ->Process(Tensor(
              TensorType::kFloat32, {1, 2, 2},
              absl::string_view(reinterpret_cast<const char*>(values.data()), 16)));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ((*tensor)[0][1][1].item<float>(), 8.0f);
  EXPECT_EQ((*tensor)[0][0][1].item<float>(), -2.0f);
}

// One non-finite value anywhere among finite ones is refused: NaN and both
// infinities, first, in the middle and last, and beside the largest finite values.
TEST(PreprocessorTest, Float32TensorWithOneNonFiniteValueIsRefused) {
  const auto preprocessor = Make(Spec(3, 4, 4, v1::InputSpec::STRETCH));
  constexpr float kMax = std::numeric_limits<float>::max();
  std::vector<float> values(3 * 4 * 4, 0.5f);
  values[1] = kMax;
  values[2] = -kMax;
  const auto process = [&] {
    return preprocessor->Process(
        Tensor(TensorType::kFloat32, {3, 4, 4},
               absl::string_view(reinterpret_cast<const char*>(values.data()),
                                 values.size() * sizeof(float))));
  };
  ASSERT_TRUE(process().ok()) << process().status();
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity()}) {
    for (const size_t at : {size_t{0}, values.size() / 2, values.size() - 1}) {
      const float kept = values[at];
      values[at] = bad;
      const absl::StatusOr<at::Tensor> tensor = process();
      EXPECT_EQ(tensor.status().code(), absl::StatusCode::kInvalidArgument)
          << bad << " at " << at;
      EXPECT_THAT(tensor.status().message(), HasSubstr("NaN or infinite"));
      values[at] = kept;
    }
  }
}

struct BadInput {
  const char* name;
  InputView input;
  const char* expected_message;
};

TEST(PreprocessorTest, BadInputsAreInvalidArgumentsNamingTheProblem) {
  static const std::string kGarbage = "this is not an image";
  static const std::string kDigitPng = testing::EncodePng(testing::DigitCell(0));
  static const std::string kTruncatedPng = kDigitPng.substr(0, kDigitPng.size() / 2);
  std::vector<unsigned char> jpeg;
  cv::imencode(".jpg", cv::Mat(64, 64, CV_8UC3, cv::Scalar(1, 2, 3)), jpeg);
  static const std::string kTruncatedJpeg(jpeg.begin(), jpeg.begin() + jpeg.size() / 2);
  static const std::string kFloats(4 * 400, '\0');

  const std::vector<BadInput> cases = {
      {"empty", Image(""), "empty image"},
      {"garbage", Image(kGarbage), "cannot decode image"},
      {"truncated png", Image(kTruncatedPng), "corrupt PNG: the data ends early"},
      {"truncated jpeg", Image(kTruncatedJpeg), "corrupt JPEG: Premature end of JPEG"},
      {"float wrong shape", Tensor(TensorType::kFloat32, {1, 20, 21}, kFloats),
       "the model takes [1, 20, 20]"},
      {"float wrong bytes", Tensor(TensorType::kFloat32, {1, 20, 20}, "abc"),
       "needs 1600 bytes"},
      {"uint8 rank 1", Tensor(TensorType::kUint8, {400}, kFloats), "expected [H, W]"},
      {"uint8 four channels", Tensor(TensorType::kUint8, {10, 10, 4}, kFloats),
       "expected [H, W]"},
      {"uint8 wrong bytes", Tensor(TensorType::kUint8, {20, 20}, "abc"),
       "needs 400 bytes"},
      {"no dtype", Tensor(TensorType::kUnspecified, {20, 20}, kFloats), "dtype"},
  };
  const auto preprocessor = Make(Spec(1, 20, 20, v1::InputSpec::STRETCH));
  for (const BadInput& bad : cases) {
    const absl::StatusOr<at::Tensor> tensor = preprocessor->Process(bad.input);
    EXPECT_EQ(tensor.status().code(), absl::StatusCode::kInvalidArgument) << bad.name;
    EXPECT_THAT(tensor.status().message(), HasSubstr(bad.expected_message)) << bad.name;
  }
}

// A BMP that OpenCV gives up on with a diagnostic (a colour count over 2^bits)
// is refused quoting it, and nothing reaches stderr.
TEST(PreprocessorTest, OpenCvDecodeFailureIsQuotedNotPrinted) {
  std::vector<unsigned char> encoded;
  cv::imencode(".bmp", testing::DigitCell(3), encoded);
  std::string bmp(encoded.begin(), encoded.end());
  bmp[47] = '\x7f';  // biClrUsed, little-endian bytes 46-49
  const auto preprocessor = Make(Spec(1, 20, 20, v1::InputSpec::STRETCH));
  ::testing::internal::CaptureStderr();
  const absl::StatusOr<at::Tensor> tensor = preprocessor->Process(Image(bmp));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(tensor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tensor.status().message(),
              HasSubstr(absl::StrCat("corrupt BMP (", bmp.size(),
                                     " bytes): OpenCV can't read header: Assertion "
                                     "failed: clrused")));
}

// Every `step`-th truncation of `file`, and each of its bytes in [first, last) set to
// 0x00, 0x7f, 0x80 or 0xff.
std::vector<std::string> Mutations(const std::string& file, size_t step, size_t first,
                                   size_t last) {
  std::vector<std::string> mutations;
  for (size_t length = 0; length < file.size(); length += step) {
    mutations.push_back(file.substr(0, length));
  }
  for (size_t at = first; at < last; ++at) {
    for (const char value : {'\x00', '\x7f', '\x80', '\xff'}) {
      std::string mutated = file;
      mutated[at] = value;
      mutations.push_back(mutated);
    }
  }
  return mutations;
}

// Preprocesses each image: each is decoded or refused INVALID_ARGUMENT with a bounded
// message. Returns how many were refused.
int CountRefused(const std::vector<std::string>& images) {
  const auto preprocessor = Make(Spec(1, 20, 20, v1::InputSpec::STRETCH));
  int refused = 0;
  for (const std::string& image : images) {
    const absl::StatusOr<at::Tensor> tensor = preprocessor->Process(Image(image));
    if (!tensor.ok()) {
      ++refused;
      EXPECT_EQ(tensor.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_LE(tensor.status().message().size(), 400u) << tensor.status();
    }
  }
  return refused;
}

// Every truncation of a BMP, and every header byte set to 0x00, 0x7f, 0x80 or 0xff:
// each is decoded or refused, and OpenCV's diagnostics never reach stderr.
TEST(PreprocessorTest, NoBmpMutationPrintsToStderr) {
  std::vector<unsigned char> encoded;
  cv::imencode(".bmp", testing::DigitCell(5), encoded);
  const std::string bmp(encoded.begin(), encoded.end());
  ::testing::internal::CaptureStderr();
  const int refused = CountRefused(Mutations(bmp, 7, 2, 54));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_GT(refused, 100);
}

// WebP is decoded by libwebp: a lossless one gives the PNG's pixels exactly, a lossy
// one what OpenCV's own WebP decoder gives.
TEST(PreprocessorTest, WebpDecodesAsOpenCvDoes) {
  cv::Mat colour(24, 32, CV_8UC3);
  cv::randu(colour, 0, 256);
  const auto preprocessor = Make(Spec(3, 24, 32, v1::InputSpec::NONE));
  const absl::StatusOr<at::Tensor> from_png =
      preprocessor->Process(Image(testing::EncodeImage(".png", colour)));
  std::vector<unsigned char> lossless;
  cv::imencode(".webp", colour, lossless, {cv::IMWRITE_WEBP_QUALITY, 101});
  const absl::StatusOr<at::Tensor> from_webp =
      preprocessor->Process(Image(std::string(lossless.begin(), lossless.end())));
  ASSERT_TRUE(from_png.ok()) << from_png.status();
  ASSERT_TRUE(from_webp.ok()) << from_webp.status();
  EXPECT_TRUE(torch::equal(*from_png, *from_webp));

  std::vector<unsigned char> lossy;
  cv::imencode(".webp", colour, lossy, {cv::IMWRITE_WEBP_QUALITY, 80});
  const cv::Mat by_opencv = cv::imdecode(lossy, cv::IMREAD_COLOR);
  const absl::StatusOr<at::Tensor> lossy_tensor =
      preprocessor->Process(Image(std::string(lossy.begin(), lossy.end())));
  const absl::StatusOr<at::Tensor> opencv_tensor =
      preprocessor->Process(Image(testing::EncodeImage(".png", by_opencv)));
  ASSERT_TRUE(lossy_tensor.ok()) << lossy_tensor.status();
  ASSERT_TRUE(opencv_tensor.ok()) << opencv_tensor.status();
  EXPECT_TRUE(torch::equal(*lossy_tensor, *opencv_tensor));
}

// A file that starts as a WebP whose header libwebp refuses, with "DICM" at byte 128
// (found by fuzz_preprocess): cv::imdecode would fall through to GDCM, which takes it
// for DICOM and aborts the process. It is refused as a corrupt WebP.
TEST(PreprocessorTest, WebpLibwebpRefusesIsRefusedNotHandedToOtherDecoders) {
  std::string fuzzed;
  ASSERT_TRUE(absl::Base64Unescape(
      "UklGRlIBAABXRUJQVlA4TEYBAAAvJ8AE2wBNhbakPZZ9Ytu2bbZsDI/euBZ7o5zJ8ygi3o86v45F4xDu"
      "NE93hW175RncL+Dx63gq+MpeBuWpd/1BAACFD78rrNIATk2rZyc9Nm3bdlK2bdu2bZ/CRSmi/xMA/3MJ"
      "A4nfIWIqxWVESUNNMJ8=",
      &fuzzed));
  ASSERT_EQ(fuzzed.substr(128, 4), "DICM");
  const auto preprocessor = Make(Spec(1, 20, 20, v1::InputSpec::STRETCH));
  const absl::StatusOr<at::Tensor> tensor = preprocessor->Process(Image(fuzzed));
  EXPECT_EQ(tensor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tensor.status().message(), HasSubstr("corrupt WebP"));
}

// Every truncation of a WebP, and every header byte set to 0x00, 0x7f, 0x80 or 0xff,
// with "DICM" at byte 128 besides: each is decoded or refused, never passed on.
TEST(PreprocessorTest, EveryWebpMutationIsDecodedOrRefused) {
  std::vector<unsigned char> encoded;
  cv::imencode(".webp", testing::DigitCell(5), encoded, {cv::IMWRITE_WEBP_QUALITY, 101});
  std::string webp(encoded.begin(), encoded.end());
  webp.resize(std::max<size_t>(webp.size(), 140), '\0');
  webp.replace(128, 4, "DICM");
  EXPECT_GT(CountRefused(Mutations(webp, 3, 0, 40)), 50);
}

TEST(PreprocessorTest, NoneRefusesOtherSizes) {
  const absl::StatusOr<at::Tensor> tensor =
      Make(Spec(1, 20, 20, v1::InputSpec::NONE))
          ->Process(Image(testing::EncodePng(cv::Mat(10, 10, CV_8UC1, cv::Scalar(0)))));
  EXPECT_EQ(tensor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tensor.status().message(),
              HasSubstr("image is 10x10; the model takes 20x20"));
}

}  // namespace
}  // namespace headway
