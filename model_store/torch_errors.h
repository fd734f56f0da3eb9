// The core's edge with LibTorch errors: runs a callable and turns anything it throws
// (c10::Error, std::exception, or anything else) into an absl::Status that names what
// was being done. Memory that runs out (c10::OutOfMemoryError, LibTorch's CPU
// allocator failing, std::bad_alloc) becomes RESOURCE_EXHAUSTED marked as a server
// fault (server_fault.h), whatever code the caller asked for. Stateless and
// thread-safe.
#ifndef HEADWAY_MODEL_STORE_TORCH_ERRORS_H_
#define HEADWAY_MODEL_STORE_TORCH_ERRORS_H_

#include <exception>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// The status for `thrown` (an exception caught while doing `context`): `code` with
// the exception's summary, or RESOURCE_EXHAUSTED when memory ran out.
absl::Status StatusFromException(absl::string_view context, absl::StatusCode code,
                                 std::exception_ptr thrown);

// What CallTorch returns for a callable returning T: absl::Status for void or a
// Status, absl::StatusOr<T> for a value T or an absl::StatusOr<T>.
template <typename T>
struct TorchCallResult {
  using type = absl::StatusOr<T>;
};
template <>
struct TorchCallResult<void> {
  using type = absl::Status;
};
template <>
struct TorchCallResult<absl::Status> {
  using type = absl::Status;
};
template <typename T>
struct TorchCallResult<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};

// Calls fn() and returns its result; an exception becomes a status of `code` whose
// message starts with `context`. fn may return void, a value, or an absl::Status(Or).
template <typename Fn>
auto CallTorch(absl::string_view context, absl::StatusCode code, Fn&& fn) ->
    typename TorchCallResult<std::invoke_result_t<Fn>>::type {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn>>) {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } else {
      return std::forward<Fn>(fn)();
    }
  } catch (...) {
    return StatusFromException(context, code, std::current_exception());
  }
}

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_ERRORS_H_
