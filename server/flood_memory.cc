#include "server/flood_memory.h"

#include <utility>

#include "model_store/thread_name.h"

namespace headway {

bool FloodTrimPolicy::Observe(int64_t refusals, int64_t resident_bytes, absl::Time now) {
  if (!started_) {
    started_ = true;
    last_refusals_ = refusals;
    last_growth_ = now;
    resident_before_flood_ = resident_bytes;
    return false;
  }
  if (refusals != last_refusals_) {
    last_refusals_ = refusals;
    last_growth_ = now;
    flooded_ = true;
    return false;
  }
  if (!flooded_) {
    // Quiet: the figure a flood that starts after this look is measured against.
    resident_before_flood_ = resident_bytes;
    return false;
  }
  if (now - last_growth_ < settle_) return false;
  flooded_ = false;
  const bool grew = resident_bytes - resident_before_flood_ > growth_bytes_;
  resident_before_flood_ = resident_bytes;
  return grew;
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
  FloodTrimPolicy policy(options_.settle, options_.growth_bytes);
  do {
    if (policy.Observe(options_.refusals(), options_.resident_bytes(), absl::Now())) {
      options_.trim();
    }
  } while (!stopping_.WaitForNotificationWithTimeout(options_.poll));
}

}  // namespace headway
