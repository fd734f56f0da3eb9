// The JSON bodies of Headway's HTTP API, converted with protobuf's JSON support:
//   - headway.v1 messages use protobuf's JSON mapping (bytes as base64, field names
//     as in the .proto or lowerCamelCase; unknown fields are refused), except that
//     answers give 64-bit integers as numbers;
//   - the Open Inference Protocol's REST form goes through google.protobuf.Struct:
//     {"inputs": [{"name", "shape", "datatype", "parameters", "data"}], "outputs",
//     "parameters", "id"}, with `data` flat or nested in row-major order. BYTES
//     elements are base64 strings (or {"b64": "..."}), since images are binary.
//   - its binary tensor data extension (what Triton's and KServe's HTTP clients send
//     by default): the body is the JSON, Inference-Header-Content-Length bytes long,
//     then the binary data of each input whose parameters give "binary_data_size",
//     in input order (little-endian, row-major; a BYTES element is a 4-byte
//     little-endian length and its bytes, as gRPC's raw contents are). An output is
//     answered in binary when its "binary_data" parameter, or else the request's
//     "binary_data_output", is true.
//
// Every parse error is INVALID_ARGUMENT naming the problem, its message bounded.
// Pure functions; thread-safe.
#ifndef HEADWAY_SERVER_HTTP_JSON_H_
#define HEADWAY_SERVER_HTTP_JSON_H_

#include <google/protobuf/message.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference/grpc_predict_v2.pb.h"

namespace headway {

// A headway.v1 request from JSON (protobuf's JSON mapping).
absl::Status ParseMessageJson(absl::string_view body, google::protobuf::Message& message);

// A message as JSON: proto field names, default values included, 64-bit integers as
// numbers (client/json_output.h, as the CLI's --json prints them).
std::string MessageJson(const google::protobuf::Message& message);

// An Open Inference Protocol inference request from its REST form: JSON alone, or
// with `json_length` (the Inference-Header-Content-Length header) the JSON followed by
// binary input data, which becomes the request's raw_input_contents.
absl::StatusOr<inference::ModelInferRequest> ParseInferRequestJson(
    absl::string_view body, std::optional<size_t> json_length = std::nullopt);

// An inference response's REST body: the JSON, then the binary data of the outputs
// that `request` asked for in binary, in output order.
struct InferResponseBody {
  std::string body;
  // The JSON's length when binary data follows it (the response's
  // Inference-Header-Content-Length); nullopt when the body is JSON alone.
  std::optional<size_t> json_length;
};
InferResponseBody InferResponseHttp(const inference::ModelInferResponse& response,
                                    const inference::ModelInferRequest& request);

// The REST JSON forms of the Open Inference Protocol's other responses.
std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata);
std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata);
std::string RepositoryIndexJson(const inference::RepositoryIndexResponse& index);

// {"error": message, "code": "NOT_FOUND"}: the protocol's error body, with the gRPC
// status code's name beside it.
std::string ErrorJson(const absl::Status& status);

}  // namespace headway

#endif  // HEADWAY_SERVER_HTTP_JSON_H_
