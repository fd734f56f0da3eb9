#include "server/worker_pool.h"

#include <exception>
#include <utility>

#include "model_store/base_priority_thread.h"
#include "server/event_log.h"

namespace headway {

WorkerPool::WorkerPool(int threads, int niceness, std::function<void()> setup) {
  for (int i = 0; i < (threads > 0 ? threads : 1); ++i) {
    threads_.emplace_back([this, niceness, setup] { Run(niceness, setup); });
  }
}

WorkerPool::~WorkerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

void WorkerPool::Schedule(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

bool WorkerPool::HasTaskOrStopping() const { return stopping_ || !tasks_.empty(); }

void WorkerPool::Run(int niceness, const std::function<void()>& setup) {
  LowerThisThreadsPriority(niceness);
  if (setup) setup();
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasTaskOrStopping));
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      LogEvent(LogLevel::kError, "worker_task_failed", {{"message", e.what()}});
    } catch (...) {
      LogEvent(LogLevel::kError, "worker_task_failed",
               {{"message", "an exception of unknown type"}});
    }
  }
}

}  // namespace headway
