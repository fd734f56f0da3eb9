#include "model_store/device.h"

#include <torch/cuda.h>

#include <set>

#ifdef HEADWAY_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "model_store/model_config.h"

namespace headway {

absl::StatusOr<c10::Device> ResolveDevice(absl::string_view spec) {
  if (spec.empty() || spec == "cpu") return c10::Device(c10::kCPU);
  absl::string_view index_text = spec;
  if (!absl::ConsumePrefix(&index_text, "cuda")) {
    return absl::InvalidArgumentError(absl::StrCat("unknown device \"", EchoName(spec),
                                                   "\": expected cpu, cuda or cuda:N"));
  }
  int index = 0;
  if (!index_text.empty() &&
      (!absl::ConsumePrefix(&index_text, ":") || !absl::SimpleAtoi(index_text, &index) ||
       index < 0 || index > 255)) {
    return absl::InvalidArgumentError(absl::StrCat("malformed device \"", EchoName(spec),
                                                   "\": expected cpu, cuda or cuda:N"));
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

std::vector<DeviceMemory> CudaMemory(const std::vector<std::string>& devices) {
  std::vector<DeviceMemory> memory;
#ifdef HEADWAY_WITH_CUDA
  for (const std::string& name : std::set<std::string>(devices.begin(), devices.end())) {
    absl::string_view index_text = name;
    int index = 0;
    if (!absl::ConsumePrefix(&index_text, "cuda:") ||
        !absl::SimpleAtoi(index_text, &index)) {
      continue;
    }
    try {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
      // Entry 0 of each statistic is the aggregate over the allocator's pools.
      memory.push_back(
          {name, stats.allocated_bytes[0].current, stats.reserved_bytes[0].current});
    } catch (const c10::Error&) {
      // CUDA has not started on this device yet: nothing is held there.
    }
  }
#else
  (void)devices;
#endif
  return memory;
}

}  // namespace headway
