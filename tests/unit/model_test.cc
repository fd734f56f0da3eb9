// Model: the bundled digits model end to end inside the core: preprocessing, backbone,
// heads, top-k, and head swaps that keep the old head on failure.
#include "model_store/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>

#include "absl/synchronization/notification.h"
#include "model_store/model_config.h"
#include "model_store/retirer.h"
#include "model_store/store/model_files.h"
#include "model_store/torch_runtime.h"
#include "tests/support/digits_data.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path dir = testing::ModelStore() / "digits";
    absl::StatusOr<v1::ModelConfig> config = ReadModelConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    Model::Options options;
    options.model_dir = dir;
    options.config = *config;
    options.retirer = &retirer_;
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(options);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }

  // PNG inputs for held-out cells; `bytes_` keeps them alive.
  std::vector<InputView> Inputs(const std::vector<int>& cells) {
    std::vector<InputView> inputs;
    for (int cell : cells) bytes_.push_back(testing::EncodePng(testing::DigitCell(cell)));
    for (size_t i = bytes_.size() - cells.size(); i < bytes_.size(); ++i) {
      InputView input;
      input.data = bytes_[i];
      inputs.push_back(input);
    }
    return inputs;
  }

  Retirer retirer_;  // outlives model_
  std::unique_ptr<Model> model_;
  std::deque<std::string> bytes_;
};

TEST_F(ModelTest, ClassifiesHeldOutDigitsAsPyTorchDid) {
  const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
  ASSERT_GE(split.digits.size(), 20u);
  std::vector<int> cells;
  for (size_t i = 0; i < 20; ++i)
    cells.push_back(split.digits[i * 37 % split.digits.size()].cell);
  const absl::StatusOr<ClassifyResult> result = model_->Classify(Inputs(cells), "", 3);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->head, "digit");
  EXPECT_EQ(result->head_version, 1);
  ASSERT_EQ(result->results.size(), cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    const testing::HeldOutDigit& digit = split.digits[i * 37 % split.digits.size()];
    ASSERT_EQ(result->results[i].size(), 3u);
    EXPECT_EQ(result->results[i][0].index, digit.digit_prediction)
        << "cell " << digit.cell;
    EXPECT_GE(result->results[i][0].score, result->results[i][1].score);
  }
}

TEST_F(ModelTest, TopKIsCappedAtTheClassCount) {
  const absl::StatusOr<ClassifyResult> result =
      model_->Classify(Inputs({0}), "digit", 50);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->results[0].size(), 10u);
  float total = 0;
  for (const ScoredLabel& label : result->results[0]) total += label.score;
  EXPECT_NEAR(total, 1.0f, 1e-5);
  EXPECT_EQ(model_->Classify(Inputs({0}), "", -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelTest, EmbedGivesTheBackboneFeatures) {
  const absl::StatusOr<EmbedResult> plain = model_->Embed(Inputs({10, 2010}), false);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->dimension, 64);
  ASSERT_EQ(plain->rows, 2);
  EXPECT_NE(plain->row(0), plain->row(1));

  const absl::StatusOr<EmbedResult> unit = model_->Embed(Inputs({10}), true);
  ASSERT_TRUE(unit.ok()) << unit.status();
  double norm = 0;
  for (float v : unit->row(0)) norm += v * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

TEST_F(ModelTest, BadInputIsNamedByIndex) {
  std::vector<InputView> inputs = Inputs({1, 2});
  inputs[1].data = "garbage";
  const absl::StatusOr<ClassifyResult> result = model_->Classify(inputs, "", 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("input 1: cannot decode image"));
  EXPECT_THAT(model_->Embed({}, false).status().message(), HasSubstr("no inputs"));
  std::vector<int> many(kDefaultMaxInputsPerRequest + 1, 0);
  EXPECT_THAT(model_->Embed(Inputs(many), false).status().message(),
              HasSubstr("the limit is"));
}

TEST_F(ModelTest, UnknownHeadIsNotFound) {
  const absl::StatusOr<ClassifyResult> result = model_->Classify(Inputs({0}), "nope", 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr("no head \"nope\"; its heads: digit"));
}

TEST_F(ModelTest, SwapHeadReplacesAddsAndKeepsTheOldHeadOnFailure) {
  HeadSwap parity;
  parity.head = "digit";
  parity.file = "heads/parity.pt";
  parity.labels_file = "heads/parity.labels";
  const absl::StatusOr<HeadInfo> swapped = model_->SwapHead(parity);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(swapped->version, 2);
  EXPECT_EQ(swapped->num_classes, 2);
  // A held-out digit PyTorch called odd.
  const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
  const auto odd = std::find_if(split.digits.begin(), split.digits.end(),
                                [](const auto& d) { return d.parity_prediction == 1; });
  ASSERT_NE(odd, split.digits.end());
  absl::StatusOr<ClassifyResult> result = model_->Classify(Inputs({odd->cell}), "", 2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->head_version, 2);
  EXPECT_EQ(result->results[0][0].label, "odd");
  EXPECT_EQ(result->results[0][1].label, "even");

  HeadSwap wrong_dim;
  wrong_dim.head = "digit";
  wrong_dim.checkpoint =
      *ReadFileToString(testing::SourcePath("tests/data/head_wrong_dim.pt"));
  EXPECT_EQ(model_->SwapHead(wrong_dim).status().code(),
            absl::StatusCode::kInvalidArgument);
  result = model_->Classify(Inputs({600}), "", 1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->head_version, 2);

  HeadSwap escape = parity;
  escape.file = "../../etc/passwd";
  EXPECT_EQ(model_->SwapHead(escape).status().code(), absl::StatusCode::kInvalidArgument);

  HeadSwap added = parity;
  added.head = "parity";
  ASSERT_TRUE(model_->SwapHead(added).ok());
  const ModelInfo info = model_->Info();
  ASSERT_EQ(info.heads.size(), 2u);
  EXPECT_EQ(info.heads[0].name, "digit");
  EXPECT_TRUE(info.heads[0].is_default);
  EXPECT_EQ(info.heads[1].name, "parity");
  EXPECT_EQ(info.heads[1].version, 1);
}

TEST_F(ModelTest, RemoveHeadKeepsTheDefault) {
  HeadSwap parity{"parity", "heads/parity.pt", "", "heads/parity.labels", {}, "", 0, ""};
  ASSERT_TRUE(model_->SwapHead(parity).ok());
  ASSERT_TRUE(model_->Classify(Inputs({0}), "parity", 1).ok());
  ASSERT_TRUE(model_->RemoveHead("parity").ok());
  EXPECT_EQ(model_->Classify(Inputs({0}), "parity", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(model_->RemoveHead("parity").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(model_->RemoveHead("digit").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(model_->Classify(Inputs({0}), "", 1).ok());
}

TEST_F(ModelTest, SwappedOutHeadsAreReleasedByTheRetirer) {
  HeadSwap parity{"digit", "heads/parity.pt", "", "heads/parity.labels", {}, "", 0, ""};
  ASSERT_TRUE(model_->SwapHead(parity).ok());
  // The old head was handed over; with no request holding it, it goes soon.
  for (int i = 0; i < 200 && retirer_.pending() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(retirer_.pending(), 0u);
}

TEST_F(ModelTest, OneBackbonePassServesAMixedBatchOfHeadsAndEmbeddings) {
  const std::filesystem::path dir = testing::ModelStore() / "digits";
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.config.mutable_batching()->set_max_batch_size(16);
  options.config.mutable_batching()->set_max_queue_delay_us(500000);
  options.config.mutable_batching()->set_wait_for_full_batch(true);
  absl::StatusOr<std::unique_ptr<Model>> batched = Model::Load(options);
  ASSERT_TRUE(batched.ok()) << batched.status();
  HeadSwap parity{"parity", "heads/parity.pt", "", "heads/parity.labels", {}, "", 0, ""};
  ASSERT_TRUE((*batched)->SwapHead(parity).ok());
  ASSERT_TRUE(model_->SwapHead(parity).ok());

  const std::vector<InputView> seven = Inputs({3500});
  const std::vector<InputView> two_fours = Inputs({2000, 2100});
  absl::StatusOr<ClassifyResult> digit, odd;
  absl::StatusOr<EmbedResult> embedded;
  absl::Notification d1, d2, d3;
  (*batched)->ClassifyAsync(seven, "digit", 1, {},
                            [&](auto r) { digit = r, d1.Notify(); });
  (*batched)->ClassifyAsync(seven, "parity", 1, {},
                            [&](auto r) { odd = r, d2.Notify(); });
  (*batched)->EmbedAsync(two_fours, false, {},
                         [&](auto r) { embedded = r, d3.Notify(); });
  d1.WaitForNotification();
  d2.WaitForNotification();
  d3.WaitForNotification();

  const BatchingStats stats = (*batched)->batching_stats();
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.inputs, 4);
  // The same answers as unbatched requests.
  ASSERT_TRUE(digit.ok() && odd.ok() && embedded.ok());
  EXPECT_EQ(digit->results[0][0].label,
            model_->Classify(seven, "digit", 1)->results[0][0].label);
  EXPECT_EQ(odd->results[0][0].label,
            model_->Classify(seven, "parity", 1)->results[0][0].label);
  const absl::StatusOr<EmbedResult> alone = model_->Embed(two_fours, false);
  ASSERT_TRUE(alone.ok());
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_NEAR(embedded->row(1)[i], alone->row(1)[i], 1e-5);
  }
}

TEST_F(ModelTest, OptimizedGraphServesTheSameAnswers) {
  const std::filesystem::path dir = testing::ModelStore() / "digits";
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.config.set_optimize(true);
  absl::StatusOr<std::unique_ptr<Model>> optimized = Model::Load(options);
  ASSERT_TRUE(optimized.ok()) << optimized.status();
  EXPECT_TRUE((*optimized)->Info().optimized);
  const std::vector<InputView> inputs = Inputs({10, 1010, 2010, 3010});
  const absl::StatusOr<EmbedResult> fast = (*optimized)->Embed(inputs, false);
  const absl::StatusOr<EmbedResult> plain = model_->Embed(inputs, false);
  ASSERT_TRUE(fast.ok() && plain.ok());
  for (size_t r = 0; r < inputs.size(); ++r) {
    for (size_t i = 0; i < 64; ++i) EXPECT_NEAR(fast->row(r)[i], plain->row(r)[i], 1e-4);
  }
}

TEST_F(ModelTest, AdmissionHoldsWhatTheQueueAnswersWithinItsWait) {
  const std::filesystem::path dir = testing::ModelStore() / "digits";
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.config.set_model_workers(1);
  options.config.mutable_batching()->set_max_batch_size(1);
  options.config.mutable_batching()->set_max_queue_size(40);
  options.config.mutable_batching()->set_max_queue_wait_us(1);
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(options);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto admissions = [&] {
    int admitted = 0;
    while ((*model)->Admit().ok()) ++admitted;
    for (int i = 0; i < admitted; ++i) (*model)->Release(/*answered=*/true);
    return admitted;
  };
  // Before any pass, max_queue_size bounds the queue: 40 waiting plus 1 running.
  EXPECT_EQ(admissions(), 41);
  const absl::Status full = [&] {
    for (int i = 0; i < 41; ++i) (void)(*model)->Admit();
    const absl::Status refused = (*model)->Admit();
    for (int i = 0; i < 41; ++i) (*model)->Release(/*answered=*/true);
    return refused;
  }();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("batching.max_queue_size"));
  // Once a pass has run, a 1 us wait holds what it never goes under: 32 requests.
  ASSERT_TRUE((*model)->Classify(Inputs({10}), "", 1).ok());
  EXPECT_EQ(admissions(), 33);
  EXPECT_GE((*model)->batching_stats().refused, 3);
}

TEST(ModelLimitsTest, ABackboneIsLimitedByWhatItUnpacksTo) {
  // 34 KB on disk, 32 MiB of zeros once unpacked (tests/data/make_fixtures.py).
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path dir = store / "digits";
  std::filesystem::copy_file(testing::SourcePath("tests/data/backbone_zip_bomb.pt"),
                             dir / "backbone.pt",
                             std::filesystem::copy_options::overwrite_existing);
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.max_backbone_bytes = 1 << 20;
  const absl::StatusOr<std::unique_ptr<Model>> refused = Model::Load(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("backbone backbone.pt unpacks to 335"));
  EXPECT_THAT(refused.status().message(), HasSubstr("(--max_backbone_bytes)"));
  // Within the default limit it is a working backbone.
  options.max_backbone_bytes = Model::Options().max_backbone_bytes;
  EXPECT_TRUE(Model::Load(options).ok());
  std::filesystem::remove_all(store);
}

// BF16 where the CPU runs it natively: its features agree with FP32's, its convolution
// weights are channels-last, and the held-out digits get the same answers (at least 99 in
// 100); elsewhere the load is refused naming the missing CPU feature, or with
// precision_fallback FP32 serves and says why.
TEST_F(ModelTest, Bf16ServesTheSameAnswersWhereTheCpuHasItAndIsRefusedElsewhere) {
  const std::filesystem::path dir = testing::ModelStore() / "digits";
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.config.set_precision(v1::ModelConfig::BF16);
  absl::StatusOr<std::unique_ptr<Model>> bf16 = Model::Load(options);
  if (!CpuHasNativeBf16()) {
    EXPECT_EQ(bf16.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(bf16.status().message(),
                HasSubstr("precision BF16: BF16 needs a CPU with AVX512_BF16 or AMX"));
    options.config.set_precision_fallback(true);
    bf16 = Model::Load(options);
    ASSERT_TRUE(bf16.ok()) << bf16.status();
    EXPECT_EQ((*bf16)->Info().precision, "FP32");
    EXPECT_THAT((*bf16)->Info().precision_note,
                HasSubstr("BF16 not served (BF16 needs a CPU with AVX512_BF16"));
    return;
  }
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_EQ((*bf16)->Info().precision, "BF16");
  EXPECT_THAT((*bf16)->Info().precision_note,
              HasSubstr("BF16 features agree with FP32's"));
  // The convolutions serve channels-last weights, the layout oneDNN's BF16 kernels run
  // fast on.
  EXPECT_THAT((*bf16)->Info().precision_note, HasSubstr("; weights channels-last"));
  const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
  std::vector<int> cells;
  for (size_t i = 0; i < 100; ++i) cells.push_back(split.digits[i * 7].cell);
  int same = 0;
  for (size_t start = 0; start < cells.size(); start += 50) {
    const std::vector<InputView> inputs =
        Inputs(std::vector<int>(cells.begin() + start, cells.begin() + start + 50));
    const absl::StatusOr<ClassifyResult> reduced = (*bf16)->Classify(inputs, "", 1);
    const absl::StatusOr<ClassifyResult> full = model_->Classify(inputs, "", 1);
    ASSERT_TRUE(reduced.ok() && full.ok()) << reduced.status() << full.status();
    for (size_t i = 0; i < inputs.size(); ++i) {
      same += reduced->results[i][0].index == full->results[i][0].index;
    }
  }
  EXPECT_GE(same, 99);
}

TEST(ModelPrecisionTest, Fp16OnACpuIsRefusedOrFallsBackSayingWhy) {
  const std::filesystem::path dir = testing::ModelStore() / "digits";
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.config.set_precision(v1::ModelConfig::FP16);
  const absl::StatusOr<std::unique_ptr<Model>> refused = Model::Load(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("precision FP16: FP16 runs on CUDA devices only"));
  options.config.set_precision_fallback(true);
  const absl::StatusOr<std::unique_ptr<Model>> fallback = Model::Load(options);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_EQ((*fallback)->Info().precision, "FP32");
  EXPECT_THAT((*fallback)->Info().precision_note,
              HasSubstr("FP16 not served (FP16 runs on CUDA devices only"));
}

TEST(ModelDeviceTest, CudaWithoutCudaIsFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA";
  const std::filesystem::path dir = testing::ModelStore() / "digits";
  Model::Options options;
  options.model_dir = dir;
  options.config = *ReadModelConfig(dir);
  options.device = "cuda:1";
  const absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(options);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("CUDA is not available"));
}

TEST_F(ModelTest, RequestsDuringSwapsAnswerFromOneHeadVersion) {
  const HeadSwap to_parity{
      "digit", "heads/parity.pt", "", "heads/parity.labels", {}, "", 0, ""};
  const HeadSwap to_digit{"digit", "heads/digit.pt", "", "heads/digit.labels", {}, "", 0,
                          ""};
  const std::vector<InputView> inputs = Inputs({600, 1700, 4321});
  auto top_labels = [&](const ClassifyResult& result) {
    std::vector<std::string> labels;
    for (const auto& scored : result.results) labels.push_back(scored[0].label);
    return labels;
  };
  // Odd versions are the 10-digit head (1, 3, ...), even ones the parity head.
  const std::vector<std::string> digit_answer =
      top_labels(*model_->Classify(inputs, "", 1));
  ASSERT_TRUE(model_->SwapHead(to_parity).ok());
  const std::vector<std::string> parity_answer =
      top_labels(*model_->Classify(inputs, "", 1));
  ASSERT_TRUE(model_->SwapHead(to_digit).ok());

  std::atomic<bool> done{false};
  std::atomic<int> answered{0};
  std::thread reader([&] {
    while (!done) {
      const absl::StatusOr<ClassifyResult> result = model_->Classify(inputs, "", 1);
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(top_labels(*result),
                result->head_version % 2 == 0 ? parity_answer : digit_answer)
          << "head version " << result->head_version;
      ++answered;
    }
  });
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(model_->SwapHead(i % 2 == 0 ? to_parity : to_digit).ok());
  }
  done = true;
  reader.join();
  EXPECT_GT(answered.load(), 0);
}

}  // namespace
}  // namespace headway
