// StoreWatch: tells the store follower that something in the model store changed,
// through inotify, so that a change made on this host (a persisted swap by a replica
// beside this one, a model folder copied in, an edited config.pbtxt) is applied within
// a moment instead of at the next poll. It watches the store's folder, each model
// folder and the folders inside those (heads/). Changes made through another host's
// mount of a shared store (NFS and most network file systems) raise no event here:
// polling still finds those, so the watch only ever brings a pass forward.
//
// Wake() is thread-safe (it ends a wait, for shutdown); the rest is for the follower's
// thread alone.
#ifndef HEADWAY_MODEL_STORE_STORE_WATCH_H_
#define HEADWAY_MODEL_STORE_STORE_WATCH_H_

#include <filesystem>
#include <memory>

#include "absl/time/time.h"

namespace headway {

class StoreWatch {
 public:
  // nullptr when inotify is not available here (the follower then only polls).
  static std::unique_ptr<StoreWatch> Create(const std::filesystem::path& store);
  ~StoreWatch();
  StoreWatch(const StoreWatch&) = delete;
  StoreWatch& operator=(const StoreWatch&) = delete;

  // Watches the store's folder and the folders two levels below it, as they are now;
  // call again after each pass, as model folders come and go.
  void WatchFolders();

  // Waits up to `timeout` for a change. Once one is seen, waits on until `settle`
  // passes without another (at most `timeout` from the first), so that a writer's
  // several files make one change. True when something changed; false at the
  // timeout or after Wake().
  bool WaitForChange(absl::Duration timeout, absl::Duration settle);

  // Ends the current or next wait at once.
  void Wake();

 private:
  StoreWatch(std::filesystem::path store, int inotify, int wake);
  // Waits up to `timeout` for an event or a wake; reads what came. 1: an event,
  // 0: the timeout, -1: woken.
  int WaitOnce(absl::Duration timeout);

  const std::filesystem::path store_;
  const int inotify_;
  const int wake_;  // an eventfd
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_WATCH_H_
