#include "model_store/base_priority_thread.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <future>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace headway {
namespace {

// The kernel's struct sched_attr (its first version, 48 bytes), which glibc does not
// declare; the Linux header that does clashes with glibc's sched.h.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;  // for SCHED_OTHER since Linux 6.12: the time slice, in ns
  uint64_t sched_deadline;
  uint64_t sched_period;
};
static_assert(sizeof(SchedAttr) == 48, "struct sched_attr, version 0");

// The shortest slice Linux accepts for a thread of the fair class.
constexpr uint64_t kShortestSliceNs = 100'000;

int NiceOfThisThread() {
  // On Linux, PRIO_PROCESS with 0 reads the calling thread's own nice value.
  return getpriority(PRIO_PROCESS, 0);
}

// Requests for threads, served by one thread that never changes its priority. It
// lives as long as the process (detached; it only waits for requests).
class Spawner {
 public:
  void Start() {
    absl::MutexLock lock(&mu_);
    if (started_) return;
    started_ = true;
    base_nice_ = NiceOfThisThread();
    std::thread([this] { Serve(); }).detach();
  }

  std::thread Spawn(std::function<void()> body) {
    std::promise<std::thread> made;
    std::future<std::thread> thread = made.get_future();
    {
      absl::MutexLock lock(&mu_);
      if (!started_ || NiceOfThisThread() == base_nice_) {
        return std::thread(std::move(body));
      }
      requests_.push_back({std::move(body), std::move(made)});
    }
    return thread.get();
  }

 private:
  struct Request {
    std::function<void()> body;
    std::promise<std::thread> made;
  };

  bool HasRequest() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !requests_.empty();
  }

  void Serve() {
    while (true) {
      Request request;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Spawner::HasRequest));
        request = std::move(requests_.front());
        requests_.pop_front();
      }
      try {
        request.made.set_value(std::thread(std::move(request.body)));
      } catch (...) {
        request.made.set_exception(std::current_exception());
      }
    }
  }

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  int base_nice_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Request> requests_ ABSL_GUARDED_BY(mu_);
};

Spawner& TheSpawner() {
  static Spawner* const spawner = new Spawner;  // never destroyed: see Spawner
  return *spawner;
}

}  // namespace

void StartBasePriorityThreads() { TheSpawner().Start(); }

std::thread StartAtBasePriority(std::function<void()> body) {
  return TheSpawner().Spawn(std::move(body));
}

void LowerThisThreadsPriority(int niceness) {
  if (niceness <= 0) return;
  // On Linux a thread's nice value is its own (setpriority on its thread id).
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), niceness);
  SchedAttr attr{};
  attr.size = sizeof(attr);
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = niceness;
  attr.sched_runtime = kShortestSliceNs;
  // Best effort: kernels before 6.12 ignore the slice, and one that refuses the call
  // leaves the nice value set above.
  syscall(SYS_sched_setattr, 0, &attr, 0);
}

}  // namespace headway
