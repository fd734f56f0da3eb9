// Fuzzes the HTTP/JSON request decoding: the Open Inference Protocol's REST form
// (ParseInferRequestJson, with and without binary tensor data, then the model-input and
// output mapping a request goes through) and headway.v1 bodies in protobuf's JSON
// mapping.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "headway/v1/inference.pb.h"
#include "headway/v1/management.pb.h"
#include "server/http_json.h"
#include "server/open_inference_tensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  // JSON alone, and JSON followed by binary tensor data split where the first byte says.
  absl::StatusOr<inference::ModelInferRequest> binary = headway::ParseInferRequestJson(
      body, size > 0 ? std::optional<size_t>(data[0] % (size + 1)) : std::nullopt);
  if (binary.ok()) {
    inference::ModelInferResponse response;
    response.add_outputs()->set_datatype("BYTES");
    response.add_raw_output_contents(body);
    headway::InferResponseHttp(response, *binary);
  }
  absl::StatusOr<inference::ModelInferRequest> request =
      headway::ParseInferRequestJson(body);
  if (request.ok()) {
    headway::v1::InputSpec spec;
    spec.set_channels(1);
    spec.set_height(20);
    spec.set_width(20);
    headway::ToOpenInferenceInputs(*request, spec).status().IgnoreError();
    headway::ToOpenInferenceOutputs(*request, true).status().IgnoreError();
  }
  headway::v1::ClassifyRequest classify;
  headway::ParseMessageJson(body, classify).IgnoreError();
  headway::v1::HotSwapHeadRequest swap;
  headway::ParseMessageJson(body, swap).IgnoreError();
  return 0;
}
