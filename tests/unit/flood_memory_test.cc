// Tests FloodTrimPolicy on scripted refusal counts and times (no clock), and that
// FloodMemory's thread trims once after a flood and never under a load that refuses
// nothing.
#include "server/flood_memory.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"

namespace headway {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

absl::Time At(int ms) { return kStart + absl::Milliseconds(ms); }

TEST(FloodTrimPolicyTest, ALoadThatRefusesNothingNeverTrims) {
  FloodTrimPolicy policy(absl::Seconds(1));
  for (int ms = 0; ms <= 60000; ms += 250) EXPECT_FALSE(policy.Observe(0, At(ms)));
}

TEST(FloodTrimPolicyTest, RefusalsBeforeTheFirstLookAreNotAFlood) {
  FloodTrimPolicy policy(absl::Seconds(1));
  EXPECT_FALSE(policy.Observe(500, At(0)));
  for (int ms = 250; ms <= 5000; ms += 250) EXPECT_FALSE(policy.Observe(500, At(ms)));
}

TEST(FloodTrimPolicyTest, TrimsOnceWhenRefusalsHaveStoppedForTheSettleTime) {
  FloodTrimPolicy policy(absl::Seconds(1));
  EXPECT_FALSE(policy.Observe(0, At(0)));
  // A flood: refusals grow at every look.
  for (int ms = 250, refused = 100; ms <= 2000; ms += 250, refused += 100) {
    EXPECT_FALSE(policy.Observe(refused, At(ms)));
  }
  // It ends at 2000 ms with 800 refused: not before 3000 ms...
  EXPECT_FALSE(policy.Observe(800, At(2250)));
  EXPECT_FALSE(policy.Observe(800, At(2750)));
  // ...then once.
  EXPECT_TRUE(policy.Observe(800, At(3000)));
  EXPECT_FALSE(policy.Observe(800, At(3250)));
  EXPECT_FALSE(policy.Observe(800, At(10000)));
}

TEST(FloodTrimPolicyTest, AFloodThatResumesPutsTheTrimOff) {
  FloodTrimPolicy policy(absl::Seconds(1));
  EXPECT_FALSE(policy.Observe(0, At(0)));
  EXPECT_FALSE(policy.Observe(10, At(250)));
  EXPECT_FALSE(policy.Observe(10, At(1000)));
  EXPECT_FALSE(policy.Observe(11, At(1200)));  // one more refusal: wait again
  EXPECT_FALSE(policy.Observe(11, At(2000)));
  EXPECT_TRUE(policy.Observe(11, At(2200)));
  // A second flood gets its own trim.
  EXPECT_FALSE(policy.Observe(50, At(5000)));
  EXPECT_FALSE(policy.Observe(50, At(5500)));
  EXPECT_TRUE(policy.Observe(50, At(6000)));
}

TEST(FloodMemoryTest, ItsThreadTrimsOnceAfterAFlood) {
  std::atomic<int64_t> refusals{0};
  std::atomic<int> trims{0};
  absl::Notification looked, trimmed;
  FloodMemory::Options options;
  options.refusals = [&] {
    if (!looked.HasBeenNotified()) looked.Notify();
    return refusals.load();
  };
  options.trim = [&] {
    if (++trims == 1) trimmed.Notify();
  };
  options.settle = absl::Milliseconds(20);
  options.poll = absl::Milliseconds(5);
  {
    FloodMemory memory(options);
    ASSERT_TRUE(looked.WaitForNotificationWithTimeout(absl::Seconds(30)));
    absl::SleepFor(absl::Milliseconds(30));  // no refusals: no flood, no trim
    EXPECT_EQ(trims.load(), 0);
    refusals = 42;
    EXPECT_TRUE(trimmed.WaitForNotificationWithTimeout(absl::Seconds(30)));
    absl::SleepFor(absl::Milliseconds(60));
  }
  EXPECT_EQ(trims.load(), 1);
}

}  // namespace
}  // namespace headway
