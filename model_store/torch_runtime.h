// Process-wide LibTorch settings, applied once at start-up before any model loads.
// Not thread-safe: call from main() only.
#ifndef HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
#define HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_

namespace headway {

// Sets LibTorch's intra-op thread count; 0 means one per CPU this process may use
// (UsableCpus).
// (LibTorch's own default counts physical cores through cpuinfo, which on some
// virtual machines sees a single core among several and leaves the rest idle.)
void ConfigureTorchThreads(int intra_op_threads);

// LibTorch's intra-op thread count as now set.
int TorchThreads();

// The CPUs this process may use: its affinity mask, capped by a container's CPU quota
// (cgroup cpu.max, as Kubernetes CPU limits set it), rounded up; at least 1.
int UsableCpus();

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
