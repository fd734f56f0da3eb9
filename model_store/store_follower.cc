#include "model_store/store_follower.h"

#include <algorithm>
#include <atomic>
#include <set>

#include "model_store/base_priority_thread.h"
#include "model_store/thread_name.h"

namespace headway {

StoreFollower::StoreFollower(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

StoreFollower::~StoreFollower() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->Wake();
  }
  thread_.join();
}

void StoreFollower::WaitStarted() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &StoreFollower::StoppingOrStarted));
}

bool StoreFollower::WaitStartedFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &StoreFollower::StoppingOrStarted), timeout);
  return started_;
}

void StoreFollower::SyncNow() {
  absl::MutexLock lock(&mu_);
  sync_requested_ = true;
  if (watch_ != nullptr) watch_->Wake();
}

bool StoreFollower::TakeSyncRequest() {
  absl::MutexLock lock(&mu_);
  const bool requested = sync_requested_;
  sync_requested_ = false;
  return requested;
}

bool StoreFollower::Stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void StoreFollower::Pass() {
  std::set<std::string> names;
  for (const std::string& name : options_.registry->StoreModels()) names.insert(name);
  for (const ModelRecord& record : options_.registry->Records()) {
    names.insert(record.name);
  }
  const std::vector<std::string> order(names.begin(), names.end());
  std::atomic<size_t> next{0};
  auto sync_some = [&] {
    NameThisThread("hw-follow");
    LowerThisThreadsPriority(options_.niceness);
    for (size_t i = next++; i < order.size() && !Stopping(); i = next++) {
      const StoreSync sync = options_.registry->SyncFromStore(order[i]);
      if (sync.action != StoreSync::Action::kNone && options_.on_sync) {
        options_.on_sync(sync);
      }
    }
  };
  const size_t threads =
      std::min(order.size(), static_cast<size_t>(std::max(1, options_.parallel_loads)));
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < threads; ++i) helpers.emplace_back(sync_some);
  sync_some();
  for (std::thread& helper : helpers) helper.join();
}

void StoreFollower::Run() {
  NameThisThread("hw-follow");
  options_.registry->MarkLoading(options_.registry->StoreModels());
  Pass();
  if (options_.on_started) options_.on_started();
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
  }
  if (options_.poll_interval <= absl::ZeroDuration()) return;
  const std::unique_ptr<StoreWatch> watch =
      options_.watch ? StoreWatch::Create(options_.registry->model_store()) : nullptr;
  {
    absl::MutexLock lock(&mu_);
    watch_ = watch.get();
  }
  while (true) {
    // A SyncNow that came before this wait (during the first pass) skips it.
    if (TakeSyncRequest()) {
      if (Stopping()) break;
    } else if (watch != nullptr) {
      if (Stopping()) break;
      // Woken (shutdown, SyncNow), timed out or changed: each way, a pass unless
      // stopping.
      watch->WaitForChange(options_.poll_interval, options_.settle);
      if (Stopping()) break;
    } else {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &StoreFollower::StoppingOrSyncRequested),
                           options_.poll_interval);
      if (stopping_) break;
    }
    TakeSyncRequest();
    Pass();
    if (watch != nullptr) watch->WatchFolders();
  }
  absl::MutexLock lock(&mu_);
  watch_ = nullptr;
}

}  // namespace headway
