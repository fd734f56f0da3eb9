// FloodMemory: gives the memory a flood of calls brought in back to the kernel once
// the flood is over.
//
// During an overload the calls that gRPC holds before any handler sees them take
// hundreds of MB; when they drain, glibc keeps the freed memory mapped (up to
// --malloc_retain_mb per heap, which keeps tensor memory for the next passes). A
// flood is what the server refused for overload (RESOURCE_EXHAUSTED); once none has
// been refused for `settle`, and resident memory is more than `growth` above what it
// was when the refusals began, the memory is returned once (`trim`: malloc_trim,
// every free page). A steady load that refuses nothing never trims, nor does a burst
// of refusals that brought no memory in, so passes keep their retained memory.
//
// FloodTrimPolicy is the decision alone, fed the refusal count, the resident memory
// and the time, so tests can script it; FloodMemory runs it on a thread of its own every
// `poll`.
//
// Thread safety: FloodTrimPolicy is not thread-safe (one caller). FloodMemory's
// constructor starts its thread and its destructor stops it; `refusals` and `trim` run
// on that thread, as does `resident_bytes`.
#ifndef HEADWAY_SERVER_FLOOD_MEMORY_H_
#define HEADWAY_SERVER_FLOOD_MEMORY_H_

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace headway {

class FloodTrimPolicy {
 public:
  FloodTrimPolicy(absl::Duration settle, int64_t growth_bytes)
      : settle_(settle), growth_bytes_(growth_bytes) {}

  // `refusals`: the count of calls refused for overload so far (never decreasing);
  // `resident_bytes`: the process's resident memory now. True when the memory should
  // be returned now: refusals began growing (a flood) since the last look that ended
  // one, have not grown for `settle`, and resident memory is more than the growth
  // above its figure at the last quiet look before they began.
  bool Observe(int64_t refusals, int64_t resident_bytes, absl::Time now);

 private:
  absl::Duration settle_;
  int64_t growth_bytes_;
  bool started_ = false;
  int64_t last_refusals_ = 0;
  int64_t resident_before_flood_ = 0;
  absl::Time last_growth_;
  bool flooded_ = false;
};

class FloodMemory {
 public:
  struct Options {
    std::function<int64_t()> refusals;
    std::function<int64_t()> resident_bytes;
    std::function<void()> trim;
    absl::Duration settle = absl::Seconds(1);
    int64_t growth_bytes = int64_t{64} << 20;
    absl::Duration poll = absl::Milliseconds(250);
  };

  explicit FloodMemory(Options options);
  ~FloodMemory();
  FloodMemory(const FloodMemory&) = delete;
  FloodMemory& operator=(const FloodMemory&) = delete;

 private:
  void Run();

  Options options_;
  absl::Notification stopping_;
  std::thread thread_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_FLOOD_MEMORY_H_
