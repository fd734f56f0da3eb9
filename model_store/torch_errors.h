// The core's edge with LibTorch errors: runs a callable and turns any c10::Error (or
// std::exception) it throws into an absl::Status that names what was being done.
// Stateless and thread-safe.
#ifndef HEADWAY_MODEL_STORE_TORCH_ERRORS_H_
#define HEADWAY_MODEL_STORE_TORCH_ERRORS_H_

#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace headway {

// The first line of a LibTorch error message, without its C++ backtrace.
std::string TorchErrorSummary(const c10::Error& error);

// Calls fn() and returns its result; an exception becomes a status of `code` whose
// message starts with `context`. fn may return void, a value, or an absl::Status(Or).
template <typename Fn>
auto CallTorch(absl::string_view context, absl::StatusCode code, Fn&& fn)
    -> std::conditional_t<
        std::is_void_v<std::invoke_result_t<Fn>>, absl::Status,
        std::conditional_t<std::is_same_v<std::invoke_result_t<Fn>, absl::Status>,
                           absl::Status, absl::StatusOr<std::invoke_result_t<Fn>>>> {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn>>) {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } else {
      return std::forward<Fn>(fn)();
    }
  } catch (const c10::Error& e) {
    return absl::Status(code, absl::StrCat(context, ": ", TorchErrorSummary(e)));
  } catch (const std::exception& e) {
    return absl::Status(code, absl::StrCat(context, ": ", e.what()));
  }
}

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_ERRORS_H_
