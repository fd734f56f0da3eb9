#include "model_store/torch_errors.h"

namespace headway {

std::string TorchErrorSummary(const c10::Error& error) {
  std::string message = error.what_without_backtrace();
  // LibTorch appends "Exception raised from ..." and TorchScript call stacks after the
  // first line: users need the first line.
  if (size_t newline = message.find('\n'); newline != std::string::npos) {
    message.resize(newline);
  }
  return message;
}

}  // namespace headway
