// StoreWatch on a real folder: a file written in a model folder, a model folder added
// (and a file written in it once watched), a heads/ file renamed into place, and a
// wake each end a wait; nothing changed is a timeout.
#include "model_store/store_watch.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/time/clock.h"

namespace headway {
namespace {

constexpr absl::Duration kLong = absl::Seconds(20);  // never reached when it works
constexpr absl::Duration kSettle = absl::Milliseconds(50);

class StoreWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/headway-store-watch-XXXXXX";
    store_ = mkdtemp(name);
    std::filesystem::create_directories(store_ / "digits/heads");
    watch_ = StoreWatch::Create(store_);
    ASSERT_NE(watch_, nullptr);
  }
  void TearDown() override { std::filesystem::remove_all(store_); }

  std::filesystem::path store_;
  std::unique_ptr<StoreWatch> watch_;
};

TEST_F(StoreWatchTest, NothingChangedIsATimeout) {
  EXPECT_FALSE(watch_->WaitForChange(absl::Milliseconds(100), kSettle));
}

TEST_F(StoreWatchTest, AFileWrittenInAModelFolderIsAChange) {
  std::ofstream(store_ / "digits/config.pbtxt") << "name: \"digits\"\n";
  const absl::Time start = absl::Now();
  EXPECT_TRUE(watch_->WaitForChange(kLong, kSettle));
  EXPECT_LT(absl::Now() - start, kLong);
  // Drained: the next wait sees nothing.
  EXPECT_FALSE(watch_->WaitForChange(absl::Milliseconds(100), kSettle));
}

TEST_F(StoreWatchTest, AHeadRenamedIntoHeadsIsAChange) {
  std::ofstream(store_ / "staged.pt") << "bytes";
  ASSERT_TRUE(watch_->WaitForChange(kLong, kSettle));
  std::filesystem::rename(store_ / "staged.pt", store_ / "digits/heads/digit.pt");
  EXPECT_TRUE(watch_->WaitForChange(kLong, kSettle));
}

TEST_F(StoreWatchTest, AModelFolderAddedIsAChangeAndIsWatchedAfterWatchFolders) {
  std::filesystem::create_directories(store_ / "resnet18");
  EXPECT_TRUE(watch_->WaitForChange(kLong, kSettle));
  watch_->WatchFolders();
  std::ofstream(store_ / "resnet18/config.pbtxt") << "name: \"resnet18\"\n";
  EXPECT_TRUE(watch_->WaitForChange(kLong, kSettle));
}

TEST_F(StoreWatchTest, WakeEndsAWait) {
  std::thread waker([this] {
    absl::SleepFor(absl::Milliseconds(100));
    watch_->Wake();
  });
  const absl::Time start = absl::Now();
  EXPECT_FALSE(watch_->WaitForChange(kLong, kSettle));
  EXPECT_LT(absl::Now() - start, kLong);
  waker.join();
}

}  // namespace
}  // namespace headway
