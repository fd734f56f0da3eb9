#include "model_store/batcher.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "model_store/base_priority_thread.h"
#include "model_store/status_macros.h"
#include "model_store/thread_name.h"
#include "model_store/torch_errors.h"
#include "model_store/torch_runtime.h"

namespace headway {

namespace {

std::string FormatMs(absl::Duration duration) {
  return absl::StrCat(absl::ToInt64Milliseconds(duration), " ms");
}

// Each task's answer: its rows of the forward pass's output, or, for a task with a
// stage, its rows of the stage's output over the rows of every task sharing that stage.
std::vector<absl::StatusOr<at::Tensor>> TaskOutputs(
    const std::vector<BatchTask>& batch, const absl::StatusOr<at::Tensor>& features) {
  if (!features.ok()) {
    return std::vector<absl::StatusOr<at::Tensor>>(batch.size(), features.status());
  }
  std::vector<absl::StatusOr<at::Tensor>> outputs(batch.size());
  std::vector<int64_t> first_row;
  int64_t rows = 0;
  for (const BatchTask& task : batch) {
    first_row.push_back(rows);
    rows += task.inputs.size(0);
  }
  const auto rows_of = [&](size_t i) {
    return features->narrow(0, first_row[i], batch[i].inputs.size(0));
  };
  std::vector<bool> answered(batch.size(), false);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (answered[i]) continue;
    if (!batch[i].stage) {
      outputs[i] = rows_of(i);
      continue;
    }
    const void* key = batch[i].stage_key;
    std::vector<size_t> sharing;
    std::vector<at::Tensor> stage_inputs;
    for (size_t j = i; j < batch.size(); ++j) {
      if (j == i || (key != nullptr && batch[j].stage_key == key && batch[j].stage)) {
        sharing.push_back(j);
        stage_inputs.push_back(rows_of(j));
      }
    }
    absl::StatusOr<at::Tensor> staged =
        CallTorch("gathering rows for a stage", absl::StatusCode::kInternal, [&] {
          return sharing.size() == batch.size() ? *features : at::cat(stage_inputs);
        });
    if (staged.ok()) staged = batch[i].stage(*staged);
    int64_t row = 0;
    for (size_t j : sharing) {
      const int64_t n = batch[j].inputs.size(0);
      outputs[j] = staged.ok() ? absl::StatusOr<at::Tensor>(staged->narrow(0, row, n))
                               : staged.status();
      answered[j] = true;
      row += n;
    }
  }
  return outputs;
}

}  // namespace

Batcher::Batcher(const Options& options,
                 std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)> forward)
    : options_(options),
      forward_(std::move(forward)),
      policy_({options.max_batch_size, options.max_queue_delay, options.adaptive}) {
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.push_back(StartAtBasePriority([this] { Run(); }));
  }
}

Batcher::~Batcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

absl::Status Batcher::Enqueue(BatchTask task) {
  task.enqueued = absl::Now();
  if (task.enqueued > task.control.deadline) {
    return absl::DeadlineExceededError(
        "the request's deadline passed before it was queued");
  }
  // A full queue makes room by answering the requests nobody waits for any more.
  std::vector<std::pair<BatchTask, absl::Status>> dropped;
  absl::Cleanup answer_dropped = [&] {
    for (auto& [old, why] : dropped) Answer(old, why);
  };
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
    dropped = TakeAbandonedLocked(task.enqueued);
  }
  if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
    ++stats_.refused;
    return absl::ResourceExhaustedError(
        absl::StrCat("the model's queue is full (", options_.max_queue_size,
                     " requests, batching.max_queue_size); retry later"));
  }
  const int64_t rows = task.inputs.size(0);
  HEADWAY_RETURN_IF_ERROR(LateLocked(task.enqueued, task.control.deadline, rows));
  queued_inputs_ += rows;
  policy_.NoteArrival(task.enqueued, rows);
  queue_.push_back(std::move(task));
  return absl::OkStatus();
}

absl::Status Batcher::CheckDeadline(const RequestControl& control, int64_t inputs) {
  const absl::Time now = absl::Now();
  if (now > control.deadline) {
    return absl::DeadlineExceededError(
        "the request's deadline passed before it was queued");
  }
  if (control.deadline == absl::InfiniteFuture()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return LateLocked(now, control.deadline, inputs);
}

absl::Status Batcher::LateLocked(absl::Time now, absl::Time deadline, int64_t inputs) {
  const absl::Duration wait = ExpectedWait(queued_inputs_ + inputs);
  if (now + wait <= deadline) return absl::OkStatus();
  ++stats_.refused_late;
  return absl::DeadlineExceededError(
      absl::StrCat("the request's deadline (", FormatMs(deadline - now),
                   " away) cannot be met: the model's queue holds ", queue_.size(),
                   " requests and a forward pass takes about ", FormatMs(pass_time_),
                   ", so it would be answered in about ", FormatMs(wait)));
}

absl::Status Batcher::AbandonedLocked(bool expired) {
  ++(expired ? stats_.expired : stats_.cancelled);
  return expired ? absl::DeadlineExceededError(
                       "the request's deadline passed, or would before its forward "
                       "pass ended, while it waited for a batch")
                 : absl::CancelledError("the request was cancelled while it waited");
}

std::vector<std::pair<BatchTask, absl::Status>> Batcher::TakeAbandonedLocked(
    absl::Time now) {
  std::vector<std::pair<BatchTask, absl::Status>> taken;
  std::deque<BatchTask> kept;
  for (BatchTask& task : queue_) {
    const bool expired = now > task.control.deadline;
    const bool cancelled = !expired && task.control.cancelled && task.control.cancelled();
    if (!expired && !cancelled) {
      kept.push_back(std::move(task));
      continue;
    }
    queued_inputs_ -= task.inputs.size(0);
    taken.emplace_back(std::move(task), AbandonedLocked(expired));
  }
  queue_.swap(kept);
  return taken;
}

int Batcher::DropAbandoned() {
  std::vector<std::pair<BatchTask, absl::Status>> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = TakeAbandonedLocked(absl::Now());
  }
  for (auto& [task, why] : dropped) Answer(task, why);
  return static_cast<int>(dropped.size());
}

int Batcher::ShedNewest(int64_t keep, absl::string_view why) {
  std::vector<BatchTask> shed;
  {
    absl::MutexLock lock(&mu_);
    while (queued_inputs_ > keep && !queue_.empty()) {
      queued_inputs_ -= queue_.back().inputs.size(0);
      shed.push_back(std::move(queue_.back()));
      queue_.pop_back();
    }
    stats_.shed += static_cast<int64_t>(shed.size());
  }
  for (BatchTask& task : shed) Answer(task, absl::ResourceExhaustedError(why));
  return static_cast<int>(shed.size());
}

absl::Duration Batcher::ExpectedWait(int64_t inputs) const {
  // Each worker answers its share one input at a time at the recent passes' time per
  // input: a model that ran passes of one answers a pass per input, one that ran
  // full batches a pass per batch.
  const int64_t workers = std::max(1, options_.workers);
  const int64_t per_worker = (inputs + workers - 1) / workers;
  return std::max(pass_time_, pass_time_ * (per_worker / pass_inputs_));
}

void Batcher::CountRefused() {
  absl::MutexLock lock(&mu_);
  ++stats_.refused;
}

Batcher::Stats Batcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

int Batcher::queue_size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

bool Batcher::HasWorkOrStopping() const { return stopping_ || !queue_.empty(); }

bool Batcher::FullOrStopping() const {
  return stopping_ || queued_inputs_ >= BatchCapLocked();
}

int64_t Batcher::BatchCapLocked() const {
  const int cap = batch_cap_.load(std::memory_order_relaxed);
  return cap > 0 ? std::min(cap, options_.max_batch_size) : options_.max_batch_size;
}

void Batcher::CapBatches(int inputs) {
  if (batch_cap_.load(std::memory_order_relaxed) == inputs) return;
  batch_cap_.store(inputs, std::memory_order_relaxed);
}

Batcher::Taken Batcher::NextBatch() {
  Taken taken;
  std::vector<BatchTask>& batch = taken.tasks;
  std::vector<std::pair<BatchTask, absl::Status>> dropped;
  {
    absl::MutexLock lock(&mu_);
    ++idle_workers_;
    absl::Cleanup busy = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { --idle_workers_; };
    mu_.Await(absl::Condition(this, &Batcher::HasWorkOrStopping));
    if (queue_.empty()) return taken;  // stopping
    // Wait for a fuller batch only while the policy expects one soon.
    while (!stopping_ && queued_inputs_ < BatchCapLocked()) {
      const BatchPolicy::Decision decision = policy_.Decide(
          absl::Now(), queued_inputs_, queue_.front().enqueued, idle_workers_);
      if (decision.run_now) break;
      mu_.AwaitWithDeadline(absl::Condition(this, &Batcher::FullOrStopping),
                            decision.decide_again);
      if (queue_.empty()) return taken;  // another worker took it
    }
    const int64_t limit =
        std::min(BatchCapLocked(), policy_.TakeAtMost(queued_inputs_, idle_workers_));
    const absl::Time now = absl::Now();
    int64_t rows = 0;
    while (!queue_.empty()) {
      BatchTask& next = queue_.front();
      const int64_t n = next.inputs.size(0);
      // A pass that would end after the deadline is not started for it.
      const bool expired = now + pass_time_ > next.control.deadline;
      const bool cancelled =
          !expired && next.control.cancelled && next.control.cancelled();
      if (!expired && !cancelled && !batch.empty() && rows + n > limit) break;
      queued_inputs_ -= n;
      if (expired || cancelled) {
        dropped.emplace_back(std::move(next), AbandonedLocked(expired));
      } else {
        rows += n;
        batch.push_back(std::move(next));
      }
      queue_.pop_front();
    }
    const absl::Duration gap = policy_.typical_gap();
    taken.lone = batch.size() == 1 && queue_.empty() && gap > absl::ZeroDuration() &&
                 gap >= pass_time_;
    if (!batch.empty()) {
      ++stats_.batches;
      stats_.inputs += rows;
      stats_.largest_batch = std::max(stats_.largest_batch, rows);
    }
  }
  for (auto& [task, why] : dropped) Answer(task, why);
  return taken;
}

void Batcher::Run() {
  NameThisThread("hw-batch");
  c10::InferenceMode inference;
  while (true) {
    Taken taken = NextBatch();
    if (taken.tasks.empty()) {
      absl::MutexLock lock(&mu_);
      if (stopping_ && queue_.empty()) return;
      continue;
    }
    RunBatch(taken);
  }
}

void Batcher::RunBatch(Taken& taken) {
  std::vector<BatchTask>& batch = taken.tasks;
  // Whatever escapes the forward pass, the stages or the answers fails the tasks of
  // this batch not answered yet, and the worker goes on.
  size_t answered = 0;
  try {
    std::optional<CpuPassScope> threads;
    if (options_.lone_pass_threads > 0) {
      threads.emplace(taken.lone ? options_.lone_pass_threads : 1);
    }
    std::vector<at::Tensor> inputs;
    for (const BatchTask& task : batch) inputs.push_back(task.inputs);
    BatchRecord record;
    const absl::Time taken_at = absl::Now();
    for (const BatchTask& task : batch) {
      record.inputs += task.inputs.size(0);
      record.queue_times.push_back(taken_at - task.enqueued);
    }
    absl::StatusOr<at::Tensor> features =
        CallTorch("batching inputs", absl::StatusCode::kInternal,
                  [&] { return inputs.size() == 1 ? inputs[0] : at::cat(inputs); });
    if (features.ok()) features = forward_(*features);
    record.forward_time = absl::Now() - taken_at;
    if (features.ok()) NotePass(record.forward_time, record.inputs);
    if (options_.on_batch) options_.on_batch(record);
    std::vector<absl::StatusOr<at::Tensor>> outputs = TaskOutputs(batch, features);
    for (; answered < batch.size(); ++answered) {
      Answer(batch[answered], std::move(outputs[answered]));
    }
  } catch (...) {
    const absl::Status failed = StatusFromException(
        "running a batch", absl::StatusCode::kInternal, std::current_exception());
    for (; answered < batch.size(); ++answered) Answer(batch[answered], failed);
  }
}

void Batcher::NotePass(absl::Duration pass, int64_t inputs) {
  absl::MutexLock lock(&mu_);
  // Exponential moving averages: recent passes count most, one slow pass little.
  const bool first = pass_time_ == absl::ZeroDuration();
  pass_time_ = first ? pass : (pass_time_ * 7 + pass) / 8;
  pass_inputs_ = first ? inputs : (pass_inputs_ * 7 + inputs) / 8;
  pass_time_ns_.store(absl::ToInt64Nanoseconds(pass_time_));
  pass_milli_inputs_.store(std::llround(pass_inputs_ * 1000));
}

absl::Duration Batcher::pass_time() const {
  return absl::Nanoseconds(pass_time_ns_.load());
}

double Batcher::pass_inputs() const { return pass_milli_inputs_.load() / 1000.0; }

void Batcher::Answer(BatchTask& task, absl::StatusOr<at::Tensor> result) {
  try {
    task.done(std::move(result));
  } catch (...) {
    // The task's own answer failed: nothing is left to tell it, and the worker must
    // live on for the other tasks.
    absl::MutexLock lock(&mu_);
    ++stats_.failed_answers;
  }
}

}  // namespace headway
