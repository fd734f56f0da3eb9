#include "model_store/serving_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace headway {

namespace {

std::string Millis(absl::Duration duration) {
  return absl::StrCat(
      absl::ToDoubleMilliseconds(absl::Trunc(duration, absl::Microseconds(10))), " ms");
}

// What a pass of kCpuBatchPassBudget holds at the single-input time, 1 to 32.
int InputsAPassHolds(const PassTimes& times) {
  return static_cast<int>(
      std::clamp<int64_t>(kCpuBatchPassBudget / times.one_thread, 1, 32));
}

}  // namespace

bool PlanNeedsPassTimes(const v1::ModelConfig& config, bool on_cpu, int threads) {
  const v1::BatchingConfig& batching = config.batching();
  return on_cpu && (threads > 1 || !batching.has_max_queue_delay_us() ||
                    !batching.has_max_batch_size() || !batching.has_flood_batch_size());
}

ServingPlan PlanServing(const v1::ModelConfig& config, bool on_cpu, int cpus, int threads,
                        const PassTimes& times) {
  ServingPlan plan;
  const v1::BatchingConfig& batching = config.batching();
  std::string workers_why = "config";
  if (config.model_workers() > 0) {
    plan.workers = config.model_workers();
  } else if (on_cpu) {
    plan.workers = std::clamp(cpus, 1, kMaxDefaultWorkers);
    workers_why = absl::StrCat("one per CPU, ", cpus, " usable");
  } else {
    plan.workers = 1;
    workers_why = "GPU default";
  }

  std::string threads_why = "GPU: not used";
  if (on_cpu) {
    plan.lone_pass_threads = 1;
    if (threads <= 1) {
      threads_why = "--torch_threads";
    } else if (times.one_thread <= absl::ZeroDuration()) {
      plan.lone_pass_threads = threads;
      threads_why = "not measured";
    } else {
      const bool small = times.one_thread < kSmallModelPass;
      plan.lone_pass_threads = small ? 1 : threads;
      threads_why = absl::StrCat(small ? "small" : "large", " model: a pass takes ",
                                 Millis(times.one_thread), " on 1 thread");
    }
  }

  std::string batch_why = "config";
  if (batching.has_max_batch_size()) {
    plan.max_batch_size = std::max(1, batching.max_batch_size());
  } else if (!on_cpu) {
    plan.max_batch_size = 32;
    batch_why = "GPU default";
  } else if (times.one_thread > absl::ZeroDuration()) {
    plan.max_batch_size = std::max(kMinCpuBatch, InputsAPassHolds(times));
    batch_why = absl::StrCat("at least ", kMinCpuBatch, ", as many as a ",
                             Millis(kCpuBatchPassBudget), " pass holds, at most 32");
  } else {
    plan.max_batch_size = kMinCpuBatch;
    batch_why = "CPU default";
  }
  std::string flood_why = "config";
  if (batching.has_flood_batch_size()) {
    plan.flood_batch_size =
        std::clamp(batching.flood_batch_size(), 1, plan.max_batch_size);
  } else if (on_cpu && times.one_thread > absl::ZeroDuration()) {
    plan.flood_batch_size = std::min(plan.max_batch_size, InputsAPassHolds(times));
    flood_why = absl::StrCat("inputs whose pass fits in ", Millis(kCpuBatchPassBudget),
                             " on 1 thread");
  } else {
    plan.flood_batch_size = plan.max_batch_size;
    flood_why = "max_batch_size";
  }
  std::string delay_why = "config";
  if (batching.has_max_queue_delay_us()) {
    plan.max_queue_delay = absl::Microseconds(batching.max_queue_delay_us());
  } else if (!on_cpu) {
    plan.max_queue_delay = absl::Milliseconds(5);
    delay_why = "GPU default";
  } else if (times.one_thread > absl::ZeroDuration()) {
    plan.max_queue_delay =
        std::clamp(absl::Trunc(times.one_thread, absl::Microseconds(1)),
                   absl::Milliseconds(1), absl::Milliseconds(20));
    delay_why = "a pass's time, within 1-20 ms";
  } else {
    plan.max_queue_delay = absl::Milliseconds(20);
    delay_why = "default";
  }

  plan.wait_for_full_batch = batching.wait_for_full_batch();
  plan.summary = absl::StrCat(
      "workers=", plan.workers, " (", workers_why,
      ") max_batch_size=", plan.max_batch_size, " (", batch_why,
      ") flood_batch_size=", plan.flood_batch_size, " (", flood_why,
      ") max_queue_delay_us=", absl::ToInt64Microseconds(plan.max_queue_delay), " (",
      delay_why, ")", plan.wait_for_full_batch ? " wait_for_full_batch" : "");
  if (on_cpu) {
    absl::StrAppend(&plan.summary, " lone_pass_threads=", plan.lone_pass_threads, " (",
                    threads_why, ")");
  }
  return plan;
}

}  // namespace headway
