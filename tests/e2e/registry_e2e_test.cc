// End to end: the registry through the real server and client: checkpoints of every
// format served with PyTorch's outputs, loading and unloading models, persisted head
// swaps that survive a restart, and head removal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>

#include "client/headway_client.h"
#include "tests/support/checkpoint_fixtures.h"
#include "tests/support/digits_data.h"
#include "tests/support/served.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testing::ReadBytes;
using testing::Serve;
using testing::Served;

v1::Input FloatInput(const std::vector<float>& batch, int item) {
  constexpr int kItem = 3 * 64 * 64;
  v1::Input input;
  v1::Tensor& tensor = *input.mutable_tensor();
  tensor.set_dtype(v1::FLOAT32);
  for (int d : {3, 64, 64}) tensor.add_shape(d);
  tensor.set_data(reinterpret_cast<const char*>(batch.data() + item * kItem),
                  kItem * sizeof(float));
  return input;
}

TEST(RegistryE2eTest, CheckpointsOfEveryKindServePyTorchsOutputs) {
  Served served = Serve(testing::CheckpointDir() / "store");
  ASSERT_NE(served.client, nullptr);
  const struct {
    std::string model;
    std::string arch;
  } cases[] = {{"resnet18_training", "resnet18"},
               {"mobilenet_v3_small_cuda0", "mobilenet_v3_small"}};
  for (const auto& c : cases) {
    testing::ArchitectureFixture fixture;
    for (const auto& f : testing::Architectures()) {
      if (f.arch == c.arch) fixture = f;
    }
    const std::vector<float> input = fixture.Input();
    const std::vector<float> features = fixture.Features();
    const std::vector<float> logits = fixture.Logits();

    v1::EmbedRequest embed;
    embed.set_model(c.model);
    *embed.add_inputs() = FloatInput(input, 0);
    *embed.add_inputs() = FloatInput(input, 1);
    const absl::StatusOr<v1::EmbedResponse> embedded = served.client->Embed(embed);
    ASSERT_TRUE(embedded.ok()) << c.model << ": " << embedded.status();
    ASSERT_EQ(embedded->dimension(), fixture.feature_dim);
    double worst = 0;
    for (int item = 0; item < 2; ++item) {
      for (int i = 0; i < fixture.feature_dim; ++i) {
        worst = std::max(worst, std::abs(double(embedded->embeddings(item).values(i)) -
                                         features[item * fixture.feature_dim + i]));
      }
    }
    std::cout << "served parity " << c.model << " Embed: max abs diff " << worst << "\n";
    EXPECT_LE(worst, 1e-4) << c.model;

    v1::ClassifyRequest classify;
    classify.set_model(c.model);
    classify.set_top_k(5);
    *classify.add_inputs() = FloatInput(input, 0);
    *classify.add_inputs() = FloatInput(input, 1);
    const absl::StatusOr<v1::ClassifyResponse> classified =
        served.client->Classify(classify);
    ASSERT_TRUE(classified.ok()) << c.model << ": " << classified.status();
    double worst_score = 0;
    for (int item = 0; item < 2; ++item) {
      const float* row = logits.data() + item * fixture.classes;
      std::vector<int> order(fixture.classes);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                        [&](int a, int b) { return row[a] > row[b]; });
      const double max_logit = row[order[0]];
      double total = 0;
      for (int k = 0; k < fixture.classes; ++k) total += std::exp(row[k] - max_logit);
      for (int k = 0; k < 5; ++k) {
        const v1::ScoredLabel& label = classified->results(item).labels(k);
        EXPECT_EQ(label.index(), order[k])
            << c.model << " item " << item << " rank " << k;
        worst_score = std::max(
            worst_score,
            std::abs(label.score() - std::exp(row[order[k]] - max_logit) / total));
      }
    }
    std::cout << "served parity " << c.model << " Classify top-5 scores: max abs diff "
              << worst_score << "\n";
    EXPECT_LE(worst_score, 1e-4);
  }

  const absl::StatusOr<v1::ListModelsResponse> resnet =
      served.client->ListModels("resnet18_training");
  ASSERT_TRUE(resnet.ok()) << resnet.status();
  EXPECT_EQ(resnet->models(0).backbone_format(), "training checkpoint");
  EXPECT_EQ(resnet->models(0).epoch(), 7);
  EXPECT_THAT(resnet->models(0).load_report(), HasSubstr("loaded 120 tensors"));
  EXPECT_EQ(resnet->models(0).heads(0).num_classes(), 1000);

  v1::ClassifyRequest labelled;
  labelled.set_model("resnet18_training");
  labelled.set_top_k(1);
  *labelled.add_inputs() = FloatInput(testing::Architectures()[0].Input(), 0);
  EXPECT_THAT(served.client->Classify(labelled)->results(0).labels(0).label(),
              HasSubstr("class_"));

  const absl::StatusOr<v1::ListModelsResponse> mobilenet =
      served.client->ListModels("mobilenet_v3_small_cuda0");
  ASSERT_TRUE(mobilenet.ok()) << mobilenet.status();
  EXPECT_EQ(mobilenet->models(0).device(), "cpu");
  EXPECT_THAT(mobilenet->models(0).saved_locations(), ElementsAre("cuda:0"));
  EXPECT_EQ(mobilenet->models(0).backbone_format(), "state_dict");
}

TEST(RegistryE2eTest, LoadAndUnloadModels) {
  Served served = Serve(testing::ModelStore());
  ASSERT_NE(served.client, nullptr);
  HeadwayClient& client = *served.client;
  v1::ClassifyRequest classify;
  classify.set_model("digits");
  classify.add_inputs()->set_image(testing::EncodePng(testing::DigitCell(0)));

  v1::UnloadModelRequest unload;
  unload.set_model("digits");
  const absl::StatusOr<v1::UnloadModelResponse> unloaded = client.UnloadModel(unload);
  ASSERT_TRUE(unloaded.ok()) << unloaded.status();
  EXPECT_THAT(unloaded->devices(), ElementsAre("cpu"));
  EXPECT_EQ(*client.CheckHealth("digits"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(client.Classify(classify).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client.UnloadModel(unload).status().code(), absl::StatusCode::kNotFound);

  v1::LoadModelRequest load;
  load.set_model("digits");
  load.set_device("cpu");
  const absl::StatusOr<v1::LoadModelResponse> loaded = client.LoadModel(load);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->status().device(), "cpu");
  EXPECT_EQ(loaded->status().feature_dim(), 64);
  EXPECT_EQ(*client.CheckHealth("digits"), HealthCheckResponse::SERVING);
  const absl::StatusOr<v1::ClassifyResponse> answer = client.Classify(classify);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->device(), "cpu");

  EXPECT_EQ(client.LoadModel(load).status().code(), absl::StatusCode::kAlreadyExists);
  load.set_device("cuda:0");
  const absl::Status no_cuda = client.LoadModel(load).status();
  EXPECT_EQ(no_cuda.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_cuda.message(), HasSubstr("CUDA is not available"));
  load.set_device("tpu");
  EXPECT_EQ(client.LoadModel(load).status().code(), absl::StatusCode::kInvalidArgument);
  load.set_device("");
  load.set_model("nope");
  EXPECT_EQ(client.LoadModel(load).status().code(), absl::StatusCode::kNotFound);
  load.set_model("../models");
  EXPECT_EQ(client.LoadModel(load).status().code(), absl::StatusCode::kInvalidArgument);

  classify.set_device("cuda:3");
  const absl::Status wrong_device = client.Classify(classify).status();
  EXPECT_EQ(wrong_device.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(wrong_device.message(), HasSubstr("its devices: cpu"));
}

std::vector<std::string> HeadNames(const v1::ListModelsResponse& models) {
  std::vector<std::string> names;
  for (const v1::HeadStatus& head : models.models(0).heads()) {
    names.push_back(absl::StrCat(head.name(), ":", head.num_classes()));
  }
  return names;
}

TEST(RegistryE2eTest, PersistedSwapsSurviveARestartAndOthersDoNot) {
  const std::filesystem::path store = testing::CopyModelStore();
  {
    Served served = Serve(store);
    ASSERT_NE(served.client, nullptr);
    // Added under a new name from bytes sent in the request, persisted.
    v1::HotSwapHeadRequest add;
    add.set_model("digits");
    add.set_head("parity");
    add.set_checkpoint(ReadBytes(store / "digits/heads/parity.pt"));
    add.add_labels("even");
    add.add_labels("odd");
    add.set_persist(true);
    const absl::StatusOr<v1::HotSwapHeadResponse> added = served.client->HotSwapHead(add);
    ASSERT_TRUE(added.ok()) << added.status();
    EXPECT_THAT(added->devices(), ElementsAre("cpu"));
    // The configured head replaced for this run only.
    v1::HotSwapHeadRequest swap;
    swap.set_model("digits");
    swap.set_head("digit");
    swap.set_file("heads/parity.pt");
    ASSERT_TRUE(served.client->HotSwapHead(swap).ok());
    EXPECT_THAT(HeadNames(*served.client->ListModels()),
                ElementsAre("digit:2", "parity:2"));
    // Bad names never reach the store.
    add.set_head("../evil");
    EXPECT_EQ(served.client->HotSwapHead(add).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(std::filesystem::exists(store / "digits/config.pbtxt.tmp"));
  {
    Served served = Serve(store);
    ASSERT_NE(served.client, nullptr);
    EXPECT_THAT(HeadNames(*served.client->ListModels()),
                ElementsAre("digit:10", "parity:2"));
    v1::ClassifyRequest classify;
    classify.set_model("digits");
    classify.set_head("parity");
    classify.add_inputs()->set_image(testing::EncodePng(testing::DigitCell(0)));
    const absl::StatusOr<v1::ClassifyResponse> parity = served.client->Classify(classify);
    ASSERT_TRUE(parity.ok()) << parity.status();
    EXPECT_EQ(parity->results(0).labels(0).label(), "even");

    v1::RemoveHeadRequest remove;
    remove.set_model("digits");
    remove.set_head("parity");
    remove.set_persist(true);
    ASSERT_TRUE(served.client->RemoveHead(remove).ok());
    EXPECT_EQ(served.client->Classify(classify).status().code(),
              absl::StatusCode::kNotFound);
    remove.set_head("digit");
    EXPECT_EQ(served.client->RemoveHead(remove).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  {
    Served served = Serve(store);
    ASSERT_NE(served.client, nullptr);
    EXPECT_THAT(HeadNames(*served.client->ListModels()), ElementsAre("digit:10"));
  }
  std::filesystem::remove_all(store);
}

}  // namespace
}  // namespace headway
