// Every checkpoint format PyTorch users save, for two torchvision architectures: the
// served outputs must match PyTorch's (max abs difference within 1e-4, fp32).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "model_store/backbone.h"
#include "model_store/checkpoint.h"
#include "model_store/head.h"
#include "model_store/model_config.h"
#include "model_store/store/model_files.h"
#include "tests/support/checkpoint_fixtures.h"

namespace headway {
namespace {

using testing::ArchitectureFixture;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kTolerance = 1e-4;

std::string Bytes(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.value_or("");
}

double MaxAbsDiff(const at::Tensor& actual, const std::vector<float>& expected) {
  const at::Tensor flat = actual.to(torch::kCPU).contiguous().flatten();
  EXPECT_EQ(flat.numel(), static_cast<int64_t>(expected.size()));
  double worst = 0;
  for (int64_t i = 0; i < std::min<int64_t>(flat.numel(), expected.size()); ++i) {
    worst = std::max(worst, std::abs(double(flat[i].item<float>()) - expected[i]));
  }
  return worst;
}

class CheckpointFormatsTest : public ::testing::TestWithParam<ArchitectureFixture> {
 protected:
  const ArchitectureFixture& fixture() const { return GetParam(); }

  BackboneSpec Spec(const std::string& weights_suffix, bool with_architecture) const {
    BackboneSpec spec;
    spec.weights = Bytes(fixture().File(weights_suffix));
    if (with_architecture) spec.architecture = Bytes(fixture().File("arch.pt"));
    spec.load.ignore_prefixes = {fixture().head_prefix};
    spec.input_shape = {3, 64, 64};
    return spec;
  }

  at::Tensor InputBatch() const {
    std::vector<float> input = fixture().Input();
    return torch::from_blob(input.data(), {2, 3, 64, 64}, torch::kFloat32).clone();
  }

  // Loads the backbone and returns the max abs difference of its features from
  // PyTorch's, printing it for the record.
  double FeatureParity(const BackboneSpec& spec, const std::string& format,
                       BackboneLoadInfo* info = nullptr) const {
    absl::StatusOr<std::unique_ptr<Backbone>> backbone = Backbone::Load(spec);
    EXPECT_TRUE(backbone.ok()) << backbone.status();
    if (!backbone.ok()) return INFINITY;
    EXPECT_EQ((*backbone)->feature_dim(), fixture().feature_dim);
    if (info != nullptr) *info = (*backbone)->load_info();
    c10::InferenceMode inference;
    const double diff =
        MaxAbsDiff(*(*backbone)->Forward(InputBatch()), fixture().Features());
    std::cout << "parity " << fixture().arch << " backbone " << format
              << ": max abs diff " << diff << "\n";
    return diff;
  }

  double HeadParity(HeadSpec spec, const std::string& format,
                    std::shared_ptr<const Head>* loaded = nullptr) const {
    spec.name = "imagenet";
    spec.feature_dim = fixture().feature_dim;
    absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(spec);
    EXPECT_TRUE(head.ok()) << head.status();
    if (!head.ok()) return INFINITY;
    if (loaded != nullptr) *loaded = *head;
    std::vector<float> features = fixture().Features();
    c10::InferenceMode inference;
    const at::Tensor input =
        torch::from_blob(features.data(), {2, fixture().feature_dim}, torch::kFloat32);
    const double diff = MaxAbsDiff(*(*head)->Forward(input), fixture().Logits());
    std::cout << "parity " << fixture().arch << " head " << format << ": max abs diff "
              << diff << "\n";
    return diff;
  }
};

TEST_P(CheckpointFormatsTest, TracedTorchScript) {
  EXPECT_LE(FeatureParity(Spec("traced.pt", false), "torchscript-traced"), kTolerance);
}

TEST_P(CheckpointFormatsTest, ScriptedTorchScript) {
  EXPECT_LE(FeatureParity(Spec("scripted.pt", false), "torchscript-scripted"),
            kTolerance);
}

TEST_P(CheckpointFormatsTest, StateDictIntoArchitecture) {
  BackboneLoadInfo info;
  EXPECT_LE(FeatureParity(Spec("state_dict.pt", true), "state_dict", &info), kTolerance);
  EXPECT_EQ(info.contents, Checkpoint::Contents::kStateDict);
  EXPECT_TRUE(info.report.complete()) << info.report.Summary();
  EXPECT_GT(info.report.loaded, 50);
  EXPECT_THAT(info.saved_locations, ElementsAre("cpu"));
}

TEST_P(CheckpointFormatsTest, DataParallelStateDict) {
  EXPECT_LE(FeatureParity(Spec("dataparallel.pt", true), "dataparallel-state_dict"),
            kTolerance);
}

TEST_P(CheckpointFormatsTest, TrainingCheckpoint) {
  BackboneLoadInfo info;
  EXPECT_LE(FeatureParity(Spec("training.pt", true), "training-checkpoint", &info),
            kTolerance);
  EXPECT_EQ(info.contents, Checkpoint::Contents::kTrainingCheckpoint);
  EXPECT_EQ(info.epoch, 7);
  ASSERT_EQ(info.labels.size(), 1000u);
  EXPECT_EQ(info.labels[42], "class_0042");
}

TEST_P(CheckpointFormatsTest, SavedOnCuda0LoadsOnCpu) {
  BackboneLoadInfo info;
  EXPECT_LE(FeatureParity(Spec("cuda0.pt", true), "cuda0-state_dict-on-cpu", &info),
            kTolerance);
  EXPECT_THAT(info.saved_locations, ElementsAre("cuda:0"));
}

TEST_P(CheckpointFormatsTest, LegacyFormatIsAClearError) {
  const absl::StatusOr<std::unique_ptr<Backbone>> backbone =
      Backbone::Load(Spec("legacy.pt", true));
  EXPECT_EQ(backbone.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(backbone.status().message(), HasSubstr("legacy torch.save format"));
}

TEST_P(CheckpointFormatsTest, WeightsWithoutArchitectureAreAClearError) {
  const absl::StatusOr<std::unique_ptr<Backbone>> backbone =
      Backbone::Load(Spec("state_dict.pt", false));
  EXPECT_EQ(backbone.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(backbone.status().message(), HasSubstr("set backbone.architecture"));
}

TEST_P(CheckpointFormatsTest, ExpectedFormatIsChecked) {
  BackboneSpec spec = Spec("state_dict.pt", true);
  spec.expected_contents = Checkpoint::Contents::kTrainingCheckpoint;
  EXPECT_THAT(Backbone::Load(spec).status().message(),
              HasSubstr("expected a training checkpoint but the file is a state_dict"));
}

TEST_P(CheckpointFormatsTest, StrictLoadNamesTheHeadKeysItDoesNotExpect) {
  BackboneSpec spec = Spec("state_dict.pt", true);
  spec.load.ignore_prefixes.clear();
  const absl::Status status = Backbone::Load(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("unexpected: " + fixture().head_prefix + "weight"));
}

TEST_P(CheckpointFormatsTest, PartialLoadReportsMissingAndMismatchedKeys) {
  absl::StatusOr<Checkpoint> checkpoint =
      ReadCheckpoint(Bytes(fixture().File("state_dict.pt")), c10::Device(c10::kCPU));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  // Drop the first key and give the second a wrong shape, as a fine-tuned variant would.
  StateDict edited(checkpoint->state_dict.begin() + 1, checkpoint->state_dict.end());
  const std::string mismatched_name = edited[0].first;
  edited[0].second = torch::zeros({3});
  const std::string missing_name = checkpoint->state_dict[0].first;

  absl::StatusOr<Checkpoint> architecture =
      ReadCheckpoint(Bytes(fixture().File("arch.pt")), c10::Device(c10::kCPU));
  ASSERT_TRUE(architecture.ok()) << architecture.status();
  StateDictOptions options;
  options.ignore_prefixes = {fixture().head_prefix};
  const absl::StatusOr<StateDictReport> strict =
      LoadStateDict(*architecture->module, edited, options);
  EXPECT_THAT(strict.status().message(), HasSubstr("missing: " + missing_name));
  EXPECT_THAT(strict.status().message(), HasSubstr("shape mismatch: " + mismatched_name));

  options.mode = LoadMode::kPartial;
  const absl::StatusOr<StateDictReport> partial =
      LoadStateDict(*architecture->module, edited, options);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_THAT(partial->missing, ElementsAre(missing_name));
  ASSERT_EQ(partial->mismatched.size(), 1u);
  EXPECT_THAT(partial->mismatched[0],
              HasSubstr(mismatched_name + ": saved [3] vs module"));
  EXPECT_TRUE(partial->unexpected.empty());
  EXPECT_EQ(partial->loaded, static_cast<int64_t>(edited.size()) - 1 -
                                 /*head keys*/ 2);
}

TEST_P(CheckpointFormatsTest, HeadFromItsOwnStateDict) {
  HeadSpec spec;
  spec.checkpoint = Bytes(fixture().File("head_state_dict.pt"));
  std::shared_ptr<const Head> head;
  EXPECT_LE(HeadParity(spec, "state_dict", &head), kTolerance);
  EXPECT_EQ(head->num_classes(), fixture().classes);
  EXPECT_EQ(head->labels()[5], "5");
}

TEST_P(CheckpointFormatsTest, HeadFromTheWholeModelsStateDict) {
  HeadSpec spec;
  spec.checkpoint = Bytes(fixture().File("state_dict.pt"));
  spec.key_prefix = fixture().head_prefix;
  EXPECT_LE(HeadParity(spec, "whole-model state_dict + key_prefix"), kTolerance);
}

TEST_P(CheckpointFormatsTest, DataParallelPrefixesWorkWithAndWithoutModule) {
  // A head from a DataParallel state_dict: "fc." and "module.fc." both select it.
  for (const std::string& prefix :
       {fixture().head_prefix, "module." + fixture().head_prefix}) {
    HeadSpec spec;
    spec.checkpoint = Bytes(fixture().File("dataparallel.pt"));
    spec.key_prefix = prefix;
    EXPECT_LE(HeadParity(spec, "DataParallel state_dict + " + prefix), kTolerance);
  }
  // As a backbone, ignore_prefixes "module.fc." ignores the head as "fc." does.
  BackboneSpec backbone = Spec("dataparallel.pt", true);
  backbone.load.ignore_prefixes = {"module." + fixture().head_prefix};
  EXPECT_LE(FeatureParity(backbone, "dataparallel, module. ignore prefix"), kTolerance);
}

TEST_P(CheckpointFormatsTest, TheOptimizedGraphServesWithinItsOutputsScale) {
  // Frozen and optimized, each architecture's graph rounds differently from the
  // module by a small part of its outputs' scale: it serves, and matches PyTorch.
  BackboneSpec spec = Spec("scripted.pt", false);
  spec.optimize = true;
  BackboneLoadInfo info;
  EXPECT_LE(FeatureParity(spec, "scripted, optimized", &info), kTolerance);
  EXPECT_TRUE(info.optimized) << info.optimize_note;
  EXPECT_EQ(info.optimize_note, "");
}

TEST_P(CheckpointFormatsTest, HeadFromTrainingCheckpointTakesItsLabels) {
  HeadSpec spec;
  spec.checkpoint = Bytes(fixture().File("training.pt"));
  spec.key_prefix = fixture().head_prefix;
  std::shared_ptr<const Head> head;
  EXPECT_LE(HeadParity(spec, "training checkpoint", &head), kTolerance);
  EXPECT_EQ(head->labels()[999], "class_0999");
}

TEST_P(CheckpointFormatsTest, ScriptedHead) {
  HeadSpec spec;
  spec.checkpoint = Bytes(fixture().File("head_scripted.pt"));
  EXPECT_LE(HeadParity(spec, "torchscript-scripted"), kTolerance);
}

TEST_P(CheckpointFormatsTest, HeadStateDictWithoutItsPrefixIsAClearError) {
  HeadSpec spec;
  spec.name = "imagenet";
  spec.checkpoint = Bytes(fixture().File("state_dict.pt"));
  spec.feature_dim = fixture().feature_dim;
  const absl::Status status = Head::Load(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("key_prefix selects them"));
}

INSTANTIATE_TEST_SUITE_P(Torchvision, CheckpointFormatsTest,
                         ::testing::ValuesIn(testing::Architectures()),
                         [](const auto& info) { return info.param.arch; });

TEST(CheckpointTest, PickledModulesAreRefusedByName) {
  // Not a checkpoint PyTorch users should ship, but one they do: torch.save(model).
  const std::string not_an_archive = "\x80\x02}q\x00.";
  EXPECT_THAT(ReadCheckpoint(not_an_archive, c10::Device(c10::kCPU)).status().message(),
              HasSubstr("not a checkpoint"));
}

}  // namespace
}  // namespace headway
