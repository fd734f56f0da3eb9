// FloodMemory: gives the memory a flood of calls brought in back to the kernel once
// the flood is over.
//
// During an overload the calls that gRPC holds before any handler sees them take
// hundreds of MB; when they drain, glibc keeps the freed memory mapped (up to
// --malloc_retain_mb per heap, which keeps tensor memory for the next passes). A
// flood is what the server refused for overload (RESOURCE_EXHAUSTED); once none has
// been refused for `settle`, the memory is returned once (`trim`: malloc_trim, every
// free page). A steady load that refuses nothing never trims, so its passes keep their
// memory.
//
// FloodTrimPolicy is the decision alone, fed the refusal count and the time, so tests
// can script it; FloodMemory runs it on a thread of its own every `poll`.
//
// Thread safety: FloodTrimPolicy is not thread-safe (one caller). FloodMemory's
// constructor starts its thread and its destructor stops it; `refusals` and `trim` run
// on that thread.
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
  explicit FloodTrimPolicy(absl::Duration settle) : settle_(settle) {}

  // `refusals`: the count of calls refused for overload so far (never decreasing).
  // True when the memory should be returned now: refusals grew since the last trim,
  // and have not grown for `settle`.
  bool Observe(int64_t refusals, absl::Time now);

 private:
  absl::Duration settle_;
  bool started_ = false;
  int64_t last_refusals_ = 0;
  absl::Time last_growth_;
  bool flooded_ = false;
};

class FloodMemory {
 public:
  struct Options {
    std::function<int64_t()> refusals;
    std::function<void()> trim;
    absl::Duration settle = absl::Seconds(1);
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
