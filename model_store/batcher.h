// Batcher: dynamic batching for one model instance. Requests queue with their
// preprocessed inputs; an idle worker thread takes a batch when BatchPolicy says so (a
// full batch, the oldest request waited max_queue_delay, or arrivals too slow to fill
// one sooner: a lone request runs at once), runs one forward pass over it, and hands
// each request its own rows. Idle workers share what arrives together (BatchPolicy).
// On the CPU each pass sets its own intra-op threads (CpuPassScope): a lone request
// (one, nothing queued, arrivals further apart than a pass) may use every CPU, the
// latency of a lone client; any other pass takes its part of the CPUs beside the
// passes running. The queue is
// bounded: a full queue refuses new requests at once (RESOURCE_EXHAUSTED). Deadlines are
// kept from both ends: the batcher keeps a moving average of its forward passes' time,
// refuses at once (DEADLINE_EXCEEDED, saying why) a request that the queue ahead of it
// would answer after its deadline, and drops a waiting request whose deadline passes, or
// would before its pass ended, without computing it; a cancelled one too. A full queue
// first makes room by answering those. A task may add
// a second stage on its rows of the pass (a classification head): the tasks of a batch
// with the same stage share one call of it.
//
// A worker survives anything a batch throws: the batch's tasks that were not answered
// yet get INTERNAL (RESOURCE_EXHAUSTED when memory ran out), and the next batch runs.
//
// Thread-safe. The destructor stops the workers after the queued requests ran.
#ifndef HEADWAY_MODEL_STORE_BATCHER_H_
#define HEADWAY_MODEL_STORE_BATCHER_H_

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model_store/batch_policy.h"
#include "model_store/batching_stats.h"
#include "model_store/request_control.h"

namespace headway {

using BatchStage = std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)>;

struct BatchTask {
  at::Tensor inputs;  // [n, C, H, W]
  RequestControl control;
  // Optional: maps rows of the forward pass's output ([m, D]) to rows of its own
  // ([m, ...]). Tasks of one batch with a stage and the same non-null stage_key are
  // taken to have the same stage, and share one call of it over all their rows; a
  // stage without a key runs for its task alone.
  const void* stage_key = nullptr;
  BatchStage stage;
  // Runs on a batcher worker with this task's rows of the stage's output, or of the
  // forward pass's ([n, D]) without a stage, or why the task was not computed.
  std::function<void(absl::StatusOr<at::Tensor>)> done;
  absl::Time enqueued;  // set by Enqueue
};

class Batcher {
 public:
  struct Options {
    // Inputs per forward pass; 1 turns batching off.
    int max_batch_size = 1;
    // How long the oldest waiting request may wait for a batch to fill (only while
    // requests arrive fast enough to fill it sooner: BatchPolicy).
    absl::Duration max_queue_delay = absl::ZeroDuration();
    // Off: wait for a full batch or the delay however slowly requests arrive
    // (BatchPolicy::Options::adaptive).
    bool adaptive = true;
    // Requests waiting at most; more are refused.
    int max_queue_size = 256;
    // Threads running forward passes.
    int workers = 1;
    // For passes on the CPU: the intra-op threads of a lone pass (one request, nothing
    // queued behind it); 0 leaves the threads as they are (a GPU's passes).
    int lone_pass_threads = 0;
    // Told about each forward pass; may be empty.
    std::function<void(const BatchRecord&)> on_batch;
  };

  using Stats = BatchingStats;

  // `forward` maps a batch [N, C, H, W] to [N, D]; it runs on the worker threads.
  Batcher(const Options& options,
          std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)> forward);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `task`. RESOURCE_EXHAUSTED when the queue is full, DEADLINE_EXCEEDED when
  // the deadline has passed already or would before the queue ahead and the task's
  // own pass are done; task.done is not called then.
  absl::Status Enqueue(BatchTask task);

  // Enqueue's deadline check for `inputs` inputs arriving now, made before they are
  // prepared, so that a request that cannot be answered in time costs nothing more.
  absl::Status CheckDeadline(const RequestControl& control, int64_t inputs);

  // Counts a request refused before it reached the queue (the model's admission).
  void CountRefused();

  // Answers, and takes off the queue, every request whose deadline passed or whose
  // client cancelled; returns how many. (A full queue does this itself.)
  int DropAbandoned();

  // Answers RESOURCE_EXHAUSTED (with `why`) to the most recently queued requests
  // until at most `keep` inputs wait; returns how many. For a flood seen after the
  // queue filled: the newest have waited least.
  int ShedNewest(int64_t keep, absl::string_view why);

  // Caps the inputs of the passes taken from now on at `inputs` (at most
  // max_batch_size; 0: no cap): under a flood, the model's admission gives each
  // worker what a pass answers in its latency budget, however large a batch it may
  // run otherwise. A queue that reaches the cap runs at once.
  void CapBatches(int inputs);

  Stats stats() const;
  int queue_size() const;
  // The moving average of successful forward passes; zero before the first.
  absl::Duration pass_time() const;
  // The moving average of their inputs; 1 before the first.
  double pass_inputs() const;

 private:
  // A batch taken off the queue, and whether it is a lone request: one request, the
  // queue empty behind it, and requests arriving further apart than a pass takes (a
  // lone client; with several, a second pass would soon start beside a wide one and
  // oversubscribe the CPUs).
  struct Taken {
    std::vector<BatchTask> tasks;
    bool lone = false;
  };

  void Run();
  // Runs one batch and answers each of its tasks once, whatever fails or throws.
  void RunBatch(Taken& taken);
  // Calls task.done; what it throws is counted, not passed on.
  void Answer(BatchTask& task, absl::StatusOr<at::Tensor> result);
  // Takes the next batch off the queue, answering expired and cancelled tasks.
  Taken NextBatch();
  bool FullOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // max_batch_size, or CapBatches' cap where lower.
  int64_t BatchCapLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a request dropped unanswered (expired, or else cancelled) and says why.
  absl::Status AbandonedLocked(bool expired) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the expired and cancelled requests off the queue, with why.
  std::vector<std::pair<BatchTask, absl::Status>> TakeAbandonedLocked(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How long `inputs` queued inputs take to be answered, at the recent passes' time
  // per input (at least a pass).
  absl::Duration ExpectedWait(int64_t inputs) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // DEADLINE_EXCEEDED (counted) when `inputs` more inputs queued at `now` would be
  // answered after `deadline`.
  absl::Status LateLocked(absl::Time now, absl::Time deadline, int64_t inputs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotePass(absl::Duration pass, int64_t inputs);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)> forward_;
  mutable absl::Mutex mu_;
  std::deque<BatchTask> queue_ ABSL_GUARDED_BY(mu_);
  BatchPolicy policy_ ABSL_GUARDED_BY(mu_);
  int64_t queued_inputs_ ABSL_GUARDED_BY(mu_) = 0;
  // Workers waiting for work or forming a batch.
  int idle_workers_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // Moving average of successful forward passes; zero before the first.
  absl::Duration pass_time_ ABSL_GUARDED_BY(mu_);
  // Moving average of those passes' inputs.
  double pass_inputs_ ABSL_GUARDED_BY(mu_) = 1;
  // The same in nanoseconds and in thousandths of an input, for readers that must
  // not wait for mu_.
  std::atomic<int64_t> pass_time_ns_{0};
  std::atomic<int64_t> pass_milli_inputs_{1000};
  // CapBatches' cap; 0: none.
  std::atomic<int> batch_cap_{0};
  std::vector<std::thread> workers_;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BATCHER_H_
