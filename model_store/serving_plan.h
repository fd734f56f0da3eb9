// ServingPlan: how a loaded model instance serves: its backbone workers, its batching
// and the intra-op threads of a pass that runs alone. What the model's config sets
// wins; what it leaves unset is chosen from the device, the CPUs the server may use
// and the model's pass times measured at load, and `summary` says what was chosen and
// why (the load's log line, ListModels, GetModelMetadata).
//
// The defaults, for a user who tunes nothing (README, Throughput):
//  - CPU: one worker per usable CPU (at most 8). Passes side by side split the CPUs
//    (CpuPassScope), which serves the most; a pass alone uses every CPU unless the
//    model is small (a single-input pass under 2 ms on one thread): the digits model's
//    pass takes 0.1 ms on one thread and 4x longer on two, ResNet-18's 29 ms on one
//    and 20 ms on two. The size is measured rather than the speed-up, because loads
//    run side by side and a speed-up measured during another load is noise; a size
//    off by half still sorts a model right.
//  - GPU: one worker.
//  - Batching on the CPU: a batch holds at least kMinCpuBatch inputs and as many as
//    a pass of kCpuBatchPassBudget holds at the single-input time on one thread (at
//    most 32). Adaptive batching (BatchPolicy) runs what is queued as soon as a
//    worker is free, so a lone request never waits for a batch, and under load a
//    fuller batch serves more: ResNet-18 (29 ms a pass) gets 8, which serves 1.2x
//    batch 1 on AMD EPYC machines (alike on the Xeons); the digits model (0.1 ms)
//    gets 32. The queue delay is the single-input pass time within 1-20 ms (5 ms on
//    a GPU); BatchPolicy waits for it only while requests arrive fast enough to fill
//    a batch sooner. On a GPU 32.
//  - Under a flood (Admission's shallow limit) what a worker is given per pass is
//    bounded by time, not by the batch size: flood_batch_size is what fits in a
//    kCpuBatchPassBudget pass (1 to 32; ResNet-18 1, digits 32), so that admitted
//    calls wait about a pass of their own, however large a batch the model may run.
//    A config's batching.flood_batch_size wins; a config's max_batch_size caps it.
//    Pass times are measured for it on the CPU whenever the config leaves it unset.
//
// Pure; torch-free.
#ifndef HEADWAY_MODEL_STORE_SERVING_PLAN_H_
#define HEADWAY_MODEL_STORE_SERVING_PLAN_H_

#include <string>

#include "absl/time/time.h"
#include "headway/v1/model_config.pb.h"

namespace headway {

// The single-input backbone pass time on one thread, measured at load on the CPU;
// zero when not measured (a GPU model).
struct PassTimes {
  absl::Duration one_thread;
};

struct ServingPlan {
  int workers = 1;
  int max_batch_size = 1;  // 1: batching off
  // Inputs per worker that a flood is admitted for (Admission's shallow limit).
  int flood_batch_size = 1;
  absl::Duration max_queue_delay;
  bool wait_for_full_batch = false;  // fixed-delay batching instead of adaptive
  // Intra-op threads of a CPU pass that runs alone.
  int lone_pass_threads = 1;
  // "workers=2 (one per CPU) max_batch_size=8 (default) ..." for logs and clients.
  std::string summary;
};

// `cpus`: the CPUs the server may use (UsableCpus); `threads`: the intra-op threads
// its passes share (TorchThreads).
ServingPlan PlanServing(const v1::ModelConfig& config, bool on_cpu, int cpus, int threads,
                        const PassTimes& times);

// Whether PlanServing uses pass times for this config: on the CPU, unless the config
// sets the batch size, the queue delay and the flood batch size and passes get one
// thread anyway.
bool PlanNeedsPassTimes(const v1::ModelConfig& config, bool on_cpu, int threads);

// The most workers a CPU model gets by default, and the single-input pass time under
// which a model counts as small.
inline constexpr int kMaxDefaultWorkers = 8;
inline constexpr absl::Duration kSmallModelPass = absl::Milliseconds(2);
// The longest CPU pass that a flood is admitted for, and the fewest inputs a default
// CPU batch holds.
inline constexpr absl::Duration kCpuBatchPassBudget = absl::Milliseconds(20);
inline constexpr int kMinCpuBatch = 8;

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_SERVING_PLAN_H_
