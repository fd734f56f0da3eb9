#include "model_store/base_priority_thread.h"

#include <sys/resource.h>
#include <unistd.h>

#include <deque>
#include <future>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace headway {
namespace {

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

}  // namespace headway
