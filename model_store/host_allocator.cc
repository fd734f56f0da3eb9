#include "model_store/host_allocator.h"

#include <malloc.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace headway {
namespace {

// glibc refuses an mmap threshold above half its per-thread heap size (64 MiB on
// 64-bit systems).
constexpr int kLargestHeapBlock = 32 << 20;

}  // namespace

absl::Status RetainFreedTensorMemory(int64_t retain_bytes) {
  if (retain_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("retained memory must be 0 or more bytes, not ", retain_bytes));
  }
  if (retain_bytes == 0) return absl::OkStatus();
  // Setting either fixes it: glibc stops adjusting the thresholds itself.
  const int trim =
      static_cast<int>(std::min<int64_t>(retain_bytes, std::numeric_limits<int>::max()));
  if (mallopt(M_MMAP_THRESHOLD, kLargestHeapBlock) != 1 ||
      mallopt(M_TRIM_THRESHOLD, trim) != 1 || mallopt(M_TOP_PAD, trim) != 1) {
    return absl::FailedPreconditionError(
        "the allocator in this process ignores glibc malloc options (mallopt): a "
        "sanitizer replaces glibc malloc");
  }
  return absl::OkStatus();
}

void ReturnFreedMemory() { malloc_trim(0); }

}  // namespace headway
