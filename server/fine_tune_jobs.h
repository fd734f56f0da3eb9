// FineTuneJobs: the fine-tuning jobs of one server (StartFineTune, GetJob, WatchJob,
// CancelJob, ListJobs). A started job is checked at once (CheckFineTuneJob), queued,
// and run by one background thread at `niceness`, one job at a time, with its own
// intra-op threads (`threads_per_job`), so serving keeps the other CPUs and wins the
// ones it shares. A running job's progress is
// its v1::Job, updated after each step (at most every 200 ms for watchers) and each
// epoch. A job that succeeds has written a new model folder into the store
// (fine_tune_job.h) and, when asked, is loaded through `serve`. Jobs live in memory:
// a restart loses them (and never leaves a partial folder under a served name).
// The last `max_finished` finished jobs are kept for GetJob and ListJobs.
//
// Thread-safe. Watch callbacks run under the jobs' lock: they must not call back into
// FineTuneJobs and must not block.
#ifndef HEADWAY_SERVER_FINE_TUNE_JOBS_H_
#define HEADWAY_SERVER_FINE_TUNE_JOBS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "headway/v1/management.pb.h"
#include "model_store/input.h"
#include "server/worker_pool.h"

namespace headway {

class FineTuneJobs {
 public:
  struct Options {
    std::filesystem::path model_store;
    int threads_per_job = 1;
    // Of the thread running the jobs (0-19), as WorkerPool's.
    int niceness = 0;
    int64_t max_examples = 20000;
    InputLimits limits;
    int max_finished = 100;
    // Loads a new model into the server; called on the jobs' thread for a job that
    // asked to serve its result.
    std::function<absl::Status(const std::string& model)> serve;
    // Told of each job that ends (logs, metrics).
    std::function<void(const v1::Job& job)> on_finished;
    // Told of the running job's progress after each step (under the jobs' lock).
    std::function<void(const v1::Job& job)> on_progress;
  };

  explicit FineTuneJobs(Options options);
  // Cancels the running job and waits for it; queued jobs end CANCELLED.
  ~FineTuneJobs();
  FineTuneJobs(const FineTuneJobs&) = delete;
  FineTuneJobs& operator=(const FineTuneJobs&) = delete;

  // Checks and queues a job; errors as CheckFineTuneJob's, with nothing queued.
  absl::StatusOr<v1::Job> Start(const v1::StartFineTuneRequest& request);
  // NOT_FOUND for an unknown id.
  absl::StatusOr<v1::Job> Get(absl::string_view id) const;
  std::vector<v1::Job> List() const;  // newest first
  // Stops a queued or running job (a finished one is returned as it is); NOT_FOUND
  // for an unknown id.
  absl::StatusOr<v1::Job> Cancel(absl::string_view id);

  // Calls `on_change` with the job now, then after each change until it ends (the
  // last call carries the final state) or until Unwatch. Returns a token for Unwatch;
  // NOT_FOUND for an unknown id.
  using WatchCallback = std::function<void(const v1::Job& job)>;
  absl::StatusOr<int64_t> Watch(absl::string_view id, WatchCallback on_change);
  void Unwatch(absl::string_view id, int64_t token);

 private:
  struct Entry;

  // Runs a job unless it was cancelled while queued.
  void Run(const std::shared_ptr<Entry>& entry);
  // Publishes entry.job to its watchers; steps at most every 200 ms.
  void Publish(Entry& entry, bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NextId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> finished_ ABSL_GUARDED_BY(mu_);  // oldest first
  int64_t next_number_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  // Last: its destructor runs what is queued (each cancelled, so at once) before the
  // members above go.
  WorkerPool runner_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_FINE_TUNE_JOBS_H_
