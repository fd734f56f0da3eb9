#include "model_store/torch_errors.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "model_store/server_fault.h"

namespace headway {
namespace {

// LibTorch's CPU allocator reports a failed allocation as a plain c10::Error.
bool SaysOutOfMemory(absl::string_view message) {
  const std::string lower = absl::AsciiStrToLower(message);
  return absl::StrContains(lower, "not enough memory") ||
         absl::StrContains(lower, "can't allocate memory") ||
         absl::StrContains(lower, "out of memory");
}

// The line of a LibTorch error message that says what went wrong. Most messages say it
// first and append a C++ backtrace; errors from the TorchScript interpreter start with
// "The following operation failed", show the script, and say it last.
std::string ErrorSummary(absl::string_view message) {
  message = absl::StripAsciiWhitespace(message);
  if (absl::StartsWith(message, "The following operation failed")) {
    const size_t last_line = message.rfind('\n');
    if (last_line != absl::string_view::npos)
      return std::string(message.substr(last_line + 1));
  }
  return std::string(message.substr(0, message.find('\n')));
}

absl::Status OutOfMemory(absl::string_view context, absl::string_view detail) {
  return ServerFault(absl::StatusCode::kResourceExhausted,
                     absl::StrCat(context, ": out of memory: ", detail));
}

std::string TorchErrorSummary(const c10::Error& error) {
  return ErrorSummary(error.what_without_backtrace());
}

}  // namespace

absl::Status StatusFromException(absl::string_view context, absl::StatusCode code,
                                 std::exception_ptr thrown) {
  try {
    std::rethrow_exception(thrown);
  } catch (const c10::OutOfMemoryError& e) {
    return OutOfMemory(context, TorchErrorSummary(e));
  } catch (const c10::Error& e) {
    const std::string summary = TorchErrorSummary(e);
    if (SaysOutOfMemory(summary)) return OutOfMemory(context, summary);
    return absl::Status(code, absl::StrCat(context, ": ", summary));
  } catch (const std::bad_alloc& e) {
    return OutOfMemory(context, e.what());
  } catch (const std::exception& e) {
    const std::string summary = ErrorSummary(e.what());
    if (SaysOutOfMemory(summary)) return OutOfMemory(context, summary);
    return absl::Status(code, absl::StrCat(context, ": ", summary));
  } catch (...) {
    return absl::Status(code, absl::StrCat(context, ": an exception of unknown type"));
  }
}

}  // namespace headway
