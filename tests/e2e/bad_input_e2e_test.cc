// End to end, robustness: a table of bad requests against the real server, started
// with small input limits. Each case expects one status code and a message naming the
// problem; after the table the server still answers correctly and nothing changed.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "client/headway_client.h"
#include "tests/support/digits_data.h"
#include "tests/support/server_process.h"
#include "tests/support/test_files.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

// Limits the server runs with in this test.
constexpr int kMaxImageBytes = 65536;
constexpr int kMaxImagePixels = 250000;
constexpr int kMaxTensorElements = 200000;
constexpr int kMaxInputs = 8;
constexpr int kMaxHeadBytes = 65536;
constexpr int kMaxMessageBytes = 1 << 20;

v1::Input Image(std::string bytes) {
  v1::Input input;
  input.set_image(std::move(bytes));
  return input;
}

v1::Input Digit(int cell) { return Image(testing::EncodePng(testing::DigitCell(cell))); }

v1::Input Tensor(v1::DataType dtype, std::vector<int64_t> shape, std::string data) {
  v1::Input input;
  input.mutable_tensor()->set_dtype(dtype);
  for (int64_t d : shape) input.mutable_tensor()->add_shape(d);
  input.mutable_tensor()->set_data(std::move(data));
  return input;
}

std::string Floats(size_t count, float value) {
  std::vector<float> values(count, 0.5f);
  values[count / 2] = value;
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

// What a phone appends to a JPEG in a "motion photo": an MP4 (its first box here).
std::string MotionPhotoTrailer() {
  std::string mp4(
      "\x00\x00\x00\x18"
      "ftypmp42\x00\x00\x00\x00mp42isom",
      24);
  return mp4 + std::string(4000, '\x42');
}

// `jpeg` with an out-of-sequence restart marker in the middle of its scan data.
std::string WithStrayMarker(std::string jpeg) {
  const size_t scan = jpeg.find("\xff\xda");
  const size_t at = scan + (jpeg.size() - scan) / 2;
  return jpeg.substr(0, at) + "\xff\xd5" + jpeg.substr(at);
}

// `jpeg` whose start-of-frame segment claims `extra` more rows.
std::string JpegClaimingHeight(std::string jpeg, int extra) {
  const size_t frame = jpeg.find("\xff\xc0");
  const int height = (static_cast<unsigned char>(jpeg[frame + 5]) << 8 |
                      static_cast<unsigned char>(jpeg[frame + 6])) +
                     extra;
  jpeg[frame + 5] = static_cast<char>(height >> 8);
  jpeg[frame + 6] = static_cast<char>(height & 0xff);
  return jpeg;
}

// `png` whose IDAT chunk's CRC does not match its data.
std::string WithBadIdatCrc(std::string png) {
  const size_t idat = png.find("IDAT");
  uint32_t length = 0;
  for (int i = 0; i < 4; ++i) {
    length = length << 8 | static_cast<unsigned char>(png[idat - 4 + i]);
  }
  png[idat + 4 + length] = static_cast<char>(png[idat + 4 + length] ^ 0x55);
  return png;
}

// A BMP header (and 2x2 pixels) whose width is -2.
std::string BmpWithNegativeWidth() {
  cv::Mat pixels(2, 2, CV_8UC3, cv::Scalar(10, 20, 30));
  std::vector<unsigned char> bytes;
  cv::imencode(".bmp", pixels, bytes);
  std::string bmp(bytes.begin(), bytes.end());
  const int32_t width = -2;
  std::memcpy(&bmp[18], &width, 4);
  return bmp;
}

// The start of an animated WebP: RIFF, WEBP, a VP8X chunk with the animation flag.
std::string AnimatedWebpHeader() {
  std::string webp("RIFF\x00\x01\x00\x00WEBPVP8X\x0a\x00\x00\x00", 20);
  webp += std::string("\x02\x00\x00\x00", 4);          // flags: animation
  webp += std::string("\x0f\x00\x00\x0f\x00\x00", 6);  // 16 x 16
  return webp + std::string("ANIM\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14);
}

// Found by fuzz_preprocess (its size set to 40x20 here): a WebP whose header libwebp
// refuses (its version bits are 6), with "DICM" at byte 128. cv::imdecode would hand
// it to GDCM as DICOM, which aborts the process.
std::string WebpWithDicomMagic() {
  std::string bytes;
  absl::Base64Unescape(
      "UklGRlIBAABXRUJQVlA4TEYBAAAvJ8AE0ABNhbakPZZ9Ytu2bbZsDI/euBZ7o5zJ8ygi3o86v45F4xDu"
      "NE93hW175RncL+Dx63gq+MpeBuWpd/1BAACFD78rrNIATk2rZyc9Nm3bdlK2bdu2bZ/CRSmi/xMA/3MJ"
      "A4nfIWIqxWVESUNNMJ8=",
      &bytes);
  return bytes;
}

// 400 float32 values of 3e38: finite, and far outside what the digits model takes.
std::string Huge() {
  const std::vector<float> values(400, 3e38f);
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

std::string BigEndian32(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
          static_cast<char>(value >> 8), static_cast<char>(value)};
}

// A few hundred bytes of PNG whose header claims `width` x `height` pixels.
std::string PngClaiming(uint32_t width, uint32_t height) {
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += BigEndian32(13) + "IHDR" + BigEndian32(width) + BigEndian32(height);
  png += std::string("\x08\x00\x00\x00\x00", 5) + BigEndian32(0);
  png += BigEndian32(0) + "IEND" + BigEndian32(0xAE426082);
  return png;
}

// A JPEG whose start-of-frame claims `width` x `height` pixels.
std::string JpegClaiming(uint16_t width, uint16_t height) {
  std::string jpeg("\xFF\xD8\xFF\xC0\x00\x11\x08", 7);
  jpeg += {static_cast<char>(height >> 8), static_cast<char>(height),
           static_cast<char>(width >> 8), static_cast<char>(width)};
  jpeg += std::string(10, '\x01') + "\xFF\xD9";
  return jpeg;
}

// A BMP file header whose info header claims `width` x `height` pixels.
std::string BmpClaiming(int32_t width, int32_t height) {
  std::string bmp = "BM" + std::string(16, '\0');
  for (int32_t value : {width, height}) {
    for (int shift = 0; shift < 32; shift += 8) bmp += static_cast<char>(value >> shift);
  }
  return bmp + std::string(32, '\0');
}

struct BadCase {
  std::string name;
  std::function<absl::Status()> call;
  absl::StatusCode code;
  std::string message;  // a part of the expected message
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The plain module, not the optimized graph the CPU gets by default: its float32
    // arithmetic overflows on the 3e38 inputs below (the optimized graph's fused
    // kernels give finite values), and the output check is what those cases test.
    store_ = testing::CopyModelStore();
    std::ofstream(store_ / "digits" / "config.pbtxt", std::ios::app)
        << "optimize: false\n";
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
        testing::ServerProcess::Start(
            store_, {absl::StrCat("--max_image_bytes=", kMaxImageBytes),
                     absl::StrCat("--max_image_pixels=", kMaxImagePixels),
                     absl::StrCat("--max_tensor_elements=", kMaxTensorElements),
                     absl::StrCat("--max_inputs_per_request=", kMaxInputs),
                     absl::StrCat("--max_head_bytes=", kMaxHeadBytes),
                     absl::StrCat("--max_message_bytes=", kMaxMessageBytes)});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    HeadwayClient::Options options;
    options.target = server_->target();
    options.timeout = absl::Seconds(30);
    options.admin_token = server_->admin_token();
    client_ = *HeadwayClient::Create(options);
  }

  absl::Status Classify(std::vector<v1::Input> inputs, std::string model = "digits",
                        std::string head = "", int top_k = 0) {
    v1::ClassifyRequest request;
    request.set_model(std::move(model));
    request.set_head(std::move(head));
    request.set_top_k(top_k);
    for (v1::Input& input : inputs) *request.add_inputs() = std::move(input);
    return client_->Classify(request).status();
  }

  absl::Status Embed(std::vector<v1::Input> inputs, std::string model = "digits") {
    v1::EmbedRequest request;
    request.set_model(std::move(model));
    for (v1::Input& input : inputs) *request.add_inputs() = std::move(input);
    return client_->Embed(request).status();
  }

  // `bytes` sent as the request of `method` ("/package.Service/Method"), unparsed.
  absl::Status RawCall(const std::string& method, const std::string& bytes) {
    const std::shared_ptr<grpc::Channel> channel =
        grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Slice slice(bytes);
    const grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::Status answer;
    absl::Notification answered;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status status) {
                     answer = std::move(status);
                     answered.Notify();
                   });
    answered.WaitForNotification();
    return absl::Status(static_cast<absl::StatusCode>(answer.error_code()),
                        answer.error_message());
  }

  // A swap of the "digit" head; `edit` fills in the rest.
  absl::Status Swap(const std::function<void(v1::HotSwapHeadRequest&)>& edit) {
    v1::HotSwapHeadRequest request;
    request.set_model("digits");
    request.set_head("digit");
    edit(request);
    return client_->HotSwapHead(request).status();
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(store_);
  }

  std::filesystem::path store_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<HeadwayClient> client_;
};

TEST_F(BadInputTest, EachBadRequestGetsItsStatusAndTheServerKeepsServing) {
  using Code = absl::StatusCode;
  const std::string png = testing::EncodePng(testing::DigitCell(7));
  const std::string jpeg = testing::EncodeImage(".jpg", testing::DigitCell(7));
  cv::Mat noise(300, 300, CV_8UC3);
  cv::randu(noise, 0, 255);
  const std::string large_png = testing::EncodeImage(".png", noise);  // ~270 KB
  const std::string many_pixels =
      testing::EncodeImage(".png", cv::Mat::zeros(600, 600, CV_8UC1));
  const std::string head =
      testing::ReadBytes(testing::SourcePath("models/digits/heads/parity.pt"));
  const std::string wrong_dim_head =
      testing::ReadBytes(testing::SourcePath("tests/data/head_wrong_dim.pt"));
  const std::string nan_row_head =
      testing::ReadBytes(testing::SourcePath("tests/data/head_nan_row.pt"));
  const std::string zip_bomb_head =
      testing::ReadBytes(testing::SourcePath("tests/data/head_zip_bomb.pt"));
  // Found by fuzz_checkpoint: LibTorch's TorchScript parser dies of SIGSEGV on it once
  // a module with the same class names is loaded (the served heads are).
  const std::string parser_crash_head = testing::ReadBytes(
      testing::SourcePath("fuzz/seeds/checkpoints/crashed_libtorch_parser.pt"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::string invalid_utf8 = "digits\xff\xfe";
  const std::string long_name(600000, 'm');

  const std::vector<BadCase> cases = {
      // Encoded images.
      {"empty image", [&] { return Classify({Image("")}); }, Code::kInvalidArgument,
       "input 0: empty image"},
      {"truncated JPEG",
       [&] { return Classify({Image(jpeg.substr(0, jpeg.size() / 2))}); },
       Code::kInvalidArgument, "input 0: corrupt JPEG: Premature end of JPEG file"},
      {"truncated PNG", [&] { return Classify({Image(png.substr(0, png.size() / 2))}); },
       Code::kInvalidArgument, "input 0: corrupt PNG: the data ends early"},
      {"PNG signature only", [&] { return Classify({Image(png.substr(0, 8))}); },
       Code::kInvalidArgument, "cannot decode image"},
      // Real-world and corrupt encodings: what libjpeg and libpng report is refused,
      // data after a JPEG's end (a phone's motion-photo video, padding) is not.
      {"JPEG followed by 100 bytes",
       [&] { return Classify({Image(jpeg + std::string(100, '\0'))}); }, Code::kOk, ""},
      {"JPEG followed by a video (a motion photo)",
       [&] { return Classify({Image(jpeg + MotionPhotoTrailer())}); }, Code::kOk, ""},
      {"JPEG cut in half with its end marker put back",
       [&] { return Classify({Image(jpeg.substr(0, jpeg.size() / 2) + "\xff\xd9")}); },
       Code::kInvalidArgument, "input 0: corrupt JPEG: "},
      {"JPEG with a stray marker in its entropy-coded data",
       [&] { return Classify({Image(WithStrayMarker(jpeg))}); }, Code::kInvalidArgument,
       "corrupt JPEG: Corrupt JPEG data"},
      {"JPEG whose header claims more rows than it holds",
       [&] { return Classify({Image(JpegClaimingHeight(jpeg, 64))}); },
       Code::kInvalidArgument, "corrupt JPEG: "},
      {"PNG with a bad CRC", [&] { return Classify({Image(WithBadIdatCrc(png))}); },
       Code::kInvalidArgument, "corrupt PNG: IDAT: CRC error"},
      {"PNG without IEND",
       [&] { return Classify({Image(png.substr(0, png.size() - 12))}); },
       Code::kInvalidArgument, "corrupt PNG: the data ends early"},
      {"BMP with a negative width",
       [&] { return Classify({Image(BmpWithNegativeWidth())}); }, Code::kInvalidArgument,
       "unsupported BMP: its header gives a negative width"},
      {"truncated BMP",
       [&] {
         return Classify(
             {Image(testing::EncodeImage(".bmp", testing::DigitCell(7)).substr(0, 60))});
       },
       Code::kInvalidArgument, "corrupt BMP: the file holds 60 bytes; its header needs"},
      {"BMP whose colour count OpenCV refuses (its diagnostic quoted, not printed)",
       [&] {
         std::string bmp = testing::EncodeImage(".bmp", testing::DigitCell(7));
         bmp[47] = '\x7f';  // biClrUsed
         return Classify({Image(bmp)});
       },
       Code::kInvalidArgument, "OpenCV can't read header: Assertion failed: clrused"},
      {"animated WebP", [&] { return Classify({Image(AnimatedWebpHeader())}); },
       Code::kInvalidArgument, "unsupported WebP: it is animated"},
      {"WebP libwebp refuses, with DICOM's magic at byte 128",
       [&] { return Classify({Image(WebpWithDicomMagic())}); }, Code::kInvalidArgument,
       "input 0: corrupt WebP: libwebp finds its bitstream corrupt"},
      {"GIF (unsupported)", [&] { return Classify({Image("GIF89a\x01\x00\x01\x00")}); },
       Code::kInvalidArgument, "expected JPEG, PNG, BMP or WebP"},
      {"random bytes", [&] { return Classify({Image(std::string(1000, '\x5a'))}); },
       Code::kInvalidArgument, "cannot decode image"},
      {"PNG claiming 100000x100000",
       [&] { return Classify({Image(PngClaiming(100000, 100000))}); },
       Code::kInvalidArgument, "claims 100000x100000 = 10000000000 pixels"},
      {"PNG claiming 0x0", [&] { return Classify({Image(PngClaiming(0, 0))}); },
       Code::kInvalidArgument, "claims 0x0 pixels"},
      {"JPEG claiming 60000x60000",
       [&] { return Classify({Image(JpegClaiming(60000, 60000))}); },
       Code::kInvalidArgument, "(max_image_pixels)"},
      {"BMP claiming 50000x-50000",
       [&] { return Classify({Image(BmpClaiming(50000, -50000))}); },
       Code::kInvalidArgument, "(max_image_pixels)"},
      {"image over max_image_bytes", [&] { return Classify({Image(large_png)}); },
       Code::kInvalidArgument, "(max_image_bytes)"},
      {"real 600x600 PNG over max_image_pixels",
       [&] { return Classify({Image(many_pixels)}); }, Code::kInvalidArgument,
       "600x600 = 360000 pixels; the limit is 250000 (max_image_pixels)"},
      {"message over max_message_bytes",
       [&] { return Classify({Image(std::string(kMaxMessageBytes + 1000, 'x'))}); },
       Code::kResourceExhausted, "Received message larger than max"},
      // Tensors.
      {"uint8 tensor, too few bytes",
       [&] {
         return Classify({Tensor(v1::UINT8, {20, 20}, std::string(399, '\0'))});
       },
       Code::kInvalidArgument, "needs 400 bytes, got 399"},
      {"uint8 tensor, 4 channels",
       [&] {
         return Classify({Tensor(v1::UINT8, {20, 20, 4}, std::string(1600, '\0'))});
       },
       Code::kInvalidArgument, "expected [H, W] or [H, W, C] with C 1 or 3"},
      {"uint8 tensor, one dimension",
       [&] { return Classify({Tensor(v1::UINT8, {400}, std::string(400, '\0'))}); },
       Code::kInvalidArgument, "expected [H, W] or [H, W, C]"},
      {"uint8 tensor, zero height",
       [&] {
         return Classify({Tensor(v1::UINT8, {0, 20}, "")});
       },
       Code::kInvalidArgument, "uint8 tensor has shape [0, 20]"},
      {"uint8 tensor with a side over the limit",
       [&] {
         return Classify({Tensor(v1::UINT8, {2, 70000}, std::string(140000, '\0'))});
       },
       Code::kInvalidArgument, "has a side over 65536 pixels, the limit"},
      {"tensor, negative dimension",
       [&] {
         return Classify({Tensor(v1::UINT8, {-20, 20}, "")});
       },
       Code::kInvalidArgument, "negative dimension"},
      {"tensor over max_tensor_elements",
       [&] {
         return Classify({Tensor(v1::UINT8, {1000, 1000}, "")});
       },
       Code::kInvalidArgument, "(max_tensor_elements)"},
      {"tensor whose element count overflows",
       [&] {
         return Classify({Tensor(v1::UINT8, {int64_t{1} << 40, int64_t{1} << 40}, "")});
       },
       Code::kInvalidArgument, "(max_tensor_elements)"},
      {"float32 tensor, wrong shape",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {3, 20, 20}, Floats(1200, 0))});
       },
       Code::kInvalidArgument, "the model takes [1, 20, 20]"},
      {"float32 tensor, too few bytes",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {1, 20, 20}, Floats(399, 0))});
       },
       Code::kInvalidArgument, "needs 1600 bytes, got 1596"},
      {"float64 values sent as a float32 tensor",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {1, 20, 20}, std::string(3200, '\0'))});
       },
       Code::kInvalidArgument, "got 3200 (twice as many: float64 values?"},
      {"float32 tensor holding NaN",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {1, 20, 20}, Floats(400, nan))});
       },
       Code::kInvalidArgument, "NaN or infinite"},
      {"float32 tensor holding +Inf",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {1, 20, 20}, Floats(400, inf))});
       },
       Code::kInvalidArgument, "NaN or infinite"},
      {"float32 tensor holding -Inf",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {1, 20, 20}, Floats(400, -inf))});
       },
       Code::kInvalidArgument, "NaN or infinite"},
      // Finite, but they overflow inside the network: the output is checked too, and the
      // error names the input (the second here; the first is fine).
      {"float32 tensor of 3e38s (the scores overflow)",
       [&] {
         return Classify({Tensor(v1::FLOAT32, {1, 20, 20}, Floats(400, 0.5f)),
                          Tensor(v1::FLOAT32, {1, 20, 20}, std::string(Huge()))});
       },
       Code::kInvalidArgument, "input 1: the model gave NaN or infinite scores"},
      {"float32 tensor of 3e38s (the embedding overflows)",
       [&] {
         return Embed({Tensor(v1::FLOAT32, {1, 20, 20}, std::string(Huge()))});
       },
       Code::kInvalidArgument, "input 0: the model gave NaN or infinite features"},
      {"tensor without dtype",
       [&] {
         return Classify(
             {Tensor(v1::DATA_TYPE_UNSPECIFIED, {20, 20}, std::string(400, '\0'))});
       },
       Code::kInvalidArgument, "dtype must be UINT8 or FLOAT32"},
      // Requests.
      {"input with neither image nor tensor", [&] { return Classify({v1::Input()}); },
       Code::kInvalidArgument, "input 0: set either image or tensor"},
      {"no inputs", [&] { return Classify({}); }, Code::kInvalidArgument,
       "request has no inputs"},
      {"more inputs than max_inputs_per_request",
       [&] { return Classify(std::vector<v1::Input>(kMaxInputs + 1, Image(png))); },
       Code::kInvalidArgument, "9 inputs; the limit is 8 (max_inputs_per_request)"},
      {"a bad input among good ones",
       [&] {
         return Classify({Image(png), Image(png), Image("junk")});
       },
       Code::kInvalidArgument, "input 2: cannot decode image"},
      {"duplicate inputs are answered",
       [&] {
         return Classify({Image(png), Image(png)});
       },
       Code::kOk, ""},
      {"unknown model", [&] { return Classify({Image(png)}, "resnet"); }, Code::kNotFound,
       "model \"resnet\" is not loaded; models: digits"},
      {"empty model name", [&] { return Classify({Image(png)}, ""); },
       Code::kInvalidArgument, "model name \"\" must be 1 to 128"},
      // Names are checked before any lookup and echoed at most 128 bytes long.
      {"a 600 KB model name", [&] { return Classify({Image(png)}, long_name); },
       Code::kInvalidArgument, "mmmm... (600000 bytes)\" must be 1 to 128"},
      {"a 600 KB head name", [&] { return Classify({Image(png)}, "digits", long_name); },
       Code::kInvalidArgument, "head name \"mmmm"},
      {"a swap of a model with a 600 KB name",
       [&] {
         v1::HotSwapHeadRequest r;
         r.set_model(long_name);
         r.set_head("digit");
         r.set_file("heads/parity.pt");
         return client_->HotSwapHead(r).status();
       },
       Code::kInvalidArgument, "(600000 bytes)"},
      {"unloading a model with a 600 KB name",
       [&] {
         v1::UnloadModelRequest r;
         r.set_model(long_name);
         return client_->UnloadModel(r).status();
       },
       Code::kInvalidArgument, "(600000 bytes)"},
      // Requests protobuf cannot parse never reach Headway's services (gRPC 1.51's
      // callback server answered them UNIMPLEMENTED with no message).
      {"model name with invalid UTF-8",
       [&] { return Classify({Image(png)}, invalid_utf8); }, Code::kInvalidArgument,
       "the request's bytes do not parse as message headway.v1.ClassifyRequest"},
      {"truncated protobuf (a field longer than the request)",
       [&] {
         return RawCall("/headway.v1.InferenceService/Embed",
                        "\x0a\x50"
                        "abc");
       },
       Code::kInvalidArgument, "do not parse as message headway.v1.EmbedRequest"},
      {"protobuf with an invalid wire type",
       [&] {
         return RawCall("/inference.GRPCInferenceService/ModelInfer", "\xff\xff\xff");
       },
       Code::kInvalidArgument, "do not parse as message inference.ModelInferRequest"},
      {"a swap whose head name is invalid UTF-8",
       [&] { return Swap([&](auto& r) { r.set_head(invalid_utf8); }); },
       Code::kInvalidArgument, "do not parse as message headway.v1.HotSwapHeadRequest"},
      {"a method the server lacks is still UNIMPLEMENTED",
       [&] { return RawCall("/headway.v1.InferenceService/Nope", ""); },
       Code::kUnimplemented, ""},
      {"unknown head", [&] { return Classify({Image(png)}, "digits", "cats"); },
       Code::kNotFound, "has no head \"cats\"; its heads: digit"},
      {"negative top_k", [&] { return Classify({Image(png)}, "digits", "", -1); },
       Code::kInvalidArgument, "top_k must not be negative"},
      {"embed without inputs", [&] { return Embed({}); }, Code::kInvalidArgument,
       "request has no inputs"},
      {"embed of an unknown model", [&] { return Embed({Image(png)}, "cats"); },
       Code::kNotFound, "model \"cats\" is not loaded"},
      {"embed of a truncated JPEG",
       [&] { return Embed({Image(jpeg.substr(0, jpeg.size() - 20))}); },
       Code::kInvalidArgument, "corrupt JPEG"},
      // Head swaps (as an admin).
      {"swap without a source", [&] { return Swap([](auto&) {}); },
       Code::kInvalidArgument, "set either file or checkpoint"},
      {"swap with empty checkpoint bytes",
       [&] { return Swap([](auto& r) { r.set_checkpoint(""); }); },
       Code::kInvalidArgument, "checkpoint is empty"},
      {"swap with garbage checkpoint bytes",
       [&] { return Swap([](auto& r) { r.set_checkpoint("not a checkpoint"); }); },
       Code::kInvalidArgument, ""},
      {"swap over max_head_bytes",
       [&] {
         return Swap(
             [](auto& r) { r.set_checkpoint(std::string(kMaxHeadBytes + 1, 'x')); });
       },
       Code::kInvalidArgument, "(max_head_bytes)"},
      {"swap of a head for other features",
       [&] { return Swap([&](auto& r) { r.set_checkpoint(wrong_dim_head); }); },
       Code::kInvalidArgument, "takes 32 features; the backbone gives 64"},
      {"swap to a head with a row of NaN weights",
       [&] { return Swap([&](auto& r) { r.set_checkpoint(nan_row_head); }); },
       Code::kInvalidArgument, "its weight holds NaN or infinite values"},
      {"swap to a 34 KB head that unpacks to 32 MiB",
       [&] { return Swap([&](auto& r) { r.set_checkpoint(zip_bomb_head); }); },
       Code::kInvalidArgument, "unpacks to 34078"},
      // LibTorch's parser dies of SIGSEGV on it in most runs (the probe child's crash
      // refuses it: "the TorchScript archive is malformed: LibTorch's loader crashed
      // on it") and throws in others, with the heap laid out differently ("loading
      // TorchScript archive: Expected subscripted type ..."); either way the server
      // answers and serves on.
      {"swap to a TorchScript head that crashes LibTorch's parser",
       [&] { return Swap([&](auto& r) { r.set_checkpoint(parser_crash_head); }); },
       Code::kInvalidArgument, "TorchScript archive"},
      {"swap with too few labels",
       [&] {
         return Swap([&](auto& r) {
           r.set_checkpoint(head);
           r.add_labels("even");
         });
       },
       Code::kInvalidArgument, "has 2 classes but 1 labels"},
      {"swap with duplicate labels",
       [&] {
         return Swap([&](auto& r) {
           r.set_checkpoint(head);
           r.add_labels("same");
           r.add_labels("same");
         });
       },
       Code::kInvalidArgument, "duplicate labels"},
      {"swap with labels inline and from a file",
       [&] {
         return Swap([&](auto& r) {
           r.set_checkpoint(head);
           r.add_labels("a");
           r.set_labels_file("heads/parity.labels");
         });
       },
       Code::kInvalidArgument, "not both"},
      {"swap from a path with ..",
       [&] { return Swap([](auto& r) { r.set_file("../../etc/passwd"); }); },
       Code::kInvalidArgument, "must not contain \"..\""},
      {"swap from an absolute path",
       [&] { return Swap([](auto& r) { r.set_file("/etc/passwd"); }); },
       Code::kInvalidArgument, "must be relative to the model's folder"},
      {"swap from a missing file",
       [&] { return Swap([](auto& r) { r.set_file("heads/missing.pt"); }); },
       Code::kNotFound, "heads/missing.pt"},
      {"swap of a head named with a slash",
       [&] {
         return Swap([&](auto& r) {
           r.set_head("a/b");
           r.set_checkpoint(head);
         });
       },
       Code::kInvalidArgument, "head name \"a/b\" must be"},
      {"swap of a head with an empty name",
       [&] {
         return Swap([&](auto& r) {
           r.set_head("");
           r.set_checkpoint(head);
         });
       },
       Code::kInvalidArgument, "head name \"\" must be"},
      {"swap on an unknown model",
       [&] {
         return Swap([&](auto& r) {
           r.set_model("cats");
           r.set_checkpoint(head);
         });
       },
       Code::kNotFound, "model \"cats\" is not loaded"},
      // Other management calls.
      {"remove the default head",
       [&] {
         v1::RemoveHeadRequest r;
         r.set_model("digits");
         r.set_head("digit");
         return client_->RemoveHead(r).status();
       },
       Code::kFailedPrecondition, "default head"},
      {"remove an unknown head",
       [&] {
         v1::RemoveHeadRequest r;
         r.set_model("digits");
         r.set_head("cats");
         return client_->RemoveHead(r).status();
       },
       Code::kNotFound, "cats"},
      {"load a model named ../digits",
       [&] {
         v1::LoadModelRequest r;
         r.set_model("../digits");
         return client_->LoadModel(r).status();
       },
       Code::kInvalidArgument, "model name \"../digits\" must be"},
      {"load a model the store lacks",
       [&] {
         v1::LoadModelRequest r;
         r.set_model("cats");
         return client_->LoadModel(r).status();
       },
       Code::kNotFound, "the model store has no model \"cats\""},
      {"load a model twice on one device",
       [&] {
         v1::LoadModelRequest r;
         r.set_model("digits");
         return client_->LoadModel(r).status();
       },
       Code::kAlreadyExists, "already loaded on cpu"},
      {"load on a GPU this machine lacks",
       [&] {
         v1::LoadModelRequest r;
         r.set_model("digits");
         r.set_device("cuda:0");
         return client_->LoadModel(r).status();
       },
       Code::kFailedPrecondition, "CUDA"},
      {"load on a device that does not exist",
       [&] {
         v1::LoadModelRequest r;
         r.set_model("digits");
         r.set_device("abacus");
         return client_->LoadModel(r).status();
       },
       Code::kInvalidArgument, "abacus"},
      {"unload a model that is not loaded",
       [&] {
         v1::UnloadModelRequest r;
         r.set_model("cats");
         return client_->UnloadModel(r).status();
       },
       Code::kNotFound, "model \"cats\" is not loaded"},
      {"list an unknown model", [&] { return client_->ListModels("cats").status(); },
       Code::kNotFound, "model \"cats\" is not loaded"},
  };
  ASSERT_GE(cases.size(), 40u);
  for (const BadCase& bad : cases) {
    const absl::Status status = bad.call();
    EXPECT_EQ(status.code(), bad.code) << bad.name << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(bad.message)) << bad.name;
    EXPECT_LE(status.message().size(), 1024u) << bad.name;
  }

  // Library diagnostics became parts of messages, not raw lines in the server's log.
  EXPECT_THAT(server_->Log(), ::testing::Not(HasSubstr("imdecode_")));
  // Protobuf's own complaints too (invalid UTF-8 above): events, not free-form lines.
  EXPECT_THAT(server_->Log(), ::testing::Not(HasSubstr("[libprotobuf")));
  EXPECT_THAT(server_->Log(), HasSubstr("event=protobuf_log"));

  // Still serving, with the configured head at version 1, and the right answer.
  v1::ClassifyRequest request;
  request.set_model("digits");
  *request.add_inputs() = Digit(100);
  const absl::StatusOr<v1::ClassifyResponse> good = client_->Classify(request);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->head_version(), 1);
  EXPECT_EQ(good->results(0).labels(0).label(), "0");
  const absl::StatusOr<v1::ListModelsResponse> models = client_->ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->models_size(), 1);
  EXPECT_EQ(models->models(0).heads_size(), 1);
  EXPECT_EQ(server_->Stop(), 0);
}

TEST_F(BadInputTest, ClientErrorsAreLoggedAtABoundedRateWithTheRequestedNames) {
  // 300 calls for an unknown model and 300 with a 600 KB name: one log line of each
  // kind (the first), every call in the metrics, and no line longer than 1 KB.
  const std::string png = testing::EncodePng(testing::DigitCell(7));
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(Classify({Image(png)}, "cats", "whiskers").code(),
              absl::StatusCode::kNotFound);
    ASSERT_EQ(Classify({Image(png)}, std::string(600000, 'm')).code(),
              absl::StatusCode::kInvalidArgument);
  }
  const std::string log = server_->Log();
  int failure_lines = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    EXPECT_LE(line.size(), 1024u) << line.substr(0, 200);
    if (absl::StrContains(line, "event=request_failed ")) ++failure_lines;
  }
  EXPECT_EQ(failure_lines, 2) << log.substr(0, 4000);
  EXPECT_THAT(log, HasSubstr("model=cats head=whiskers code=NOT_FOUND"));
  const absl::StatusOr<std::string> metrics =
      testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              HasSubstr(R"(code="NOT_FOUND",head="",model="",rpc="Classify"} 300)"));
  EXPECT_THAT(
      *metrics,
      HasSubstr(R"(code="INVALID_ARGUMENT",head="",model="",rpc="Classify"} 300)"));
}

}  // namespace
}  // namespace headway
