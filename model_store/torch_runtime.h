// Process-wide LibTorch settings, applied once at start-up before any model loads.
// Not thread-safe: call from main() only (the warning handler itself is thread-safe).
#ifndef HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
#define HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_

#include <cstdint>
#include <functional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace headway {

// Sets LibTorch's intra-op thread count; 0 means one per CPU this process may use
// (UsableCpus).
// (LibTorch's own default counts physical cores through cpuinfo, which on some
// virtual machines sees a single core among several and leaves the rest idle.)
void ConfigureTorchThreads(int intra_op_threads);

// LibTorch's intra-op thread count as now set.
int TorchThreads();

// Sends LibTorch's warnings (TORCH_WARN: by default a raw line on stderr each time,
// such as Resize.cpp's on every request that hits it) to `sink`, once per place in
// LibTorch's code that warns, with `repeats` counting the earlier ones left out: the
// first time, then once more after every `interval`. The handler lives for the
// process.
using TorchWarningSink = std::function<void(absl::string_view where,
                                            absl::string_view message, int64_t repeats)>;
void RouteTorchWarnings(TorchWarningSink sink,
                        absl::Duration interval = absl::Seconds(60));

// The CPUs this process may use: its affinity mask, capped by a container's CPU quota
// (cgroup cpu.max, as Kubernetes CPU limits set it), rounded up; at least 1.
int UsableCpus();

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
