#include "server/flood_memory.h"

#include <utility>

#include "model_store/thread_name.h"

namespace headway {

bool FloodTrimPolicy::Observe(int64_t refusals, absl::Time now) {
  if (!started_) {
    started_ = true;
    last_refusals_ = refusals;
    last_growth_ = now;
    return false;
  }
  if (refusals != last_refusals_) {
    last_refusals_ = refusals;
    last_growth_ = now;
    flooded_ = true;
    return false;
  }
  if (flooded_ && now - last_growth_ >= settle_) {
    flooded_ = false;
    return true;
  }
  return false;
}

FloodMemory::FloodMemory(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

FloodMemory::~FloodMemory() {
  stopping_.Notify();
  thread_.join();
}

void FloodMemory::Run() {
  NameThisThread("hw-flood-memory");
  FloodTrimPolicy policy(options_.settle);
  do {
    if (policy.Observe(options_.refusals(), absl::Now())) options_.trim();
  } while (!stopping_.WaitForNotificationWithTimeout(options_.poll));
}

}  // namespace headway
