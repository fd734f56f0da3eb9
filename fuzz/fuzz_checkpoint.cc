// Fuzzes checkpoint reading: torch.save zip archives through Headway's pickle reader
// (what a HotSwapHead upload goes through), and TorchScript archive detection.
#include <torch/script.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "model_store/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  headway::ReadCheckpoint(bytes, c10::Device(c10::kCPU)).status().IgnoreError();
  return 0;
}
