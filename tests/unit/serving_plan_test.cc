// PlanServing: what a model that sets nothing gets on each machine, and that what a
// config sets wins.
#include "model_store/serving_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace headway {
namespace {

using ::testing::HasSubstr;

constexpr bool kCpu = true;
constexpr bool kGpu = false;

PassTimes Pass(double ms) { return {absl::Microseconds(ms * 1000)}; }

TEST(ServingPlanTest, AResNetSizedModelWithNoSettingsUsesEveryCpu) {
  const ServingPlan plan = PlanServing(v1::ModelConfig(), kCpu, 2, 2, Pass(29));
  EXPECT_EQ(plan.workers, 2);
  // Batches of 8 serve more under load; a flood is admitted one input per worker, as
  // one input already fills a 20 ms pass.
  EXPECT_EQ(plan.max_batch_size, 8);
  EXPECT_EQ(plan.flood_batch_size, 1);
  EXPECT_EQ(plan.max_queue_delay, absl::Milliseconds(20));  // 29 ms, capped
  EXPECT_EQ(plan.lone_pass_threads, 2);
  EXPECT_THAT(plan.summary, HasSubstr("workers=2 (one per CPU, 2 usable)"));
  EXPECT_THAT(plan.summary, HasSubstr("lone_pass_threads=2 (large model"));
}

TEST(ServingPlanTest, ASmallModelBatchesMoreAndRunsEachPassOnOneThread) {
  const ServingPlan plan = PlanServing(v1::ModelConfig(), kCpu, 2, 2, Pass(0.1));
  EXPECT_EQ(plan.workers, 2);
  EXPECT_EQ(plan.max_batch_size, 32);
  EXPECT_EQ(plan.flood_batch_size, 32);
  EXPECT_EQ(plan.max_queue_delay, absl::Milliseconds(1));  // 0.1 ms, raised to 1 ms
  EXPECT_EQ(plan.lone_pass_threads, 1);
  EXPECT_THAT(plan.summary, HasSubstr("small model"));
}

TEST(ServingPlanTest, AFloodIsAdmittedForWhatA20MsPassHolds) {
  const auto plan = [](double ms) {
    return PlanServing(v1::ModelConfig(), kCpu, 2, 2, Pass(ms));
  };
  EXPECT_EQ(plan(6.5).flood_batch_size, 3);
  EXPECT_EQ(plan(6.5).max_batch_size, kMinCpuBatch);
  EXPECT_EQ(plan(1.9).flood_batch_size, 10);
  EXPECT_EQ(plan(1.9).max_batch_size, 10);
  EXPECT_EQ(plan(0.5).max_batch_size, 32);
  EXPECT_THAT(plan(6.5).summary,
              HasSubstr("flood_batch_size=3 (inputs whose pass fits in 20 ms"));
  // Without a pass time (its measurement failed): the CPU default.
  v1::ModelConfig delay_set;
  delay_set.mutable_batching()->set_max_queue_delay_us(2000);
  EXPECT_EQ(PlanServing(delay_set, kCpu, 1, 1, PassTimes()).max_batch_size, 8);
}

TEST(ServingPlanTest, TheQueueDelayFollowsThePassTimeBetweenItsBounds) {
  EXPECT_EQ(PlanServing(v1::ModelConfig(), kCpu, 4, 4, Pass(6.5)).max_queue_delay,
            absl::Microseconds(6500));
}

TEST(ServingPlanTest, WorkersFollowTheCpusUpToEight) {
  EXPECT_EQ(PlanServing(v1::ModelConfig(), kCpu, 1, 1, Pass(29)).workers, 1);
  EXPECT_EQ(PlanServing(v1::ModelConfig(), kCpu, 6, 6, Pass(29)).workers, 6);
  EXPECT_EQ(PlanServing(v1::ModelConfig(), kCpu, 64, 64, Pass(29)).workers, 8);
}

TEST(ServingPlanTest, WhatTheConfigSetsWins) {
  v1::ModelConfig config;
  config.set_model_workers(3);
  config.mutable_batching()->set_max_batch_size(16);
  config.mutable_batching()->set_max_queue_delay_us(0);
  const ServingPlan plan = PlanServing(config, kCpu, 2, 2, Pass(29));
  EXPECT_EQ(plan.workers, 3);
  EXPECT_EQ(plan.max_batch_size, 16);
  // A flood is still admitted for what a 20 ms pass holds, unless the config says.
  EXPECT_EQ(plan.flood_batch_size, 1);
  EXPECT_EQ(plan.max_queue_delay, absl::ZeroDuration());
  EXPECT_THAT(plan.summary, HasSubstr("workers=3 (config)"));
  EXPECT_TRUE(PlanNeedsPassTimes(config, kCpu, 1));  // for the flood batch size
  config.mutable_batching()->set_flood_batch_size(4);
  EXPECT_EQ(PlanServing(config, kCpu, 2, 2, Pass(29)).flood_batch_size, 4);
  EXPECT_THAT(PlanServing(config, kCpu, 2, 2, Pass(29)).summary,
              HasSubstr("flood_batch_size=4 (config)"));
  EXPECT_FALSE(PlanNeedsPassTimes(config, kCpu, 1));
  EXPECT_TRUE(PlanNeedsPassTimes(config, kCpu, 2));  // for the lone pass's threads
  // Never more than max_batch_size.
  config.mutable_batching()->set_flood_batch_size(64);
  EXPECT_EQ(PlanServing(config, kCpu, 2, 2, Pass(29)).flood_batch_size, 16);

  // A batch size of 0 or 1, set, turns batching off.
  for (int off : {0, 1}) {
    config.mutable_batching()->set_max_batch_size(off);
    EXPECT_EQ(PlanServing(config, kCpu, 2, 2, Pass(29)).max_batch_size, 1);
  }
}

TEST(ServingPlanTest, OneTorchThreadKeepsEveryPassOnOne) {
  const ServingPlan plan = PlanServing(v1::ModelConfig(), kCpu, 2, 1, Pass(29));
  EXPECT_EQ(plan.lone_pass_threads, 1);
  EXPECT_EQ(plan.workers, 2);
  EXPECT_THAT(plan.summary, HasSubstr("--torch_threads"));
}

TEST(ServingPlanTest, AGpuModelGetsOneWorkerAndLargerBatches) {
  const ServingPlan plan = PlanServing(v1::ModelConfig(), kGpu, 16, 16, PassTimes());
  EXPECT_EQ(plan.workers, 1);
  EXPECT_EQ(plan.max_batch_size, 32);
  EXPECT_EQ(plan.max_queue_delay, absl::Milliseconds(5));
  EXPECT_FALSE(PlanNeedsPassTimes(v1::ModelConfig(), kGpu, 16));
  EXPECT_THAT(plan.summary, ::testing::Not(HasSubstr("lone_pass_threads")));
}

}  // namespace
}  // namespace headway
