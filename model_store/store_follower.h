// StoreFollower: keeps a registry in line with its model store. At start it brings in
// every model of the store, up to `parallel_loads` at a time, each serving as soon as
// it is warm; then, every `poll_interval`, it looks for models added to or removed from
// the store and for changed entries (config.pbtxt, persisted heads, the files they
// name) and applies them through ModelRegistry::SyncFromStore, which loads and warms
// everything to the side and refuses what does not load. Each replica of a fleet runs
// one over the shared store, so a change written by any of them (or by hand) reaches
// all of them. Between polls it watches the store (StoreWatch, inotify): a change made
// on this host is applied within a moment; one made through another host's mount of a
// network file system waits for the next poll.
//
// Runs on its own threads, never on those serving inference. Thread-safe; the registry
// must outlive it. The destructor stops it as soon as the syncs in progress (a load
// cannot be cut short) are done; the models not reached yet are left alone.
#ifndef HEADWAY_MODEL_STORE_STORE_FOLLOWER_H_
#define HEADWAY_MODEL_STORE_STORE_FOLLOWER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model_store/model_registry.h"
#include "model_store/store_watch.h"

namespace headway {

class StoreFollower {
 public:
  struct Options {
    ModelRegistry* registry = nullptr;
    // Between two looks at the store; zero loads the store once and stops following.
    absl::Duration poll_interval = absl::Seconds(5);
    // Models loaded at the same time.
    int parallel_loads = 2;
    // Told about every sync that did something (loaded, changed, removed, refused), on
    // a follower thread.
    std::function<void(const StoreSync&)> on_sync;
    // Called once, when every model the store held at start is serving or refused.
    std::function<void()> on_started;
    // Nice value (0-19) of the follower's threads, so that its loads yield the CPUs
    // to inference.
    int niceness = 0;
    // Between polls, watch the store with inotify (StoreWatch) and pass as soon as
    // it changes (after `settle` without a further change).
    bool watch = true;
    absl::Duration settle = absl::Milliseconds(200);
  };

  explicit StoreFollower(Options options);
  ~StoreFollower();
  StoreFollower(const StoreFollower&) = delete;
  StoreFollower& operator=(const StoreFollower&) = delete;

  // Blocks until the first pass is done (on_started has run).
  void WaitStarted();
  // As WaitStarted, for at most `timeout`; true when the first pass is done.
  bool WaitStartedFor(absl::Duration timeout);
  // Looks at the store at once instead of at the next poll (an operator's SIGHUP);
  // during the first pass, right after it. Nothing when not following
  // (poll_interval zero).
  void SyncNow() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  // Syncs every model of the store and every model the registry knows.
  void Pass();
  bool StoppingOrStarted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || started_;
  }
  bool Stopping() const;

  const Options options_;
  mutable absl::Mutex mu_;
  // Takes (clears) a pending SyncNow; true when there was one.
  bool TakeSyncRequest() ABSL_LOCKS_EXCLUDED(mu_);
  bool StoppingOrSyncRequested() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || sync_requested_;
  }

  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool sync_requested_ ABSL_GUARDED_BY(mu_) = false;
  StoreWatch* watch_ ABSL_GUARDED_BY(mu_) = nullptr;  // while Run's watch lives
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_FOLLOWER_H_
