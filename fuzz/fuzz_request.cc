// Fuzzes what an inference request goes through before a model sees it: protobuf
// parsing of a ClassifyRequest, the server's wire-to-core input conversion, and
// preprocessing of each input for grey and colour models.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_preprocessors.h"
#include "headway/v1/inference.pb.h"
#include "server/request_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  headway::v1::ClassifyRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const absl::StatusOr<std::vector<headway::InputView>> inputs =
      headway::ToInputViews(request.inputs());
  if (!inputs.ok()) return 0;
  for (const headway::InputView& input : *inputs) {
    for (const auto& preprocessor : headway::fuzz::Preprocessors()) {
      preprocessor->Process(input).IgnoreError();
    }
  }
  return 0;
}
