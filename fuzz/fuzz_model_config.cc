// Fuzzes model config parsing and validation (text-format headway.v1.ModelConfig).
#include <cstddef>
#include <cstdint>

#include "model_store/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<headway::v1::ModelConfig> config = headway::ParseModelConfig(text);
  if (config.ok()) headway::ValidateModelConfig(*config).IgnoreError();
  return 0;
}
