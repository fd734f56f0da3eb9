// Process-wide LibTorch settings, applied once at start-up before any model loads.
// Not thread-safe: call from main() only.
#ifndef HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
#define HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_

namespace headway {

// Sets LibTorch's intra-op thread count; 0 leaves LibTorch's default (one per core).
void ConfigureTorchThreads(int intra_op_threads);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_RUNTIME_H_
