// Device names as configs and requests spell them ("cpu", "cuda", "cuda:N") resolved
// to LibTorch devices, with clear errors where the device does not exist on this
// machine. Stateless and thread-safe.
#ifndef HEADWAY_MODEL_STORE_DEVICE_H_
#define HEADWAY_MODEL_STORE_DEVICE_H_

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// Parses `spec` and checks that the device is usable here. An empty spec means cpu.
// INVALID_ARGUMENT for a malformed name; FAILED_PRECONDITION for a CUDA device on a
// machine without CUDA or with too few GPUs.
absl::StatusOr<c10::Device> ResolveDevice(absl::string_view spec);

// The canonical name of a device: "cpu", "cuda:0", ...
std::string DeviceName(const c10::Device& device);

// Memory LibTorch's CUDA caching allocator holds on one device.
struct DeviceMemory {
  std::string device;           // "cuda:N"
  int64_t allocated_bytes = 0;  // in live tensors
  int64_t reserved_bytes = 0;   // held from CUDA: allocated plus the allocator's cache
};

// The memory of each distinct CUDA device among `devices` (canonical names; cpu and
// devices CUDA has not started on are skipped). Empty when LibTorch was built
// without CUDA.
std::vector<DeviceMemory> CudaMemory(const std::vector<std::string>& devices);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_DEVICE_H_
