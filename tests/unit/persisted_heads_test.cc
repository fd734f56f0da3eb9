// Persisted head changes: how heads.pbtxt changes config.pbtxt's heads, and a
// transaction's commit as a reader and a restart see it.
#include "model_store/store/persisted_heads.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "model_store/model_config.h"
#include "model_store/store/content_digest.h"
#include "tests/support/digits_data.h"

namespace headway {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> HeadNames(const v1::ModelConfig& config) {
  std::vector<std::string> names;
  for (const v1::HeadConfig& head : config.heads()) {
    names.push_back(head.name() + ":" + head.file());
  }
  return names;
}

TEST(PersistedHeadsTest, ChangesReplaceInPlaceAddAfterAndRemove) {
  v1::ModelConfig config;
  for (const char* name : {"a", "b", "c"}) {
    v1::HeadConfig& head = *config.add_heads();
    head.set_name(name);
    head.set_file(std::string("heads/") + name + ".pt");
  }
  v1::PersistedHeads persisted;
  persisted.add_removed("a");
  for (const char* name : {"d", "b"}) {
    v1::PersistedHead& head = *persisted.add_heads();
    head.mutable_head()->set_name(name);
    head.mutable_head()->set_file(std::string("persisted/") + name + ".pt");
    head.set_version(7);
  }
  const auto versions = ApplyPersistedHeads(persisted, config);
  EXPECT_THAT(HeadNames(config),
              ElementsAre("b:persisted/b.pt", "c:heads/c.pt", "d:persisted/d.pt"));
  EXPECT_EQ(versions.at("b"), 7);
  EXPECT_EQ(versions.at("c"), 1);
  EXPECT_EQ(versions.at("d"), 7);
}

class PersistedHeadsTransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::CopyModelStore();
    model_dir_ = store_ / "digits";
  }
  void TearDown() override { std::filesystem::remove_all(store_); }

  static HeadContent Content(const std::string& name, const std::string& bytes,
                             int64_t version) {
    HeadContent content;
    content.name = name;
    content.checkpoint = bytes;
    content.labels = {"even", "odd"};
    content.version = version;
    content.digest = HeadDigest(content.checkpoint, content.labels, "");
    return content;
  }

  std::filesystem::path store_;
  std::filesystem::path model_dir_;
};

TEST_F(PersistedHeadsTransactionTest,
       ACommitIsWhatTheStoreReadsAndFilesAreNamedByContent) {
  const absl::StatusOr<std::string> fingerprint_before = StoreFingerprint(model_dir_);
  std::vector<std::string> steps;
  {
    absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>> transaction =
        PersistedHeadsTransaction::Begin(
            model_dir_, [&](absl::string_view step) { steps.emplace_back(step); });
    ASSERT_TRUE(transaction.ok()) << transaction.status();
    EXPECT_EQ((*transaction)->StoredVersion("digit"), 0);
    ASSERT_TRUE((*transaction)->CommitSwap(Content("digit", "first", 2)).ok());
  }
  EXPECT_THAT(steps, ElementsAre("locked", "checkpoint written", "checkpoint renamed",
                                 "labels written", "labels renamed", "content synced",
                                 "heads.pbtxt written", "heads.pbtxt renamed",
                                 "committed", "unnamed files removed"));
  absl::StatusOr<StoredModel> stored = ReadStoredModel(model_dir_);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->head_versions.at("digit"), 2);
  const std::string file = stored->config.heads(0).file();
  EXPECT_EQ(file.rfind("persisted/digit-", 0), 0u) << file;
  std::ifstream in(model_dir_ / file);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "first");
  EXPECT_NE(*StoreFingerprint(model_dir_), *fingerprint_before);

  // A second change: new content gets a new file, the old one goes after the commit.
  {
    absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>> transaction =
        PersistedHeadsTransaction::Begin(model_dir_);
    ASSERT_TRUE(transaction.ok());
    EXPECT_EQ((*transaction)->StoredVersion("digit"), 2);
    ASSERT_TRUE((*transaction)->CommitSwap(Content("digit", "second", 3)).ok());
  }
  stored = ReadStoredModel(model_dir_);
  ASSERT_TRUE(stored.ok());
  EXPECT_NE(stored->config.heads(0).file(), file);
  EXPECT_FALSE(std::filesystem::exists(model_dir_ / file));

  // Removing a head config.pbtxt names records it as removed.
  {
    absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>> transaction =
        PersistedHeadsTransaction::Begin(model_dir_);
    ASSERT_TRUE(transaction.ok());
    ASSERT_TRUE((*transaction)->CommitSwap(Content("parity", "p", 1)).ok());
    ASSERT_TRUE((*transaction)->CommitRemoval("digit", /*in_config=*/true).ok());
  }
  v1::ModelConfig config = *ParseModelConfig(
      std::string(std::istreambuf_iterator<char>(
                      *std::make_unique<std::ifstream>(model_dir_ / "config.pbtxt")),
                  {}));
  v1::PersistedHeads persisted =
      *ParsePersistedHeads(*ReadPersistedHeadsText(model_dir_));
  ApplyPersistedHeads(persisted, config);
  ASSERT_EQ(config.heads_size(), 1);
  EXPECT_EQ(config.heads(0).name(), "parity");
}

TEST_F(PersistedHeadsTransactionTest, LeftoversOfAnInterruptedWriteAreCleaned) {
  std::filesystem::create_directories(model_dir_ / "persisted");
  std::ofstream(model_dir_ / "persisted/heads.pbtxt.tmp") << "half";
  std::ofstream(model_dir_ / "persisted/digit-0123456789abcdef.pt") << "unnamed";
  std::vector<std::string> removed = CleanPersistedFolder(model_dir_);
  std::sort(removed.begin(), removed.end());
  EXPECT_THAT(removed, ElementsAre("digit-0123456789abcdef.pt", "heads.pbtxt.tmp"));
  EXPECT_TRUE(ReadStoredModel(model_dir_).ok());
}

}  // namespace
}  // namespace headway
