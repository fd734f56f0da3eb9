#include "model_store/store_watch.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <system_error>
#include <utility>

#include "absl/time/clock.h"

namespace headway {
namespace {

// What changes the store: files written, renamed in or out, removed, created.
constexpr uint32_t kWatched = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                              IN_DELETE | IN_DELETE_SELF | IN_ATTRIB;

}  // namespace

std::unique_ptr<StoreWatch> StoreWatch::Create(const std::filesystem::path& store) {
  const int inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify < 0) return nullptr;
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    close(inotify);
    return nullptr;
  }
  std::unique_ptr<StoreWatch> watch(new StoreWatch(store, inotify, wake));
  watch->WatchFolders();
  return watch;
}

StoreWatch::StoreWatch(std::filesystem::path store, int inotify, int wake)
    : store_(std::move(store)), inotify_(inotify), wake_(wake) {}

StoreWatch::~StoreWatch() {
  close(inotify_);
  close(wake_);
}

void StoreWatch::WatchFolders() {
  // Adding a folder watched already only renews its mask; a folder removed drops
  // its watch by itself.
  inotify_add_watch(inotify_, store_.c_str(), kWatched);
  std::error_code error;
  for (const auto& model : std::filesystem::directory_iterator(store_, error)) {
    if (!model.is_directory(error)) continue;
    inotify_add_watch(inotify_, model.path().c_str(), kWatched);
    for (const auto& inner : std::filesystem::directory_iterator(model.path(), error)) {
      if (inner.is_directory(error)) {
        inotify_add_watch(inotify_, inner.path().c_str(), kWatched);
      }
    }
  }
}

int StoreWatch::WaitOnce(absl::Duration timeout) {
  pollfd fds[2] = {{inotify_, POLLIN, 0}, {wake_, POLLIN, 0}};
  const int ms = static_cast<int>(std::max<int64_t>(
      0, absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1)))));
  const int ready = poll(fds, 2, ms);
  if (ready <= 0) return 0;  // the timeout, or a signal: the caller looks again
  if (fds[1].revents != 0) {
    uint64_t count = 0;
    (void)!read(wake_, &count, sizeof(count));
    return -1;
  }
  // The events themselves do not matter (the pass compares the store with what it
  // serves): drain them.
  alignas(inotify_event) char buffer[16 * 1024];
  while (read(inotify_, buffer, sizeof(buffer)) > 0) {
  }
  return 1;
}

bool StoreWatch::WaitForChange(absl::Duration timeout, absl::Duration settle) {
  const absl::Time until = absl::Now() + timeout;
  int seen = WaitOnce(timeout);
  if (seen <= 0) return false;
  while (true) {
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    seen = WaitOnce(std::min(settle, left));
    if (seen == 0) return true;  // settled
    if (seen < 0) return false;  // woken
  }
}

void StoreWatch::Wake() {
  const uint64_t one = 1;
  (void)!write(wake_, &one, sizeof(one));
}

}  // namespace headway
