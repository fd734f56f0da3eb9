// Tests FloodTrimPolicy on scripted refusal counts, resident memory and times (no
// clock), and that FloodMemory's thread trims once after a flood.
#include "server/flood_memory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>

#include "absl/synchronization/notification.h"

namespace headway {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);
constexpr int64_t kMb = 1 << 20;
constexpr int64_t kBase = 200 * kMb;

absl::Time At(int ms) { return kStart + absl::Milliseconds(ms); }

// A policy that trims floods that grew resident memory by more than 64 MB.
FloodTrimPolicy Policy() { return FloodTrimPolicy(absl::Seconds(1), 64 * kMb); }

TEST(FloodTrimPolicyTest, ALoadThatRefusesNothingNeverTrims) {
  FloodTrimPolicy policy = Policy();
  for (int ms = 0; ms <= 60000; ms += 250) {
    EXPECT_FALSE(policy.Observe(0, kBase + ms * kMb, At(ms)));
  }
}

TEST(FloodTrimPolicyTest, RefusalsBeforeTheFirstLookAreNotAFlood) {
  FloodTrimPolicy policy = Policy();
  EXPECT_FALSE(policy.Observe(500, kBase, At(0)));
  for (int ms = 250; ms <= 5000; ms += 250) {
    EXPECT_FALSE(policy.Observe(500, 2 * kBase, At(ms)));
  }
}

TEST(FloodTrimPolicyTest, TrimsOnceWhenRefusalsHaveStoppedForTheSettleTime) {
  FloodTrimPolicy policy = Policy();
  EXPECT_FALSE(policy.Observe(0, kBase, At(0)));
  // A flood: refusals grow at every look, and memory with them.
  for (int ms = 250, refused = 100; ms <= 2000; ms += 250, refused += 100) {
    EXPECT_FALSE(policy.Observe(refused, kBase + refused * kMb, At(ms)));
  }
  // It ends at 2000 ms with 800 refused: not before 3000 ms...
  EXPECT_FALSE(policy.Observe(800, kBase + 800 * kMb, At(2250)));
  EXPECT_FALSE(policy.Observe(800, kBase + 800 * kMb, At(2750)));
  // ...then once.
  EXPECT_TRUE(policy.Observe(800, kBase + 800 * kMb, At(3000)));
  EXPECT_FALSE(policy.Observe(800, kBase + 800 * kMb, At(3250)));
  EXPECT_FALSE(policy.Observe(800, kBase + 800 * kMb, At(10000)));
}

TEST(FloodTrimPolicyTest, AFloodThatResumesPutsTheTrimOff) {
  FloodTrimPolicy policy = Policy();
  EXPECT_FALSE(policy.Observe(0, kBase, At(0)));
  EXPECT_FALSE(policy.Observe(10, kBase, At(250)));
  EXPECT_FALSE(policy.Observe(10, kBase + 100 * kMb, At(1000)));
  EXPECT_FALSE(policy.Observe(11, kBase + 100 * kMb, At(1200)));  // wait again
  EXPECT_FALSE(policy.Observe(11, kBase + 100 * kMb, At(2000)));
  EXPECT_TRUE(policy.Observe(11, kBase + 100 * kMb, At(2200)));
  // A second flood, from the memory the trim left, gets its own trim.
  EXPECT_FALSE(policy.Observe(11, kBase, At(4750)));
  EXPECT_FALSE(policy.Observe(50, kBase, At(5000)));
  EXPECT_FALSE(policy.Observe(50, kBase + 70 * kMb, At(5500)));
  EXPECT_TRUE(policy.Observe(50, kBase + 70 * kMb, At(6000)));
}

TEST(FloodTrimPolicyTest, RefusalsThatBroughtNoMemoryInDoNotTrim) {
  FloodTrimPolicy policy = Policy();
  EXPECT_FALSE(policy.Observe(0, kBase, At(0)));
  EXPECT_FALSE(policy.Observe(30, kBase, At(250)));
  EXPECT_FALSE(policy.Observe(60, kBase + 10 * kMb, At(500)));
  EXPECT_FALSE(policy.Observe(60, kBase + 64 * kMb, At(1500)));  // 64 MB: not more
  EXPECT_FALSE(policy.Observe(60, kBase + 64 * kMb, At(5000)));
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
  // Memory grows with the refusals.
  options.resident_bytes = [&] { return kBase + refusals.load() * kMb; };
  options.growth_bytes = 32 * kMb;
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
