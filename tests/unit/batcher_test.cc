#include "model_store/batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <atomic>
#include <new>
#include <stdexcept>
#include <thread>

#include "absl/synchronization/notification.h"

namespace headway {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// A forward pass that records each batch's size and can be held shut.
class RecordingForward {
 public:
  absl::StatusOr<at::Tensor> operator()(const at::Tensor& batch) {
    if (gate_ != nullptr) gate_->WaitForNotification();
    absl::MutexLock lock(&mu_);
    sizes_.push_back(batch.size(0));
    return batch.flatten(1).sum(1, /*keepdim=*/true);
  }
  std::vector<int64_t> sizes() {
    absl::MutexLock lock(&mu_);
    return sizes_;
  }
  absl::Notification* gate_ = nullptr;

 private:
  absl::Mutex mu_;
  std::vector<int64_t> sizes_;
};

struct Outcome {
  absl::Notification done;
  absl::StatusOr<at::Tensor> result = absl::UnknownError("not answered");
};

BatchTask Task(float value, int rows, Outcome* outcome, RequestControl control = {}) {
  BatchTask task;
  task.inputs = torch::full({rows, 1, 2, 2}, value);
  task.control = std::move(control);
  task.done = [outcome](absl::StatusOr<at::Tensor> result) {
    outcome->result = std::move(result);
    outcome->done.Notify();
  };
  return task;
}

// Batches of up to `size` inputs that wait an hour to fill: what a test sees run
// early, the policy ran early.
Batcher::Options BatchesOf(int size) {
  Batcher::Options options;
  options.max_batch_size = size;
  options.max_queue_delay = absl::Hours(1);
  return options;
}

// Holds the batcher's one worker in a forward pass of `blocker`'s single input, so
// that what is enqueued next waits in the queue until `gate` opens.
void OccupyTheWorker(Batcher& batcher, Outcome* blocker) {
  ASSERT_TRUE(batcher.Enqueue(Task(0, 1, blocker)).ok());
  while (batcher.queue_size() > 0) absl::SleepFor(absl::Milliseconds(1));  // taken
}

TEST(BatcherTest, WhatQueuedWhileTheWorkerWasBusyRunsAsOnePassAndEachTaskGetsItsRows) {
  RecordingForward forward;
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher batcher(BatchesOf(3), [&](const at::Tensor& b) { return forward(b); });
  Outcome blocker, a, b;
  OccupyTheWorker(batcher, &blocker);
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &a)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(2, 2, &b)).ok());
  gate.Notify();
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 3));
  ASSERT_TRUE(a.result.ok() && b.result.ok());
  EXPECT_EQ(a.result->size(0), 1);
  EXPECT_EQ((*a.result)[0][0].item<float>(), 4.0f);  // four pixels of 1
  EXPECT_EQ(b.result->size(0), 2);
  EXPECT_EQ((*b.result)[1][0].item<float>(), 8.0f);
}

TEST(BatcherTest, ALoneRequestRunsAtOnceInsteadOfWaitingForTheDelay) {
  // Batches of 16 with an hour's delay: nothing else arrives, so waiting would cost
  // the hour. The policy (BatchPolicy) runs it at once; this test would time out.
  RecordingForward forward;
  Batcher batcher(BatchesOf(16), [&](const at::Tensor& b) { return forward(b); });
  for (int i = 0; i < 3; ++i) {
    Outcome lone;
    ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &lone)).ok());
    lone.done.WaitForNotification();
    EXPECT_TRUE(lone.result.ok()) << lone.result.status();
  }
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 1, 1));
}

TEST(BatcherTest, ShedNewestRefusesTheLastQueuedAndKeepsTheOldest) {
  RecordingForward forward;
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher batcher(BatchesOf(8), [&](const at::Tensor& b) { return forward(b); });
  Outcome blocker, queued[4];
  OccupyTheWorker(batcher, &blocker);
  for (Outcome& outcome : queued) ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &outcome)).ok());
  // Keep two inputs' worth: the two newest are refused at once, with the reason.
  EXPECT_EQ(batcher.ShedNewest(2, "shed for the test"), 2);
  for (int i : {2, 3}) {
    ASSERT_TRUE(queued[i].done.HasBeenNotified());
    EXPECT_EQ(queued[i].result.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(queued[i].result.status().message(), "shed for the test");
  }
  EXPECT_EQ(batcher.queue_size(), 2);
  EXPECT_EQ(batcher.stats().shed, 2);
  EXPECT_EQ(batcher.ShedNewest(2, "again"), 0);
  gate.Notify();
  for (int i : {0, 1}) {
    queued[i].done.WaitForNotification();
    EXPECT_TRUE(queued[i].result.ok()) << queued[i].result.status();
  }
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 2));
}

TEST(BatcherTest, FullQueueRefusesAtOnce) {
  RecordingForward forward;
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher::Options options;
  options.max_queue_size = 2;
  Batcher batcher(options, [&](const at::Tensor& b) { return forward(b); });
  Outcome running, queued1, queued2, refused;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &running)).ok());
  while (batcher.queue_size() > 0) absl::SleepFor(absl::Milliseconds(1));  // taken
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &queued1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &queued2)).ok());
  const absl::Status full = batcher.Enqueue(Task(1, 1, &refused));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.message()), ::testing::HasSubstr("max_queue_size"));
  gate.Notify();
  queued2.done.WaitForNotification();
  EXPECT_TRUE(queued1.result.ok() && queued2.result.ok());
  EXPECT_FALSE(refused.done.HasBeenNotified());
  EXPECT_EQ(batcher.stats().refused, 1);
}

TEST(BatcherTest, ExpiredAndCancelledRequestsAreDroppedBeforeTheyRun) {
  RecordingForward forward;
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher batcher({}, [&](const at::Tensor& b) { return forward(b); });
  Outcome running, expiring, cancelled, kept;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &running)).ok());
  while (batcher.queue_size() > 0) absl::SleepFor(absl::Milliseconds(1));
  RequestControl short_deadline;
  short_deadline.deadline = absl::Now() + absl::Milliseconds(20);
  ASSERT_TRUE(batcher.Enqueue(Task(5, 5, &expiring, short_deadline)).ok());
  std::atomic<bool> client_gone{false};
  RequestControl cancellable;
  cancellable.cancelled = [&] { return client_gone.load(); };
  ASSERT_TRUE(batcher.Enqueue(Task(7, 7, &cancelled, cancellable)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(1, 2, &kept)).ok());
  absl::SleepFor(absl::Milliseconds(50));
  client_gone = true;
  gate.Notify();
  kept.done.WaitForNotification();
  expiring.done.WaitForNotification();
  cancelled.done.WaitForNotification();
  EXPECT_EQ(expiring.result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cancelled.result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(kept.result.ok());
  // Never computed: only the 1-row and 2-row tasks reached a forward pass.
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 2));
  EXPECT_EQ(batcher.stats().expired, 1);
  EXPECT_EQ(batcher.stats().cancelled, 1);

  Outcome late;
  RequestControl past;
  past.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(batcher.Enqueue(Task(1, 1, &late, past)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

// A stage that counts its calls and the rows of each, and multiplies by `factor`.
struct CountingStage {
  explicit CountingStage(float factor) : factor(factor) {}
  BatchStage Make() {
    return [this](const at::Tensor& rows) -> absl::StatusOr<at::Tensor> {
      absl::MutexLock lock(&mu);
      call_rows.push_back(rows.size(0));
      return rows * factor;
    };
  }
  std::vector<int64_t> calls() {
    absl::MutexLock lock(&mu);
    return call_rows;
  }
  const float factor;
  absl::Mutex mu;
  std::vector<int64_t> call_rows;
};

BatchTask StagedTask(float value, int rows, Outcome* outcome, CountingStage* stage) {
  BatchTask task = Task(value, rows, outcome);
  task.stage_key = stage;
  task.stage = stage->Make();
  return task;
}

TEST(BatcherTest, TasksSharingAStageShareOneCallOfItAndEachGetsItsRows) {
  RecordingForward forward;
  Batcher::Options options;
  options.max_batch_size = 6;
  options.max_queue_delay = absl::Hours(1);
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher batcher(options, [&](const at::Tensor& b) { return forward(b); });
  CountingStage tens(10), hundreds(100);
  Outcome blocker, a, b, c, d, plain;
  OccupyTheWorker(batcher, &blocker);
  // Interleaved: a, c share `tens`; b, d share `hundreds`; `plain` has no stage.
  ASSERT_TRUE(batcher.Enqueue(StagedTask(1, 1, &a, &tens)).ok());
  ASSERT_TRUE(batcher.Enqueue(StagedTask(2, 2, &b, &hundreds)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(3, 1, &plain)).ok());
  ASSERT_TRUE(batcher.Enqueue(StagedTask(4, 1, &c, &tens)).ok());
  ASSERT_TRUE(batcher.Enqueue(StagedTask(5, 1, &d, &hundreds)).ok());
  gate.Notify();
  for (Outcome* o : {&a, &b, &c, &d, &plain}) o->done.WaitForNotification();
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 6));
  EXPECT_THAT(tens.calls(), ElementsAre(2));      // a's row and c's, together
  EXPECT_THAT(hundreds.calls(), ElementsAre(3));  // b's two rows and d's
  for (Outcome* o : {&a, &b, &c, &d, &plain}) ASSERT_TRUE(o->result.ok());
  // Four pixels each: the forward pass sums them, the stage multiplies.
  EXPECT_EQ(a.result->size(0), 1);
  EXPECT_EQ((*a.result)[0][0].item<float>(), 4 * 1 * 10.0f);
  EXPECT_EQ(b.result->size(0), 2);
  EXPECT_EQ((*b.result)[1][0].item<float>(), 4 * 2 * 100.0f);
  EXPECT_EQ((*c.result)[0][0].item<float>(), 4 * 4 * 10.0f);
  EXPECT_EQ((*d.result)[0][0].item<float>(), 4 * 5 * 100.0f);
  EXPECT_EQ((*plain.result)[0][0].item<float>(), 4 * 3.0f);
}

TEST(BatcherTest, StageErrorsReachTheTasksSharingItOnly) {
  Batcher::Options options;
  options.max_batch_size = 2;
  options.max_queue_delay = absl::Hours(1);
  RecordingForward forward;
  Batcher batcher(options, [&](const at::Tensor& b) { return forward(b); });
  Outcome failing, plain;
  BatchTask task = Task(1, 1, &failing);
  task.stage_key = &failing;
  task.stage = [](const at::Tensor&) -> absl::StatusOr<at::Tensor> {
    return absl::InternalError("head failed");
  };
  ASSERT_TRUE(batcher.Enqueue(std::move(task)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(2, 1, &plain)).ok());
  failing.done.WaitForNotification();
  plain.done.WaitForNotification();
  EXPECT_EQ(failing.result.status().message(), "head failed");
  ASSERT_TRUE(plain.result.ok()) << plain.result.status();
  EXPECT_EQ((*plain.result)[0][0].item<float>(), 8.0f);
}

TEST(BatcherTest, ForwardErrorsReachEveryTaskOfTheBatch) {
  Batcher batcher(BatchesOf(2), [](const at::Tensor&) -> absl::StatusOr<at::Tensor> {
    return absl::InternalError("boom");
  });
  Outcome a, b;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &a)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &b)).ok());
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  EXPECT_EQ(a.result.status().message(), "boom");
  EXPECT_EQ(b.result.status().message(), "boom");
}

TEST(BatcherTest, WhatAPassThrowsFailsItsBatchAndTheWorkerRunsTheNext) {
  // The forward pass throws outside any error edge: a plain exception, then memory
  // that runs out. The one worker must answer those batches and serve the next.
  std::atomic<int> calls{0};
  Batcher batcher(Batcher::Options(), [&](const at::Tensor& batch) {
    switch (calls++) {
      case 0:
        throw std::runtime_error("a module bug");
      case 1:
        throw std::bad_alloc();
      default:
        return absl::StatusOr<at::Tensor>(batch.flatten(1).sum(1, true));
    }
  });
  Outcome failed, exhausted, served;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &failed)).ok());
  failed.done.WaitForNotification();
  EXPECT_EQ(failed.result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(failed.result.status().message(), ::testing::HasSubstr("a module bug"));
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &exhausted)).ok());
  exhausted.done.WaitForNotification();
  EXPECT_EQ(exhausted.result.status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(batcher.Enqueue(Task(2, 1, &served)).ok());
  served.done.WaitForNotification();
  ASSERT_TRUE(served.result.ok()) << served.result.status();
  EXPECT_EQ((*served.result)[0][0].item<float>(), 8.0f);
}

TEST(BatcherTest, AnAnswerThatThrowsIsCountedAndTheOthersAreAnswered) {
  RecordingForward forward;
  Batcher batcher(BatchesOf(2), [&](const at::Tensor& b) { return forward(b); });
  BatchTask throwing = Task(1, 1, nullptr);
  throwing.done = [](absl::StatusOr<at::Tensor>) { throw std::runtime_error("answer"); };
  Outcome after;
  ASSERT_TRUE(batcher.Enqueue(std::move(throwing)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(2, 1, &after)).ok());
  after.done.WaitForNotification();
  EXPECT_TRUE(after.result.ok()) << after.result.status();
  EXPECT_EQ(batcher.stats().failed_answers, 1);
}

TEST(BatcherTest, ARequestTheQueueAheadWouldAnswerLateIsRefusedAtOnce) {
  // Each pass takes 100 ms, one input at a time. After one pass the batcher knows it:
  // behind three queued inputs, a request with 250 ms left cannot be answered in time.
  Batcher batcher(Batcher::Options(), [](const at::Tensor& batch) {
    absl::SleepFor(absl::Milliseconds(100));
    return absl::StatusOr<at::Tensor>(batch.flatten(1).sum(1, true));
  });
  Outcome first;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &first)).ok());
  first.done.WaitForNotification();
  std::vector<Outcome> ahead(3);
  for (Outcome& outcome : ahead) ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &outcome)).ok());
  RequestControl hurried;
  hurried.deadline = absl::Now() + absl::Milliseconds(250);
  Outcome late;
  const absl::Status refused = batcher.Enqueue(Task(1, 1, &late, hurried));
  EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("cannot be met"));
  EXPECT_EQ(batcher.stats().refused_late, 1);
  RequestControl patient;
  patient.deadline = absl::Now() + absl::Seconds(30);
  Outcome served;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &served, patient)).ok());
  served.done.WaitForNotification();
  EXPECT_TRUE(served.result.ok()) << served.result.status();
  for (Outcome& outcome : ahead) EXPECT_TRUE(outcome.result.ok());
}

TEST(BatcherTest, CappedPassesTakeAtMostTheCapUntilItIsLifted) {
  // Under a flood the model's admission caps passes at what fits its latency budget,
  // however large a batch the model may run otherwise.
  RecordingForward forward;
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher batcher(BatchesOf(8), [&](const at::Tensor& b) { return forward(b); });
  Outcome blocker, capped[3];
  OccupyTheWorker(batcher, &blocker);
  batcher.CapBatches(1);
  for (Outcome& outcome : capped) ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &outcome)).ok());
  gate.Notify();
  for (Outcome& outcome : capped) {
    outcome.done.WaitForNotification();
    EXPECT_TRUE(outcome.result.ok()) << outcome.result.status();
  }
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 1, 1, 1));

  // Lifted: what queues behind a busy worker runs as one pass again.
  absl::Notification second_gate;
  forward.gate_ = &second_gate;
  batcher.CapBatches(0);
  Outcome second_blocker, together[3];
  OccupyTheWorker(batcher, &second_blocker);
  for (Outcome& outcome : together) {
    ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &outcome)).ok());
  }
  second_gate.Notify();
  for (Outcome& outcome : together) outcome.done.WaitForNotification();
  EXPECT_THAT(forward.sizes(), ElementsAre(1, 1, 1, 1, 1, 3));
}

TEST(BatcherTest, TheDeadlineCheckCountsTheInputsRecentPassesHeldNotTheBatchSize) {
  // Passes of up to 8 inputs whose time grows with their inputs (a large model on a
  // CPU: 60 ms an input). The pass so far held one input, so behind a busy worker
  // three queued inputs and a fourth take about four passes of one, not one pass of
  // the batch size: a request with 150 ms left is refused at once.
  absl::Notification first_gate, second_gate;
  std::atomic<absl::Notification*> gate{&first_gate};
  Batcher batcher(BatchesOf(8), [&gate](const at::Tensor& batch) {
    gate.load()->WaitForNotification();
    absl::SleepFor(absl::Milliseconds(60) * batch.size(0));
    return absl::StatusOr<at::Tensor>(batch.flatten(1).sum(1, true));
  });
  first_gate.Notify();
  Outcome first;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &first)).ok());
  first.done.WaitForNotification();
  EXPECT_DOUBLE_EQ(batcher.pass_inputs(), 1);
  EXPECT_GE(batcher.pass_time(), absl::Milliseconds(60));

  gate = &second_gate;
  Outcome blocker;
  OccupyTheWorker(batcher, &blocker);
  std::vector<Outcome> ahead(3);
  for (Outcome& outcome : ahead) ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &outcome)).ok());
  RequestControl hurried;
  hurried.deadline = absl::Now() + absl::Milliseconds(150);
  Outcome late;
  const absl::Status refused = batcher.Enqueue(Task(1, 1, &late, hurried));
  EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded) << refused;
  second_gate.Notify();
  for (Outcome& outcome : ahead) {
    outcome.done.WaitForNotification();
    EXPECT_TRUE(outcome.result.ok()) << outcome.result.status();
  }
  // The three ran together: the average moves toward passes of three.
  EXPECT_GT(batcher.pass_inputs(), 1);
}

TEST(BatcherTest, AFullQueueMakesRoomByAnsweringExpiredRequests) {
  // The queue holds two requests behind a busy worker; their deadlines pass. A third
  // request still gets in, and the two are answered at once.
  RecordingForward forward;
  absl::Notification gate;
  forward.gate_ = &gate;
  Batcher::Options options;
  options.max_batch_size = 16;
  options.max_queue_delay = absl::Hours(1);
  options.max_queue_size = 2;
  Batcher batcher(options, [&](const at::Tensor& b) { return forward(b); });
  Outcome blocker;
  OccupyTheWorker(batcher, &blocker);
  RequestControl hurried;
  hurried.deadline = absl::Now() + absl::Milliseconds(50);
  Outcome first, second, third;
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &first, hurried)).ok());
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &second, hurried)).ok());
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(batcher.Enqueue(Task(1, 1, &third)).ok());
  ASSERT_TRUE(first.done.HasBeenNotified() && second.done.HasBeenNotified());
  EXPECT_EQ(first.result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(batcher.queue_size(), 1);
  EXPECT_EQ(batcher.stats().expired, 2);
  EXPECT_EQ(batcher.DropAbandoned(), 0);
  gate.Notify();
  third.done.WaitForNotification();
  EXPECT_TRUE(third.result.ok()) << third.result.status();
}

}  // namespace
}  // namespace headway
