// Process-wide LibTorch settings, applied once at start-up before any model loads.
// Not thread-safe: call from main() only (the warning handler itself is thread-safe).
// CpuPassScope is thread-safe.
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

// The intra-op threads CPU passes share, as ConfigureTorchThreads set them (UsableCpus
// before it is called).
int TorchThreads();

// The intra-op threads of one forward pass on the CPU, chosen from the passes that run
// at once in this process: a pass that starts alone gets up to `most` threads (its
// model's choice, at most TorchThreads()); passes side by side split TorchThreads()
// between them, at least one each. So one request alone gets every CPU, and many
// requests get one pass per CPU, which serves the most. A pass keeps its count to its
// end: one that starts while another runs with all threads oversubscribes the CPUs
// until that one ends.
// LibTorch's OpenMP thread count is per calling thread: the scope sets it for the
// thread that runs the pass (a batcher worker), for its lifetime.
class CpuPassScope {
 public:
  explicit CpuPassScope(int most);
  ~CpuPassScope();
  CpuPassScope(const CpuPassScope&) = delete;
  CpuPassScope& operator=(const CpuPassScope&) = delete;

  // The threads this pass uses.
  int threads() const { return threads_; }

 private:
  int threads_ = 1;
};

// Sets the calling thread's intra-op threads for the passes it runs next.
void SetThreadsOfThisThread(int threads);
// The calling thread's intra-op threads.
int ThreadsOfThisThread();

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

// Whether a /proc/cpuinfo text's flags include native bfloat16 arithmetic
// (avx512_bf16 or amx_bf16).
bool CpuInfoHasNativeBf16(absl::string_view cpuinfo);
// The same for this machine's /proc/cpuinfo (false when it cannot be read).
bool CpuHasNativeBf16();

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
