// BatchPolicy's decisions on scripted arrival patterns, on a fake clock: the times
// are made up, nothing sleeps, and no assertion depends on how fast this machine is.
#include "model_store/batch_policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

namespace headway {
namespace {

using Reason = BatchPolicy::Reason;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

// Whole microseconds, so that sums of times compare exactly.
absl::Time At(double ms) { return kStart + absl::Microseconds(std::llround(ms * 1000)); }

BatchPolicy Policy(int max_batch_size, double delay_ms) {
  return BatchPolicy({max_batch_size, absl::Microseconds(std::llround(delay_ms * 1000))});
}

TEST(BatchPolicyTest, ALoneClientNeverWaits) {
  // Concurrency 1: one request every 30 ms (a 25 ms pass plus the round trip). Each
  // finds an idle worker and the queue otherwise empty.
  BatchPolicy policy = Policy(8, 20);
  for (int i = 0; i < 20; ++i) {
    const absl::Time arrived = At(30.0 * i);
    policy.NoteArrival(arrived, 1);
    const BatchPolicy::Decision decision = policy.Decide(arrived, 1, arrived);
    EXPECT_TRUE(decision.run_now) << "request " << i;
    EXPECT_EQ(decision.reason, i < 3 ? Reason::kRateUnknown : Reason::kWouldNotFill)
        << "request " << i << ": " << ReasonName(decision.reason);
  }
  EXPECT_EQ(policy.typical_gap(), absl::Milliseconds(30));
}

TEST(BatchPolicyTest, ABurstFillsTheBatchAndOnlyThenRuns) {
  // Closed-loop clients, 8 per pass: each pass's callers send again within a few
  // tenths of a millisecond of its answer, then nothing comes until the next answer.
  BatchPolicy policy = Policy(8, 20);
  double now = 0;
  for (int pass = 0; pass < 3; ++pass) {
    for (int i = 0; i < 8; ++i, now += 0.2) policy.NoteArrival(At(now), 1);
    now += 100;  // the pass runs
  }
  // The typical gap is the burst's, not the pause's.
  EXPECT_EQ(policy.typical_gap(), absl::Microseconds(200));

  const absl::Time first = At(now);
  for (int queued = 1; queued < 8; ++queued) {
    policy.NoteArrival(At(now), 1);
    const BatchPolicy::Decision decision = policy.Decide(At(now), queued, first);
    EXPECT_FALSE(decision.run_now)
        << queued << " queued: " << ReasonName(decision.reason);
    EXPECT_EQ(decision.reason, Reason::kFilling);
    // It looks again soon after the next arrival is due, well before the delay.
    EXPECT_GT(decision.decide_again, At(now + 0.2));
    EXPECT_LT(decision.decide_again, At(now + 1));
    now += 0.2;
  }
  policy.NoteArrival(At(now), 1);
  EXPECT_EQ(policy.Decide(At(now), 8, first).reason, Reason::kFull);
}

TEST(BatchPolicyTest, WhenABurstStopsShortTheBatchRunsAfterAFewGaps) {
  // Five callers send again (a batch of 8 will not fill): the worker runs the five once
  // three typical gaps pass without an arrival, not after the 20 ms delay.
  BatchPolicy policy = Policy(8, 20);
  for (int i = 0; i < 8; ++i) policy.NoteArrival(At(0.2 * i), 1);
  const double burst = 50;
  for (int i = 0; i < 5; ++i) policy.NoteArrival(At(burst + 0.2 * i), 1);
  const double last = burst + 0.8;
  const BatchPolicy::Decision waiting = policy.Decide(At(last), 5, At(burst));
  ASSERT_FALSE(waiting.run_now);
  EXPECT_EQ(waiting.decide_again, At(last + 3 * 0.2));
  const BatchPolicy::Decision after = policy.Decide(waiting.decide_again, 5, At(burst));
  EXPECT_TRUE(after.run_now);
  EXPECT_EQ(after.reason, Reason::kArrivalsStopped);
}

TEST(BatchPolicyTest, ArrivalsTooSlowToFillBeforeTheDelayRunAtOnce) {
  // Steady arrivals every 5 ms: 7 more would take 35 ms, past a 20 ms delay, so the
  // request runs now; with a 100 ms delay the batch fills in time, so it waits.
  for (const auto& [delay_ms, waits] :
       std::vector<std::pair<double, bool>>{{20, false}, {100, true}}) {
    BatchPolicy policy = Policy(8, delay_ms);
    for (int i = 0; i < 10; ++i) policy.NoteArrival(At(5.0 * i), 1);
    const BatchPolicy::Decision decision = policy.Decide(At(45), 1, At(45));
    EXPECT_EQ(decision.run_now, !waits) << "delay " << delay_ms;
    EXPECT_EQ(decision.reason, waits ? Reason::kFilling : Reason::kWouldNotFill);
  }
}

TEST(BatchPolicyTest, TheDelayBoundsTheWaitOfTheOldestRequest) {
  // Arrivals every 1 ms would fill a batch of 32 only after the 10 ms delay; the
  // oldest request never waits past it, whatever keeps arriving.
  BatchPolicy policy = Policy(32, 10);
  for (int i = 0; i < 10; ++i) policy.NoteArrival(At(0.1 * i), 1);
  policy.NoteArrival(At(5), 1);
  BatchPolicy::Decision decision = policy.Decide(At(5), 1, At(5));
  ASSERT_FALSE(decision.run_now) << ReasonName(decision.reason);
  for (double t = 5.1; t < 15; t += 0.1) policy.NoteArrival(At(t), 1);
  decision = policy.Decide(At(15), 31, At(5));
  EXPECT_TRUE(decision.run_now);
  EXPECT_EQ(decision.reason, Reason::kDelayOver);
}

TEST(BatchPolicyTest, RequestsOfManyInputsNeedFewerArrivals) {
  // Arrivals every 2 ms of 4 inputs each: 3 more fill a batch of 16 in 6 ms, inside a
  // 10 ms delay. Counted as one input each, 15 would take 30 ms.
  BatchPolicy policy = Policy(16, 10);
  for (int i = 0; i < 12; ++i) policy.NoteArrival(At(2.0 * i), 4);
  EXPECT_FALSE(policy.Decide(At(22), 4, At(22)).run_now);
}

TEST(BatchPolicyTest, BatchingOffAlwaysRunsAndTheFirstArrivalsRunAtOnce) {
  BatchPolicy off = Policy(1, 20);
  off.NoteArrival(At(0), 1);
  EXPECT_EQ(off.Decide(At(0), 1, At(0)).reason, Reason::kBatchingOff);
  BatchPolicy fresh = Policy(8, 20);
  fresh.NoteArrival(At(0), 1);
  EXPECT_EQ(fresh.Decide(At(0), 1, At(0)).reason, Reason::kRateUnknown);
  EXPECT_EQ(fresh.typical_gap(), absl::ZeroDuration());
}

TEST(BatchPolicyTest, IdleWorkersShareWhatArrivesTogether) {
  // Two workers idle when a burst of 8 comes, batches of 8: each runs once it holds
  // its share (4), so both run side by side; with one idle worker it waits for 8.
  BatchPolicy policy = Policy(8, 20);
  double now = 0;
  for (int i = 0; i < 8; ++i, now += 0.2) policy.NoteArrival(At(now), 1);
  now += 100;
  for (int i = 0; i < 4; ++i, now += 0.2) policy.NoteArrival(At(now), 1);
  EXPECT_EQ(policy.Decide(At(now), 4, At(100), /*idle_workers=*/2).reason, Reason::kFull);
  EXPECT_EQ(policy.Decide(At(now), 4, At(100), /*idle_workers=*/1).reason,
            Reason::kFilling);
  // What a worker takes: its share, or its share of a longer queue, at most a batch.
  EXPECT_EQ(policy.TakeAtMost(4, 2), 4);
  EXPECT_EQ(policy.TakeAtMost(5, 2), 4);
  EXPECT_EQ(policy.TakeAtMost(12, 2), 6);
  EXPECT_EQ(policy.TakeAtMost(40, 2), 8);
  EXPECT_EQ(policy.TakeAtMost(3, 1), 8);
}

TEST(BatchPolicyTest, FixedDelayBatchingWaitsForAFullBatchOrTheDelay) {
  // wait_for_full_batch: a lone client's request waits the whole delay, and idle
  // workers do not share.
  BatchPolicy policy({8, absl::Milliseconds(20), /*adaptive=*/false});
  for (int i = 0; i < 10; ++i) policy.NoteArrival(At(30.0 * i), 1);
  const BatchPolicy::Decision lone = policy.Decide(At(270), 1, At(270), 2);
  EXPECT_FALSE(lone.run_now);
  EXPECT_EQ(lone.decide_again, At(290));
  EXPECT_EQ(policy.Decide(At(290), 1, At(270), 2).reason, Reason::kDelayOver);
  EXPECT_FALSE(policy.Decide(At(271), 4, At(270), 2).run_now);
  EXPECT_EQ(policy.Decide(At(271), 8, At(270), 2).reason, Reason::kFull);
  EXPECT_EQ(policy.TakeAtMost(8, 2), 8);
}

}  // namespace
}  // namespace headway
