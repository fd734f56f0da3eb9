// ApplyHeadChange: one head change across several instances of a model is all or
// nothing. Two instances of the bundled digits model stand for two devices (CPU has
// one); a test seam fails the head load on the second, as a device fault would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "model_store/model_config.h"
#include "model_store/model_registry.h"
#include "model_store/retirer.h"
#include "tests/support/digits_data.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

class ApplyHeadChangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path dir = testing::ModelStore() / "digits";
    absl::StatusOr<v1::ModelConfig> config = ReadModelConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    for (int i = 0; i < 2; ++i) {
      Model::Options options;
      options.model_dir = dir;
      options.config = *config;
      options.retirer = &retirer_;
      if (i == 1) {
        options.before_head_load = [this](absl::string_view head) {
          return fail_second_ && head == "digit"
                     ? absl::ResourceExhaustedError("out of device memory")
                     : absl::OkStatus();
        };
      }
      absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(options);
      ASSERT_TRUE(model.ok()) << model.status();
      instances_.push_back(*std::move(model));
    }
  }

  static HeadChange DigitToParity() {
    HeadChange change;
    HeadSwap& swap = change.swaps.emplace_back();
    swap.head = "digit";
    swap.file = "heads/parity.pt";
    swap.labels_file = "heads/parity.labels";
    return change;
  }

  // "classes:version:digest" of the digit head on each instance.
  std::vector<std::string> DigitHeads() const {
    std::vector<std::string> heads;
    for (const auto& instance : instances_) {
      for (const HeadInfo& head : instance->Info().heads) {
        if (head.name == "digit") {
          heads.push_back(
              absl::StrCat(head.num_classes, ":", head.version, ":", head.digest));
        }
      }
    }
    return heads;
  }

  Retirer retirer_;
  std::vector<std::shared_ptr<Model>> instances_;
  std::atomic<bool> fail_second_{false};
};

TEST_F(ApplyHeadChangeTest, AFailureOnTheSecondInstanceChangesNeither) {
  const std::vector<std::string> before = DigitHeads();
  fail_second_ = true;
  int commits = 0;
  const absl::StatusOr<std::vector<HeadInfo>> applied =
      ApplyHeadChange(instances_, DigitToParity(), [&](const PreparedHeadChange&) {
        ++commits;
        return absl::OkStatus();
      });
  ASSERT_EQ(applied.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(applied.status().message(), HasSubstr("(on cpu)"));
  EXPECT_EQ(commits, 0);  // the store is never written for a change that did not load
  EXPECT_EQ(DigitHeads(), before);
  EXPECT_THAT(before[0], ::testing::StartsWith("10:1:"));
}

TEST_F(ApplyHeadChangeTest, AFailedCommitPublishesNothing) {
  const std::vector<std::string> before = DigitHeads();
  const absl::StatusOr<std::vector<HeadInfo>> applied =
      ApplyHeadChange(instances_, DigitToParity(), [](const PreparedHeadChange& p) {
        EXPECT_EQ(p.swapped().size(), 1u);
        return absl::FailedPreconditionError("cannot write the store");
      });
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DigitHeads(), before);
}

TEST_F(ApplyHeadChangeTest, EveryInstancePublishesTheSameHead) {
  const absl::StatusOr<std::vector<HeadInfo>> applied =
      ApplyHeadChange(instances_, DigitToParity(), nullptr);
  ASSERT_TRUE(applied.ok()) << applied.status();
  const std::vector<std::string> after = DigitHeads();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0], after[1]);
  EXPECT_THAT(after[0], ::testing::StartsWith("2:2:"));
}

TEST_F(ApplyHeadChangeTest, AStoreTableKeepsUnchangedHeadsAndDropsOthers) {
  HeadChange add;
  HeadSwap& parity = add.swaps.emplace_back();
  parity.head = "parity";
  parity.file = "heads/parity.pt";
  parity.labels_file = "heads/parity.labels";
  ASSERT_TRUE(ApplyHeadChange(instances_, add, nullptr).ok());
  // The store's table names only digit, unchanged: parity goes, digit stays as it was.
  const std::vector<std::string> before = DigitHeads();
  HeadChange table;
  table.complete = true;
  table.default_head = "digit";
  HeadSwap& digit = table.swaps.emplace_back();
  digit.head = "digit";
  digit.file = "heads/digit.pt";
  digit.labels_file = "heads/digit.labels";
  digit.version = 1;
  const absl::StatusOr<std::vector<HeadInfo>> applied =
      ApplyHeadChange(instances_, table, nullptr);
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_EQ(DigitHeads(), before);
}

}  // namespace
}  // namespace headway
