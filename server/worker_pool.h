// WorkerPool: a fixed set of threads running tasks in FIFO order. gRPC's callback
// threads hand inference here so they never block on a model.
//
// A task that throws is logged (event=worker_task_failed) and the thread goes on;
// tasks answer their own callers before anything can escape them.
//
// Thread-safe. The destructor runs every queued task, then joins the threads.
#ifndef HEADWAY_SERVER_WORKER_POOL_H_
#define HEADWAY_SERVER_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace headway {

class WorkerPool {
 public:
  // `niceness` (0-19) lowers the threads' scheduling priority below the process's, so
  // that background work (loads, swaps) yields the CPUs to inference. `setup`, when
  // set, runs first on each thread (e.g. its LibTorch intra-op threads).
  explicit WorkerPool(int threads, int niceness = 0,
                      std::function<void()> setup = nullptr);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Schedule(std::function<void()> task);

 private:
  void Run(int niceness, const std::function<void()>& setup);
  bool HasTaskOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_WORKER_POOL_H_
