#include "model_store/device.h"

#include <torch/cuda.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace headway {

absl::StatusOr<c10::Device> ResolveDevice(absl::string_view spec) {
  if (spec.empty() || spec == "cpu") return c10::Device(c10::kCPU);
  absl::string_view index_text = spec;
  if (!absl::ConsumePrefix(&index_text, "cuda")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown device \"", spec, "\": expected cpu, cuda or cuda:N"));
  }
  int index = 0;
  if (!index_text.empty() &&
      (!absl::ConsumePrefix(&index_text, ":") || !absl::SimpleAtoi(index_text, &index) ||
       index < 0 || index > 255)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed device \"", spec, "\": expected cpu, cuda or cuda:N"));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device \"", spec, "\" requested but CUDA is not available on this server"));
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    return absl::FailedPreconditionError(absl::StrCat("device \"", spec,
                                                      "\" requested but this server has ",
                                                      count, " CUDA device(s)"));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string DeviceName(const c10::Device& device) {
  if (device.is_cpu()) return "cpu";
  return absl::StrCat(c10::DeviceTypeName(device.type(), /*lower_case=*/true), ":",
                      device.has_index() ? device.index() : 0);
}

}  // namespace headway
