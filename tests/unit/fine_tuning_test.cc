// FineTuneBackbone on the bundled digits backbone and real digits: the named layers
// train and the rest stay as they were, the checkpoint loads back as Headway loads a
// fine-tuned model folder (backbone into the same architecture, head by key prefix),
// progress is reported and can cancel, and bad settings are refused naming them.
#include "model_store/fine_tuning.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <opencv2/core.hpp>

#include "model_store/backbone.h"
#include "model_store/checkpoint.h"
#include "model_store/head.h"
#include "model_store/model_config.h"
#include "model_store/store/model_files.h"
#include "tests/support/checkpoint_fixtures.h"
#include "tests/support/digits_data.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

struct Examples {
  at::Tensor inputs;  // [N, 1, 20, 20], normalised as the digits model takes them
  std::vector<int> labels;
  std::vector<std::string> classes;
};

// `per_class` cells of each of the digits 5 to 9 (digits.png holds 500 of each, in
// order), as classes 0 to 4.
Examples DigitsFiveToNine(int per_class) {
  Examples examples;
  std::vector<at::Tensor> rows;
  for (int digit = 5; digit <= 9; ++digit) {
    examples.classes.push_back(std::to_string(digit));
    for (int i = 0; i < per_class; ++i) {
      const cv::Mat cell = testing::DigitCell(digit * 500 + i * 7);
      at::Tensor pixels =
          torch::from_blob(cell.data, {1, 20, 20}, torch::kUInt8).to(torch::kFloat32);
      rows.push_back((pixels / 255.0f - testing::DigitsMean()) / testing::DigitsStd());
      examples.labels.push_back(digit - 5);
    }
  }
  examples.inputs = torch::stack(rows);
  return examples;
}

std::string DigitsArchive() {
  absl::StatusOr<std::string> bytes =
      ReadFileToString(testing::SourcePath("models/digits/backbone.pt"));
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

torch::jit::Module FreshBackbone() {
  std::istringstream archive(DigitsArchive());
  return torch::jit::load(archive);
}

at::Tensor Parameter(torch::jit::Module& module, const std::string& name) {
  for (const torch::jit::NameTensor& named : module.named_parameters()) {
    if (named.name == name) return named.value.detach().clone();
  }
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

TEST(FineTuningTest, TrainsTheNamedLayersAndTheCheckpointLoadsAsAFineTunedModel) {
  const Examples examples = DigitsFiveToNine(40);
  torch::jit::Module module = FreshBackbone();
  const at::Tensor first_conv = Parameter(module, "features.0.weight");
  const at::Tensor embedding = Parameter(module, "features.7.weight");

  FineTuneOptions options;
  options.train_prefixes = {"features.7"};
  options.learning_rate = 0.005;
  options.epochs = 3;
  options.batch_size = 20;
  int epochs_reported = 0;
  int64_t steps_reported = 0;
  absl::StatusOr<FineTuneResult> result =
      FineTuneBackbone(module, ExamplesFromTensor(examples.inputs), examples.labels,
                       examples.classes, options, [&](const FineTuneProgress& progress) {
                         EXPECT_EQ(progress.epochs, 3);
                         EXPECT_TRUE(std::isfinite(progress.loss));
                         if (progress.epoch_done) {
                           ++epochs_reported;
                           EXPECT_GE(progress.train_accuracy, 0);
                         } else {
                           ++steps_reported;
                           EXPECT_GT(progress.examples_per_second, 0);
                         }
                         return true;
                       });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->examples_per_class, std::vector<int64_t>(5, 40));
  EXPECT_EQ(result->validation_examples, 40);  // 0.2 of each class
  EXPECT_EQ(epochs_reported, 3);
  EXPECT_EQ(steps_reported, 3 * 8);  // 160 training examples in batches of 20
  EXPECT_EQ(result->epochs, 3);
  EXPECT_EQ(result->trained_tensors, 2);  // features.7's weight and bias
  // The digits backbone was trained on all ten digits: its features separate 5-9.
  EXPECT_GE(result->validation_accuracy, 0.85);
  EXPECT_GE(result->train_accuracy, 0.85);

  // Frozen layers are untouched; the named one moved.
  EXPECT_TRUE(torch::equal(Parameter(module, "features.0.weight"), first_conv));
  EXPECT_FALSE(torch::equal(Parameter(module, "features.7.weight"), embedding));

  // The checkpoint is a training checkpoint with the epoch and class names.
  absl::StatusOr<Checkpoint> checkpoint =
      ReadCheckpoint(result->checkpoint, c10::Device(c10::kCPU));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->contents, Checkpoint::Contents::kTrainingCheckpoint);
  EXPECT_EQ(checkpoint->epoch, 3);
  EXPECT_EQ(checkpoint->labels, examples.classes);

  // Loaded as a fine-tuned model folder loads it: the backbone strictly into the same
  // architecture (the head's keys ignored), the head by its key prefix.
  BackboneSpec backbone_spec;
  backbone_spec.weights = result->checkpoint;
  backbone_spec.architecture = DigitsArchive();
  backbone_spec.load.ignore_prefixes = {kFineTunedHeadPrefix};
  backbone_spec.input_shape = {1, 20, 20};
  absl::StatusOr<std::unique_ptr<Backbone>> backbone = Backbone::Load(backbone_spec);
  ASSERT_TRUE(backbone.ok()) << backbone.status();
  HeadSpec head_spec;
  head_spec.name = "five_to_nine";
  head_spec.checkpoint = result->checkpoint;
  head_spec.key_prefix = kFineTunedHeadPrefix;
  head_spec.feature_dim = (*backbone)->feature_dim();
  absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(head_spec);
  ASSERT_TRUE(head.ok()) << head.status();
  int correct = 0;
  {
    c10::InferenceMode inference;
    absl::StatusOr<at::Tensor> features = (*backbone)->Forward(examples.inputs);
    ASSERT_TRUE(features.ok()) << features.status();
    absl::StatusOr<at::Tensor> logits = (*head)->Forward(*features);
    ASSERT_TRUE(logits.ok()) << logits.status();
    const at::Tensor predicted = logits->argmax(1);
    for (size_t i = 0; i < examples.labels.size(); ++i) {
      correct += predicted[i].item<int64_t>() == examples.labels[i];
    }
  }
  EXPECT_GE(correct, 0.85 * examples.labels.size());
}

at::Tensor Buffer(torch::jit::Module& module, const std::string& name) {
  for (const torch::jit::NameTensor& named : module.named_buffers()) {
    if (named.name == name) return named.value.detach().clone();
  }
  ADD_FAILURE() << "no buffer " << name;
  return {};
}

// ResNet-18 (random weights, the checkpoint fixtures' TorchScript archive) with only
// layer4 training: layer4's BatchNorm statistics move (train mode), the frozen
// layers' weights and statistics do not (eval mode), as in PyTorch.
TEST(FineTuningTest, FrozenLayersKeepTheirBatchNormStatistics) {
  torch::jit::Module module =
      torch::jit::load(testing::CheckpointDir() / "resnet18_scripted.pt");
  const at::Tensor frozen_conv = Parameter(module, "layer3.0.conv1.weight");
  const at::Tensor frozen_mean = Buffer(module, "layer3.0.bn1.running_mean");
  const at::Tensor trained_conv = Parameter(module, "layer4.0.conv1.weight");
  const at::Tensor trained_mean = Buffer(module, "layer4.0.bn1.running_mean");
  const at::Tensor inputs = torch::randn({8, 3, 32, 32});
  const std::vector<int> labels = {0, 1, 0, 1, 0, 1, 0, 1};
  FineTuneOptions options;
  options.train_prefixes = {"layer4"};
  options.epochs = 1;
  options.batch_size = 4;
  options.validation_fraction = 0;
  absl::StatusOr<FineTuneResult> result = FineTuneBackbone(
      module, ExamplesFromTensor(inputs), labels, {"a", "b"}, options, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(torch::equal(Parameter(module, "layer3.0.conv1.weight"), frozen_conv));
  EXPECT_TRUE(torch::equal(Buffer(module, "layer3.0.bn1.running_mean"), frozen_mean));
  EXPECT_FALSE(torch::equal(Parameter(module, "layer4.0.conv1.weight"), trained_conv));
  EXPECT_FALSE(torch::equal(Buffer(module, "layer4.0.bn1.running_mean"), trained_mean));
}

TEST(FineTuningTest, AdamAndTrainingEverythingAlsoLearn) {
  const Examples examples = DigitsFiveToNine(20);
  FineTuneOptions options;
  options.train_all = true;
  options.optimizer = FineTuneOptions::Optimizer::kAdam;
  options.learning_rate = 0.001;
  options.epochs = 2;
  options.horizontal_flip = true;
  options.validation_fraction = 0;
  absl::StatusOr<FineTuneResult> result =
      FineTuneBackbone(FreshBackbone(), ExamplesFromTensor(examples.inputs),
                       examples.labels, examples.classes, options, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->trained_tensors, 6);  // three layers' weights and biases
  EXPECT_EQ(result->validation_accuracy, -1);
  EXPECT_GE(result->train_accuracy, 0.7);
}

TEST(FineTuningTest, ProgressReturningFalseCancels) {
  const Examples examples = DigitsFiveToNine(10);
  FineTuneOptions options;
  options.batch_size = 5;
  int calls = 0;
  absl::StatusOr<FineTuneResult> result = FineTuneBackbone(
      FreshBackbone(), ExamplesFromTensor(examples.inputs), examples.labels,
      examples.classes, options, [&](const FineTuneProgress&) { return ++calls < 2; });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(result.status().message(), HasSubstr("epoch 1, step 2"));
  EXPECT_EQ(calls, 2);
}

TEST(FineTuningTest, BadSettingsAndExamplesAreRefusedNamingTheProblem) {
  const Examples examples = DigitsFiveToNine(4);
  const auto refused = [&](FineTuneOptions options, std::vector<int> labels,
                           std::vector<std::string> classes) {
    return FineTuneBackbone(FreshBackbone(), ExamplesFromTensor(examples.inputs), labels,
                            classes, options, {})
        .status();
  };
  FineTuneOptions unknown_layer;
  unknown_layer.train_prefixes = {"layer4"};
  EXPECT_THAT(refused(unknown_layer, examples.labels, examples.classes).message(),
              HasSubstr("no backbone parameter is named by \"layer4\""));
  FineTuneOptions zero_rate;
  zero_rate.learning_rate = 0;
  EXPECT_THAT(refused(zero_rate, examples.labels, examples.classes).message(),
              HasSubstr("learning_rate is 0"));
  FineTuneOptions no_epochs;
  no_epochs.epochs = 0;
  EXPECT_THAT(refused(no_epochs, examples.labels, examples.classes).message(),
              HasSubstr("epochs is 0"));
  EXPECT_THAT(refused(FineTuneOptions(), {0, 1}, examples.classes).message(),
              HasSubstr("20 examples but 2 labels"));
  EXPECT_THAT(refused(FineTuneOptions(), std::vector<int>(20, 0), {"5"}).message(),
              HasSubstr("at least two classes"));
  std::vector<int> missing_class = examples.labels;
  for (int& label : missing_class) label = label == 4 ? 3 : label;
  EXPECT_THAT(refused(FineTuneOptions(), missing_class, examples.classes).message(),
              HasSubstr("class 4 has no example"));
  // Finite inputs that overflow inside the network: the loss is not finite at once.
  const absl::Status diverged =
      FineTuneBackbone(FreshBackbone(), ExamplesFromTensor(examples.inputs * 1e37),
                       examples.labels, examples.classes, FineTuneOptions(), {})
          .status();
  EXPECT_EQ(diverged.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(diverged.message(), HasSubstr("lower learning_rate"));
}

}  // namespace
}  // namespace headway
