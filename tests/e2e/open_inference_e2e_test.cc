// End to end, the protocols a client meets: the Open Inference Protocol (KServe v2) on
// the real server's gRPC port, driven by a client generated from
// proto/inference/grpc_predict_v2.proto and checked against headway.v1's answers for
// the same digits; headway.v1's model metadata (the RPC, `headway describe`, the load
// generator's default inputs); embedding-only models.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/headway_client.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "tests/support/digits_data.h"
#include "tests/support/operations.h"
#include "tests/support/served.h"

namespace headway {
namespace {

using ::testing::HasSubstr;
using testing::Serve;
using testing::Served;

constexpr int kCells[] = {3, 777, 1500, 2222, 4100};
constexpr int kDigitPixels = 20 * 20;

class OpenInferenceClient {
 public:
  explicit OpenInferenceClient(const std::string& target, std::string token = "")
      : stub_(inference::GRPCInferenceService::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
        token_(std::move(token)) {}

  template <typename Request, typename Response, typename Method>
  grpc::Status Call(Method method, const Request& request, Response* response) const {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (!token_.empty()) context.AddMetadata("authorization", "Bearer " + token_);
    return ((*stub_).*method)(&context, request, response);
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) const {
    return Call(&inference::GRPCInferenceService::Stub::ModelInfer, request, response);
  }

 private:
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::string token_;
};

using Stub = inference::GRPCInferenceService::Stub;

// BYTES [N] of PNG digits, typed or raw.
inference::ModelInferRequest PngRequest(bool raw) {
  inference::ModelInferRequest request;
  request.set_model_name("digits");
  auto& input = *request.add_inputs();
  input.set_name("images");
  input.set_datatype("BYTES");
  input.add_shape(std::size(kCells));
  std::string raw_bytes;
  for (int cell : kCells) {
    const std::string png = testing::EncodePng(testing::DigitCell(cell));
    if (raw) {
      const uint32_t size = png.size();
      raw_bytes.append(reinterpret_cast<const char*>(&size), 4);
      raw_bytes += png;
    } else {
      input.mutable_contents()->add_bytes_contents(png);
    }
  }
  if (raw) request.add_raw_input_contents(raw_bytes);
  return request;
}

// headway.v1's answers for kCells: top-10 labels and embeddings.
struct V1Answers {
  v1::ClassifyResponse classified;
  v1::EmbedResponse embedded;
};

V1Answers AskV1(const HeadwayClient& client, const std::string& head = "") {
  V1Answers answers;
  v1::ClassifyRequest classify;
  classify.set_model("digits");
  classify.set_head(head);
  classify.set_top_k(10);
  v1::EmbedRequest embed;
  embed.set_model("digits");
  for (int cell : kCells) {
    v1::Input input;
    input.set_image(testing::EncodePng(testing::DigitCell(cell)));
    *classify.add_inputs() = input;
    *embed.add_inputs() = input;
  }
  absl::StatusOr<v1::ClassifyResponse> classified = client.Classify(classify);
  EXPECT_TRUE(classified.ok()) << classified.status();
  if (classified.ok()) answers.classified = *classified;
  absl::StatusOr<v1::EmbedResponse> embedded = client.Embed(embed);
  EXPECT_TRUE(embedded.ok()) << embedded.status();
  if (embedded.ok()) answers.embedded = *embedded;
  return answers;
}

// An output's FP32 values, from its typed contents or its raw entry.
std::vector<float> Floats(const inference::ModelInferResponse& response, int output) {
  if (response.raw_output_contents_size() > 0) {
    const std::string& raw = response.raw_output_contents(output);
    std::vector<float> values(raw.size() / sizeof(float));
    std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
    return values;
  }
  const auto& values = response.outputs(output).contents().fp32_contents();
  return {values.begin(), values.end()};
}

int OutputIndex(const inference::ModelInferResponse& response, const std::string& name) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() == name) return i;
  }
  return -1;
}

// Checks a response's embedding and probabilities against headway.v1's.
void ExpectMatchesV1(const inference::ModelInferResponse& response,
                     const V1Answers& v1_answers, const std::string& what) {
  SCOPED_TRACE(what);
  const int n = std::size(kCells);
  EXPECT_EQ(response.model_name(), "digits");
  EXPECT_EQ(response.model_version(), "1");
  const int embedding = OutputIndex(response, "embedding");
  ASSERT_GE(embedding, 0);
  const int dim = v1_answers.embedded.dimension();
  EXPECT_EQ(response.outputs(embedding).datatype(), "FP32");
  ASSERT_EQ(response.outputs(embedding).shape_size(), 2);
  EXPECT_EQ(response.outputs(embedding).shape(0), n);
  EXPECT_EQ(response.outputs(embedding).shape(1), dim);
  const std::vector<float> features = Floats(response, embedding);
  ASSERT_EQ(features.size(), static_cast<size_t>(n * dim));
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < dim; ++j) {
      worst = std::max(worst, std::abs(double(features[i * dim + j]) -
                                       v1_answers.embedded.embeddings(i).values(j)));
    }
  }
  EXPECT_LE(worst, 1e-5);

  const int probabilities = OutputIndex(response, "probabilities");
  ASSERT_GE(probabilities, 0);
  ASSERT_EQ(response.outputs(probabilities).shape_size(), 2);
  EXPECT_EQ(response.outputs(probabilities).shape(1), 10);
  const std::vector<float> scores = Floats(response, probabilities);
  ASSERT_EQ(scores.size(), static_cast<size_t>(n * 10));
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (const v1::ScoredLabel& label : v1_answers.classified.results(i).labels()) {
      EXPECT_NEAR(scores[i * 10 + label.index()], label.score(), 1e-6);
      sum += scores[i * 10 + label.index()];
    }
    EXPECT_NEAR(sum, 1.0, 1e-4);
  }
  EXPECT_EQ(response.parameters().at("head").string_param(), "digit");
}

class OpenInferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    served_ = Serve(testing::ModelStore());
    ASSERT_NE(served_.client, nullptr);
    client_ = std::make_unique<OpenInferenceClient>(served_.server->target());
    admin_ = std::make_unique<OpenInferenceClient>(served_.server->target(),
                                                   served_.server->admin_token());
  }

  Served served_;
  std::unique_ptr<OpenInferenceClient> client_;
  std::unique_ptr<OpenInferenceClient> admin_;
};

TEST_F(OpenInferenceTest, HealthAndMetadataDescribeTheServerAndItsModels) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(
      client_->Call(&Stub::ServerLive, inference::ServerLiveRequest(), &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(
      client_->Call(&Stub::ServerReady, inference::ServerReadyRequest(), &ready).ok());
  EXPECT_TRUE(ready.ready());

  inference::ModelReadyRequest model_ready;
  model_ready.set_name("digits");
  inference::ModelReadyResponse model_ready_response;
  ASSERT_TRUE(client_->Call(&Stub::ModelReady, model_ready, &model_ready_response).ok());
  EXPECT_TRUE(model_ready_response.ready());
  model_ready.set_name("nonexistent");
  EXPECT_EQ(
      client_->Call(&Stub::ModelReady, model_ready, &model_ready_response).error_code(),
      grpc::StatusCode::NOT_FOUND);

  inference::ServerMetadataResponse server;
  ASSERT_TRUE(
      client_->Call(&Stub::ServerMetadata, inference::ServerMetadataRequest(), &server)
          .ok());
  EXPECT_EQ(server.name(), "headway");
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(server.version(), '.')).size(), 3u)
      << server.version();
  EXPECT_EQ(server.extensions_size(), 2);

  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("digits");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(client_->Call(&Stub::ModelMetadata, metadata_request, &metadata).ok());
  EXPECT_EQ(metadata.name(), "digits");
  ASSERT_EQ(metadata.versions_size(), 1);
  EXPECT_EQ(metadata.versions(0), "1");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_EQ(metadata.inputs(0).shape_size(), 4);
  EXPECT_EQ(metadata.inputs(0).shape(1), 1);
  EXPECT_EQ(metadata.inputs(0).shape(2), 20);
  EXPECT_EQ(metadata.inputs(0).shape(3), 20);
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "embedding");
  EXPECT_EQ(metadata.outputs(1).name(), "probabilities");
  EXPECT_EQ(metadata.outputs(1).shape(1), 10);
  metadata_request.set_name("nonexistent");
  EXPECT_EQ(client_->Call(&Stub::ModelMetadata, metadata_request, &metadata).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(OpenInferenceTest, EveryInputFormGivesHeadwayV1sAnswers) {
  const V1Answers v1_answers = AskV1(*served_.client);
  for (bool raw : {false, true}) {
    inference::ModelInferResponse response;
    const grpc::Status status = client_->Infer(PngRequest(raw), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.raw_output_contents_size(), raw ? 2 : 0);
    ExpectMatchesV1(response, v1_answers, raw ? "BYTES raw" : "BYTES typed");
  }

  // Pixels: UINT8 [N,20,20,1]; preprocessed: FP32 [N,1,20,20].
  std::string pixels;
  std::vector<float> preprocessed;
  for (int cell : kCells) {
    const cv::Mat digit = testing::DigitCell(cell);
    ASSERT_TRUE(digit.isContinuous());
    pixels.append(reinterpret_cast<const char*>(digit.data), kDigitPixels);
    for (int i = 0; i < kDigitPixels; ++i) {
      preprocessed.push_back((digit.data[i] / 255.0f - testing::DigitsMean()) /
                             testing::DigitsStd());
    }
  }
  const int n = std::size(kCells);
  for (bool raw : {false, true}) {
    inference::ModelInferRequest request;
    request.set_model_name("digits");
    auto& input = *request.add_inputs();
    input.set_name("pixels");
    input.set_datatype("UINT8");
    for (int dim : {n, 20, 20, 1}) input.add_shape(dim);
    if (raw) {
      request.add_raw_input_contents(pixels);
    } else {
      for (unsigned char value : pixels)
        input.mutable_contents()->add_uint_contents(value);
    }
    inference::ModelInferResponse response;
    const grpc::Status status = client_->Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ExpectMatchesV1(response, v1_answers, raw ? "UINT8 raw" : "UINT8 typed");

    input.set_datatype("FP32");
    input.clear_shape();
    for (int dim : {n, 1, 20, 20}) input.add_shape(dim);
    input.clear_contents();
    request.clear_raw_input_contents();
    if (raw) {
      request.add_raw_input_contents(
          std::string(reinterpret_cast<const char*>(preprocessed.data()),
                      preprocessed.size() * sizeof(float)));
    } else {
      input.mutable_contents()->mutable_fp32_contents()->Add(preprocessed.begin(),
                                                             preprocessed.end());
    }
    const grpc::Status fp32_status = client_->Infer(request, &response);
    ASSERT_TRUE(fp32_status.ok()) << fp32_status.error_message();
    ExpectMatchesV1(response, v1_answers, raw ? "FP32 raw" : "FP32 typed");
  }
}

TEST_F(OpenInferenceTest, ClassificationExtensionAndHeadParameter) {
  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("parity");
  swap.set_file("heads/parity.pt");
  swap.set_labels_file("heads/parity.labels");
  ASSERT_TRUE(served_.client->HotSwapHead(swap).ok());
  const V1Answers digit = AskV1(*served_.client);
  const V1Answers parity = AskV1(*served_.client, "parity");
  for (bool raw : {false, true}) {
    inference::ModelInferRequest request = PngRequest(raw);
    request.set_id("request-17");
    auto& output = *request.add_outputs();
    output.set_name("probabilities");
    (*output.mutable_parameters())["classification"].set_int64_param(3);
    inference::ModelInferResponse response;
    const grpc::Status status = client_->Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.id(), "request-17");
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
    EXPECT_EQ(response.outputs(0).shape(1), 3);
    std::vector<std::string> elements;
    if (raw) {
      absl::string_view rest = response.raw_output_contents(0);
      while (rest.size() >= 4) {
        uint32_t size = 0;
        std::memcpy(&size, rest.data(), 4);
        elements.emplace_back(rest.substr(4, size));
        rest.remove_prefix(4 + size);
      }
    } else {
      elements.assign(response.outputs(0).contents().bytes_contents().begin(),
                      response.outputs(0).contents().bytes_contents().end());
    }
    ASSERT_EQ(elements.size(), std::size(kCells) * 3);
    for (size_t i = 0; i < std::size(kCells); ++i) {
      for (int k = 0; k < 3; ++k) {
        const v1::ScoredLabel& expected = digit.classified.results(i).labels(k);
        const std::vector<std::string> parts = absl::StrSplit(elements[i * 3 + k], ':');
        ASSERT_EQ(parts.size(), 3u) << elements[i * 3 + k];
        EXPECT_NEAR(std::stod(parts[0]), expected.score(), 1e-5);
        EXPECT_EQ(parts[1], absl::StrCat(expected.index()));
        EXPECT_EQ(parts[2], expected.label());
      }
    }
  }

  inference::ModelInferRequest request = PngRequest(false);
  (*request.mutable_parameters())["head"].set_string_param("parity");
  request.add_outputs()->set_name("probabilities");
  inference::ModelInferResponse response;
  ASSERT_TRUE(client_->Infer(request, &response).ok());
  EXPECT_EQ(response.parameters().at("head").string_param(), "parity");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).shape(1), 2);
  const std::vector<float> scores = Floats(response, 0);
  for (size_t i = 0; i < std::size(kCells); ++i) {
    const v1::ScoredLabel& best = parity.classified.results(i).labels(0);
    EXPECT_NEAR(scores[i * 2 + best.index()], best.score(), 1e-6);
  }
}

TEST_F(OpenInferenceTest, BadRequestsGetTheProtocolsErrorsNamingTheProblem) {
  const struct {
    std::string what;
    std::function<void(inference::ModelInferRequest&)> change;
    grpc::StatusCode code;
    std::string message;
  } cases[] = {
      {"unknown model", [](auto& r) { r.set_model_name("nonexistent"); },
       grpc::StatusCode::NOT_FOUND, "nonexistent"},
      {"unknown version", [](auto& r) { r.set_model_version("7"); },
       grpc::StatusCode::NOT_FOUND, "version 1"},
      {"INT64 input", [](auto& r) { r.mutable_inputs(0)->set_datatype("INT64"); },
       grpc::StatusCode::INVALID_ARGUMENT, "input \"images\": datatype \"INT64\""},
      {"FP32 of another shape",
       [](auto& r) {
         auto& input = *r.mutable_inputs(0);
         input.set_datatype("FP32");
         input.clear_shape();
         for (int dim : {1, 3, 20, 20}) input.add_shape(dim);
         input.clear_contents();
         input.mutable_contents()->mutable_fp32_contents()->Resize(1200, 0.0f);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "is not the model's input [N,1,20,20]"},
      {"fewer images than the shape",
       [](auto& r) { r.mutable_inputs(0)->set_shape(0, 9); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "needs 9 values (bytes_contents; \"data\" in JSON); got 5"},
      {"two inputs", [](auto& r) { *r.add_inputs() = r.inputs(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "2 input tensors"},
      {"unknown output", [](auto& r) { r.add_outputs()->set_name("logits"); },
       grpc::StatusCode::INVALID_ARGUMENT, "output \"logits\" is not one of the model's"},
      {"unknown head",
       [](auto& r) { (*r.mutable_parameters())["head"].set_string_param("colour"); },
       grpc::StatusCode::NOT_FOUND, "has no head \"colour\""},
      {"typed and raw", [](auto& r) { r.add_raw_input_contents("xyz"); },
       grpc::StatusCode::INVALID_ARGUMENT, "both typed and in raw_input_contents"},
      {"not an image",
       [](auto& r) {
         r.mutable_inputs(0)->mutable_contents()->set_bytes_contents(1, "junk");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "input 1"},
      {"negative dimension", [](auto& r) { r.mutable_inputs(0)->set_shape(0, -5); },
       grpc::StatusCode::INVALID_ARGUMENT, "negative dimension"},
      {"a million empty pixel images",
       [](auto& r) {
         auto& input = *r.mutable_inputs(0);
         input.set_datatype("UINT8");
         input.clear_shape();
         for (int dim : {1000000, 0, 20, 1}) input.add_shape(dim);
         input.clear_contents();
       },
       grpc::StatusCode::INVALID_ARGUMENT, "batch dimension 1000000 is over 65536"},
      {"empty item dimension",
       [](auto& r) {
         auto& input = *r.mutable_inputs(0);
         input.set_datatype("UINT8");
         input.clear_shape();
         for (int dim : {2, 0, 20, 1}) input.add_shape(dim);
         input.clear_contents();
       },
       grpc::StatusCode::INVALID_ARGUMENT, "has an empty dimension"},
      {"UINT8 over 255",
       [](auto& r) {
         auto& input = *r.mutable_inputs(0);
         input.set_datatype("UINT8");
         input.clear_shape();
         for (int dim : {1, 20, 20, 1}) input.add_shape(dim);
         input.clear_contents();
         input.mutable_contents()->mutable_uint_contents()->Resize(400, 256);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "UINT8 value 256"},
  };
  for (const auto& c : cases) {
    inference::ModelInferRequest request = PngRequest(false);
    c.change(request);
    inference::ModelInferResponse response;
    const grpc::Status status = client_->Infer(request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.what;
  }
  // The server serves on, and the calls were counted under their own rpc label.
  inference::ModelInferResponse response;
  EXPECT_TRUE(client_->Infer(PngRequest(true), &response).ok());
  absl::StatusOr<std::string> metrics =
      testing::HttpGet(served_.server->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, HasSubstr("rpc=\"ModelInfer\""));
}

TEST_F(OpenInferenceTest, RepositoryExtensionLoadsAndUnloadsForAdminsOnly) {
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(
      client_->Call(&Stub::RepositoryIndex, inference::RepositoryIndexRequest(), &index)
          .ok());
  ASSERT_EQ(index.models_size(), 1);
  EXPECT_EQ(index.models(0).name(), "digits");
  EXPECT_EQ(index.models(0).state(), "READY");
  EXPECT_EQ(index.models(0).version(), "1");

  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("digits");
  inference::RepositoryModelUnloadResponse unloaded;
  EXPECT_EQ(client_->Call(&Stub::RepositoryModelUnload, unload, &unloaded).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status unload_status =
      admin_->Call(&Stub::RepositoryModelUnload, unload, &unloaded);
  ASSERT_TRUE(unload_status.ok()) << unload_status.error_message();

  inference::ModelReadyRequest ready_request;
  ready_request.set_name("digits");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(client_->Call(&Stub::ModelReady, ready_request, &ready).ok());
  EXPECT_FALSE(ready.ready());
  inference::RepositoryIndexRequest only_ready;
  only_ready.set_ready(true);
  ASSERT_TRUE(client_->Call(&Stub::RepositoryIndex, only_ready, &index).ok());
  EXPECT_EQ(index.models_size(), 0);
  inference::ModelInferResponse response;
  EXPECT_EQ(client_->Infer(PngRequest(false), &response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  inference::RepositoryModelLoadRequest load;
  load.set_model_name("digits");
  inference::RepositoryModelLoadResponse loaded;
  const grpc::Status load_status =
      admin_->Call(&Stub::RepositoryModelLoad, load, &loaded);
  ASSERT_TRUE(load_status.ok()) << load_status.error_message();
  ASSERT_TRUE(client_->Call(&Stub::ModelReady, ready_request, &ready).ok());
  EXPECT_TRUE(ready.ready());
  EXPECT_TRUE(client_->Infer(PngRequest(false), &response).ok());
}

TEST_F(OpenInferenceTest, ModelMetadataSaysWhatTheModelTakesAndGives) {
  absl::StatusOr<v1::GetModelMetadataResponse> metadata =
      served_.client->GetModelMetadata("digits");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->model(), "digits");
  EXPECT_EQ(metadata->version(), 1);
  EXPECT_EQ(metadata->feature_dim(), 64);
  EXPECT_EQ(metadata->input().channels(), 1);
  EXPECT_EQ(metadata->input().height(), 20);
  EXPECT_EQ(metadata->input().width(), 20);
  EXPECT_EQ(metadata->input().resize(), v1::InputSpec::STRETCH);
  ASSERT_EQ(metadata->input().mean_size(), 1);
  EXPECT_FLOAT_EQ(metadata->input().mean(0), testing::DigitsMean());
  ASSERT_EQ(metadata->accepted_inputs_size(), 3);
  const v1::AcceptedInput& preprocessed = metadata->accepted_inputs(2);
  EXPECT_EQ(preprocessed.dtype(), v1::FLOAT32);
  EXPECT_EQ(
      std::vector<int64_t>(preprocessed.shape().begin(), preprocessed.shape().end()),
      std::vector<int64_t>({1, 20, 20}));
  ASSERT_EQ(metadata->heads_size(), 1);
  EXPECT_EQ(metadata->default_head(), "digit");
  EXPECT_EQ(metadata->heads(0).num_classes(), 10);
  ASSERT_EQ(metadata->heads(0).labels_size(), 10);
  EXPECT_EQ(metadata->heads(0).labels(7), "7");
  EXPECT_EQ(metadata->heads(0).digest().size(), 64u);
  EXPECT_EQ(metadata->max_inputs_per_request(), 64);
  ASSERT_EQ(metadata->instances_size(), 1);
  EXPECT_EQ(metadata->instances(0).device(), "cpu");
  EXPECT_EQ(served_.client->GetModelMetadata("nonexistent").status().code(),
            absl::StatusCode::kNotFound);

  const std::string target = served_.server->target();
  std::string output;
  EXPECT_EQ(testing::RunCommand(absl::StrCat(HEADWAY_CLI_BINARY, " --target=", target,
                                             " describe digits"),
                                &output),
            0);
  EXPECT_THAT(output, HasSubstr("digit v1 (default)  10 classes: 0, 1, 2"));
  EXPECT_THAT(output, HasSubstr("tensor FLOAT32 [1,20,20]"));
  // The bundled config sets no batching: the server's plan for a small model, as many
  // inputs as a 20 ms pass holds, 8 to 32 (fewer than 32 on a slow machine or under a
  // sanitizer, as the pass time is measured at load).
  const int batch = metadata->batching().max_batch_size();
  EXPECT_GE(batch, 8);
  EXPECT_LE(batch, 32);
  EXPECT_THAT(output, HasSubstr(absl::StrCat("max_batch_size=", batch,
                                             " (at least 8, as many as a 20 ms pass")));
  EXPECT_THAT(output, HasSubstr("flood_batch_size="));
  EXPECT_GE(metadata->model_workers(), 1);
  // Given neither images nor a tensor shape, the load generator sends tensors of the
  // model's input shape, read from the metadata, and every call succeeds.
  output.clear();
  EXPECT_EQ(testing::RunCommand(absl::StrCat(HEADWAY_LOADGEN_BINARY, " --target=", target,
                                             " --requests=50 --warmup=0s "
                                             "--concurrency=2 --progress=false 2>&1"),
                                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("sending random FLOAT32 tensors [1,20,20]"));
  // The empty-RPC ceiling needs no model and no inputs.
  output.clear();
  EXPECT_EQ(testing::RunCommand(absl::StrCat(HEADWAY_LOADGEN_BINARY, " --target=", target,
                                             " --rpc=health --model=nonexistent "
                                             "--requests=20 --warmup=0s --progress=false "
                                             "2>&1"),
                                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("errors: none"));
}

// With batching on, a headway.v1 Classify and an Open Inference ModelInfer that arrive
// together share one backbone pass: the batch-size histogram counts one pass of two
// inputs.
TEST(MixedProtocolsTest, OneBackbonePassServesBothProtocols) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::ofstream(store / "digits" / "config.pbtxt", std::ios::app)
      << "batching { max_batch_size: 8 max_queue_delay_us: 300000 "
         "wait_for_full_batch: true }\n";
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);
  OpenInferenceClient open(served.server->target());
  v1::ClassifyRequest classify;
  classify.set_model("digits");
  classify.add_inputs()->set_image(testing::EncodePng(testing::DigitCell(kCells[0])));
  inference::ModelInferRequest infer = PngRequest(false);
  infer.mutable_inputs(0)->set_shape(0, 1);
  infer.mutable_inputs(0)->mutable_contents()->mutable_bytes_contents()->DeleteSubrange(
      1, 4);
  absl::StatusOr<v1::ClassifyResponse> classified;
  grpc::Status inferred;
  inference::ModelInferResponse response;
  std::thread v1_caller([&] { classified = served.client->Classify(classify); });
  std::thread v2_caller([&] { inferred = open.Infer(infer, &response); });
  v1_caller.join();
  v2_caller.join();
  ASSERT_TRUE(classified.ok()) << classified.status();
  ASSERT_TRUE(inferred.ok()) << inferred.error_message();
  absl::StatusOr<std::string> metrics =
      testing::HttpGet(served.server->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics,
              HasSubstr(R"(headway_batch_size_count{device="cpu",model="digits"} 1)"));
  EXPECT_THAT(*metrics,
              HasSubstr(R"(headway_batch_size_sum{device="cpu",model="digits"} 2)"));
  std::filesystem::remove_all(store);
}

// A model folder whose config has no heads: the digits backbone as a pure feature
// extractor.
std::filesystem::path StoreWithFeatureExtractor() {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path features = store / "features";
  std::filesystem::create_directories(features / "heads");
  std::filesystem::copy_file(store / "digits" / "backbone.pt", features / "backbone.pt");
  for (const char* file : {"heads/digit.pt", "heads/digit.labels"}) {
    std::filesystem::copy_file(store / "digits" / file, features / file);
  }
  std::ofstream(features / "config.pbtxt") << R"pb(
    name: "features"
    version: 3
    backbone { file: "backbone.pt" format: TORCHSCRIPT }
    input { channels: 1 height: 20 width: 20 mean: 0.1327 std: 0.291 }
  )pb";
  return store;
}

// The "timeout" request parameter (microseconds, as Triton's clients send it) is the
// request's deadline on the server even when the gRPC call has a longer one: a request
// held for a batch past it is answered DEADLINE_EXCEEDED by the server, not computed;
// a bad value is INVALID_ARGUMENT naming the parameter.
TEST(TimeoutParameterTest, IsTheRequestsDeadlineOnTheServer) {
  // A lone request waits 300 ms for a batch to fill.
  const std::filesystem::path store = testing::SlowBatchingStore(absl::Milliseconds(300));
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);
  OpenInferenceClient open(served.server->target());  // a 60 s gRPC deadline
  const auto with_timeout = [](inference::InferParameter timeout) {
    inference::ModelInferRequest request = PngRequest(false);
    (*request.mutable_parameters())["timeout"] = timeout;
    return request;
  };
  inference::InferParameter timeout;
  inference::ModelInferResponse response;

  timeout.set_int64_param(50000);  // 50 ms
  grpc::Status status = open.Infer(with_timeout(timeout), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(status.error_message(), HasSubstr("deadline passed"));

  timeout.set_int64_param(30000000);  // 30 s
  status = open.Infer(with_timeout(timeout), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(open.Infer(PngRequest(false), &response).ok());

  inference::InferParameter negative;
  negative.set_int64_param(-5);
  inference::InferParameter text;
  text.set_string_param("50ms");
  for (const inference::InferParameter& bad : {negative, text}) {
    status = open.Infer(with_timeout(bad), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad.ShortDebugString();
    EXPECT_THAT(status.error_message(), HasSubstr("parameter \"timeout\" must be a "
                                                  "positive integer (microseconds)"));
  }
}

TEST(EmbeddingOnlyModelTest, ServesEmbedAndGetsItsFirstHeadByHotSwap) {
  const std::filesystem::path store = StoreWithFeatureExtractor();
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);

  v1::Input png;
  png.set_image(testing::EncodePng(testing::DigitCell(kCells[0])));
  v1::EmbedRequest embed;
  embed.set_model("features");
  *embed.add_inputs() = png;
  absl::StatusOr<v1::EmbedResponse> embedded = served.client->Embed(embed);
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  EXPECT_EQ(embedded->model_version(), 3);

  v1::ClassifyRequest classify;
  classify.set_model("features");
  *classify.add_inputs() = png;
  absl::StatusOr<v1::ClassifyResponse> refused = served.client->Classify(classify);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("model \"features\" has no head"));

  // The Open Inference Protocol offers the embedding only.
  OpenInferenceClient open(served.server->target());
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("features");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(open.Call(&Stub::ModelMetadata, metadata_request, &metadata).ok());
  ASSERT_EQ(metadata.outputs_size(), 1);
  EXPECT_EQ(metadata.outputs(0).name(), "embedding");
  inference::ModelInferRequest request = PngRequest(false);
  request.set_model_name("features");
  inference::ModelInferResponse response;
  ASSERT_TRUE(open.Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "embedding");
  request.add_outputs()->set_name("probabilities");
  const grpc::Status no_head = open.Infer(request, &response);
  EXPECT_EQ(no_head.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(no_head.error_message(), HasSubstr("it has no head"));

  // Its first head, by HotSwapHead, becomes its default head.
  v1::HotSwapHeadRequest swap;
  swap.set_model("features");
  swap.set_head("digit");
  swap.set_file("heads/digit.pt");
  swap.set_labels_file("heads/digit.labels");
  absl::StatusOr<v1::HotSwapHeadResponse> swapped = served.client->HotSwapHead(swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  absl::StatusOr<v1::ClassifyResponse> classified = served.client->Classify(classify);
  ASSERT_TRUE(classified.ok()) << classified.status();
  EXPECT_EQ(classified->head(), "digit");
  classify.set_model("digits");
  absl::StatusOr<v1::ClassifyResponse> from_digits = served.client->Classify(classify);
  ASSERT_TRUE(from_digits.ok()) << from_digits.status();
  EXPECT_EQ(classified->results(0).labels(0).label(),
            from_digits->results(0).labels(0).label());
  std::filesystem::remove_all(store);
}

}  // namespace
}  // namespace headway
