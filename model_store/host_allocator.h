// How the process's C allocator (glibc malloc) treats the large blocks LibTorch
// allocates on CPU. Process-wide: call once from main(), before threads start
// allocating. Not thread-safe.
#ifndef HEADWAY_MODEL_STORE_HOST_ALLOCATOR_H_
#define HEADWAY_MODEL_STORE_HOST_ALLOCATOR_H_

#include <cstdint>

#include "absl/status/status.h"

namespace headway {

// Keeps freed tensor memory mapped for the next forward pass. LibTorch on CPU
// allocates every activation for each pass and frees it after. With glibc's defaults
// a block over 128 KiB gets a fresh mmap and is unmapped when freed (a threshold glibc
// adjusts as it goes), and a heap's free top is returned to the kernel beyond 128 KiB,
// so every pass page-faults its activations in again: a small CNN ran 3-5x slower
// here in some runs than in others. This serves blocks up to 32 MiB (glibc's largest)
// from the heap and keeps up to `retain_bytes` of free memory at each heap's top, as
// the top pad too: a thread's arena is a chain of 64 MiB heaps, and glibc unmaps a
// heap whose memory is all free whatever the trim threshold, unless the pad covers it
// (a BF16 ResNet-18 pass, which reorders its weights anew, then faulted 40-50% more
// pages in some runs and ran 1.3-1.6x FP32 instead of 1.8-1.9x).
// The cost is resident memory: up to `retain_bytes` per malloc arena stays mapped.
// `retain_bytes` 0 leaves glibc's defaults. INVALID_ARGUMENT if negative;
// FAILED_PRECONDITION, changing nothing, where mallopt is refused (AddressSanitizer
// intercepts it). ThreadSanitizer lets glibc take the options, but its own allocator
// serves the process, so they change nothing there either.
absl::Status RetainFreedTensorMemory(int64_t retain_bytes);

// Returns every free page of every malloc heap to the kernel (malloc_trim), the
// retained ones included: the next passes fault their memory in once again. For after
// a burst that grew the heaps far beyond what serving keeps (FloodMemory). Takes each
// heap's lock in turn; thread-safe.
void ReturnFreedMemory();

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_HOST_ALLOCATOR_H_
