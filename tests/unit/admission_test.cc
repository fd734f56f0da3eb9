// Admission's limits and its flood detection on scripted arrivals with a fake clock:
// a closed loop is never refused, an open-loop flood gets the shallow limit within a
// window, and the deep limit returns once arrivals fall back.
#include "model_store/admission.h"

#include <deque>

#include "gtest/gtest.h"

namespace headway {
namespace {

constexpr absl::Duration kPass = absl::Milliseconds(30);

Admission::Options ResNetLike() {
  Admission::Options options;
  options.workers = 2;
  options.max_batch_size = 1;  // two workers, one input a pass
  options.max_queue_size = 256;
  options.max_queue_wait = absl::Seconds(1);
  return options;
}

TEST(AdmissionTest, DeepLimitIsTheRunningCapacityPlusTheQueueWait) {
  Admission admission(ResNetLike());
  // No pass yet: the whole queue.
  EXPECT_EQ(admission.DeepLimit({}), 2 + 256);
  // 1 s of 30 ms passes of 2: 33 passes, 66 requests.
  EXPECT_EQ(admission.DeepLimit({kPass}), 2 + 66);
  // Slow passes: never under kMinQueue, nor two passes' worth.
  EXPECT_EQ(admission.DeepLimit({absl::Seconds(2)}), 2 + Admission::kMinQueue);
  // Fast passes: never over max_queue_size.
  EXPECT_EQ(admission.DeepLimit({absl::Microseconds(100)}), 2 + 256);
  EXPECT_EQ(admission.ShallowLimit(), 4);

  Admission::Options big = ResNetLike();
  big.workers = 64;
  big.max_batch_size = 1;
  big.max_queue_wait = absl::Milliseconds(1);
  EXPECT_EQ(Admission(big).DeepLimit({kPass}), 64 + 2 * 64);
}

TEST(AdmissionTest, HoldsUpToTheLimitAndReleases) {
  Admission admission(ResNetLike());
  EXPECT_TRUE(admission.TryHold(2));
  EXPECT_TRUE(admission.TryHold(2));
  EXPECT_FALSE(admission.TryHold(2));
  EXPECT_EQ(admission.held(), 2);
  admission.Release(/*answered=*/true);
  EXPECT_TRUE(admission.TryHold(2));
  EXPECT_EQ(admission.held(), 2);
}

// Callers that each send their next call when the last is answered, against a model
// that answers `running_capacity` calls a pass.
TEST(AdmissionTest, AClosedLoopThatFitsTheDeepLimitIsNeverRefused) {
  Admission admission(ResNetLike());
  absl::Time now = absl::FromUnixSeconds(1000);
  constexpr int kCallers = 64;
  std::deque<int> held;  // the callers' calls in flight, oldest first
  for (int caller = 0; caller < kCallers; ++caller) {
    const Admission::Limit limit = admission.Arrive({kPass}, now);
    ASSERT_FALSE(limit.flooded);
    ASSERT_TRUE(admission.TryHold(limit.requests)) << "caller " << caller;
    held.push_back(caller);
  }
  // Ten seconds of passes: each answers two calls, whose callers send again.
  for (int pass = 0; pass < 333; ++pass) {
    now += kPass;
    for (int answered = 0; answered < 2; ++answered) {
      admission.Release(/*answered=*/true);
      held.pop_front();
      const Admission::Limit limit = admission.Arrive({kPass}, now);
      ASSERT_FALSE(limit.flooded) << "pass " << pass;
      ASSERT_TRUE(admission.TryHold(limit.requests)) << "pass " << pass;
      held.push_back(0);
    }
  }
  EXPECT_EQ(admission.held(), kCallers);
}

// Calls arriving at ten times what is answered, whatever the answers do.
struct FloodRun {
  int refused = 0;
  bool flooded_at_end = false;  // the last arrival's limit
};

FloodRun Flood(Admission& admission, absl::Time& now, absl::Duration length) {
  FloodRun run;
  const absl::Time start = now;
  // Per pass (30 ms): 20 arrivals, 2 answers of the oldest held calls.
  while (now - start < length) {
    now += kPass;
    for (int answered = 0; answered < 2 && admission.held() > 0; ++answered) {
      admission.Release(/*answered=*/true);
    }
    for (int arrival = 0; arrival < 20; ++arrival) {
      const Admission::Limit limit = admission.Arrive({kPass}, now);
      run.flooded_at_end = limit.flooded;
      if (!admission.TryHold(limit.requests)) ++run.refused;
    }
  }
  return run;
}

TEST(AdmissionTest, AnOpenLoopFloodGetsTheShallowLimitWithinAWindow) {
  Admission admission(ResNetLike());
  absl::Time now = absl::FromUnixSeconds(1000);
  const FloodRun run = Flood(admission, now, absl::Seconds(5));
  EXPECT_TRUE(run.flooded_at_end);
  EXPECT_GT(run.refused, 0);
  // The deep queue that filled before the flood was seen drains to the shallow
  // limit, and stays there.
  EXPECT_LE(admission.held(), admission.ShallowLimit());
}

// A model that batches 8 inputs a pass under a closed loop, but whose pass of one
// already takes what a flood is admitted for: the flood gets one input per worker
// (twice over), not the running capacity's 16 per round.
TEST(AdmissionTest, AFloodIsAdmittedForTheFloodCapacityNotTheBatchSize) {
  Admission::Options options = ResNetLike();
  options.max_batch_size = 8;
  options.flood_batch_size = 1;
  options.max_queue_size = 32;
  Admission admission(options);
  EXPECT_EQ(admission.ShallowLimit(), 4);
  EXPECT_EQ(admission.DeepLimit({kPass}), 16 + 32);
  absl::Time now = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(Flood(admission, now, absl::Seconds(5)).flooded_at_end);
  EXPECT_LE(admission.held(), 4);

  // The deep queue is what the recent passes answer in a second: 5 passes of 200 ms,
  // with 2 inputs each on each worker, or 8.
  options.max_queue_size = 256;
  const Admission deep(options);
  EXPECT_EQ(deep.DeepLimit({absl::Milliseconds(200), 2}), 16 + Admission::kMinQueue);
  EXPECT_EQ(deep.DeepLimit({absl::Milliseconds(200), 8}), 16 + 5 * 16);
  // Never more per pass than the batch size.
  EXPECT_EQ(deep.DeepLimit({absl::Milliseconds(200), 30}), 16 + 5 * 16);

  // Never over the running capacity, and unset means the same.
  options.flood_batch_size = 32;
  EXPECT_EQ(Admission(options).ShallowLimit(), 32);
  options.flood_batch_size = 0;
  EXPECT_EQ(Admission(options).ShallowLimit(), 32);
}

TEST(AdmissionTest, TheDeepLimitReturnsWhenArrivalsFallBack) {
  Admission admission(ResNetLike());
  absl::Time now = absl::FromUnixSeconds(1000);
  ASSERT_TRUE(Flood(admission, now, absl::Seconds(3)).flooded_at_end);
  // Arrivals now match answers (a closed loop of what is held).
  bool flooded = true;
  for (int pass = 0; pass < 40; ++pass) {
    now += kPass;
    for (int answered = 0; answered < 2 && admission.held() > 0; ++answered) {
      admission.Release(/*answered=*/true);
      const Admission::Limit limit = admission.Arrive({kPass}, now);
      flooded = limit.flooded;
      ASSERT_TRUE(admission.TryHold(limit.requests));
    }
  }
  // 40 passes = 1.2 s: more than a window.
  EXPECT_FALSE(flooded);
  EXPECT_EQ(admission.Arrive({kPass}, now).requests, admission.DeepLimit({kPass}));
}

// Admitted calls refused after all (deadlines that cannot be met) are not answers: a
// flood of them trips the shallow limit as refusals at admission do.
TEST(AdmissionTest, RefusalsAfterAdmissionCountTowardAFlood) {
  Admission admission(ResNetLike());
  absl::Time now = absl::FromUnixSeconds(1000);
  bool flooded = false;
  for (int pass = 0; pass < 50 && !flooded; ++pass) {
    now += kPass;
    for (int arrival = 0; arrival < 20; ++arrival) {
      const Admission::Limit limit = admission.Arrive({kPass}, now);
      flooded = flooded || limit.flooded;
      if (admission.TryHold(limit.requests)) {
        admission.Release(/*answered=*/arrival < 2);  // two answered, the rest late
      }
    }
  }
  EXPECT_TRUE(flooded);
  EXPECT_EQ(admission.held(), 0);
}

TEST(AdmissionTest, AQuietStepStartsTheWindowAfresh) {
  Admission admission(ResNetLike());
  absl::Time now = absl::FromUnixSeconds(1000);
  ASSERT_TRUE(Flood(admission, now, absl::Seconds(2)).flooded_at_end);
  while (admission.held() > 0) admission.Release(/*answered=*/true);
  // Nothing arrives for two steps; the next call sees no flood.
  now += 2 * Admission::kWindowStep + absl::Milliseconds(1);
  const Admission::Limit limit = admission.Arrive({kPass}, now);
  EXPECT_FALSE(limit.flooded);
  EXPECT_EQ(limit.requests, admission.DeepLimit({kPass}));
}

}  // namespace
}  // namespace headway
