// FitLinearHead: a head fitted to separable features classifies them, its checkpoint
// loads as a head (Headway's loader), the penalty is chosen on the held-out split when
// not given, and bad examples are refused naming the problem.
#include "model_store/head_fitting.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "model_store/head.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

// Three Gaussian clusters in 8 dimensions, `per_class` points each, far apart.
void Clusters(int per_class, std::vector<std::vector<float>>& features,
              std::vector<int>& labels) {
  std::mt19937 random(3);
  std::normal_distribution<float> noise(0, 0.5f);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < per_class; ++i) {
      std::vector<float> row(8);
      for (int j = 0; j < 8; ++j) row[j] = noise(random) + (j == c ? 4.0f : 0.0f) + 10.0f;
      features.push_back(row);
      labels.push_back(c);
    }
  }
}

TEST(HeadFittingTest, FitsSeparableClassesIntoAHeadThatLoadsAndClassifies) {
  std::vector<std::vector<float>> features;
  std::vector<int> labels;
  Clusters(40, features, labels);
  absl::StatusOr<HeadFit> fit = FitLinearHead(features, labels, 3, HeadFitOptions());
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->examples_per_class, std::vector<int64_t>({40, 40, 40}));
  EXPECT_EQ(fit->validation_examples, 24);
  EXPECT_DOUBLE_EQ(fit->validation_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(fit->train_accuracy, 1.0);
  EXPECT_GT(fit->iterations, 0);
  EXPECT_GT(fit->l2, 0);

  HeadSpec spec;
  spec.name = "fitted";
  spec.checkpoint = fit->checkpoint;
  spec.labels = {"a", "b", "c"};
  spec.feature_dim = 8;
  absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(spec);
  ASSERT_TRUE(head.ok()) << head.status();
  // The folded standardisation: raw features in, the right class out.
  int correct = 0;
  for (size_t i = 0; i < features.size(); ++i) {
    absl::StatusOr<at::Tensor> logits =
        (*head)->Forward(torch::tensor(features[i]).unsqueeze(0));
    ASSERT_TRUE(logits.ok()) << logits.status();
    correct += logits->argmax(1).item<int64_t>() == labels[i];
  }
  EXPECT_EQ(correct, static_cast<int>(features.size()));
}

TEST(HeadFittingTest, AGivenPenaltyIsUsedAndNothingHeldOutMeansNoValidation) {
  std::vector<std::vector<float>> features;
  std::vector<int> labels;
  Clusters(5, features, labels);
  HeadFitOptions options;
  options.l2 = 0.5;
  options.validation_fraction = 0;
  absl::StatusOr<HeadFit> fit = FitLinearHead(features, labels, 3, options);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_DOUBLE_EQ(fit->l2, 0.5);
  EXPECT_EQ(fit->validation_examples, 0);
  EXPECT_EQ(fit->validation_accuracy, -1);
}

TEST(HeadFittingTest, BadExamplesAreRefusedNamingTheProblem) {
  std::vector<std::vector<float>> features = {{1, 2}, {3, 4}, {5, 6}};
  const struct {
    std::vector<std::vector<float>> features;
    std::vector<int> labels;
    int classes;
    std::string message;
  } cases[] = {
      {features, {0, 0, 0}, 1, "at least two classes"},
      {features, {0, 0, 0}, 2, "class 1 has no example"},
      {features, {0, 1}, 2, "3 examples but 2 labels"},
      {features, {0, 1, 2}, 2, "example 2 has class 2"},
      {{{1, 2}, {3}, {5, 6}}, {0, 1, 1}, 2, "example 1 has 1 features"},
      {{{1, 2}, {NAN, 4}, {5, 6}}, {0, 1, 1}, 2, "example 1 has a NaN"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<HeadFit> fit = FitLinearHead(c.features, c.labels, c.classes, {});
    EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(fit.status().message(), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace headway
