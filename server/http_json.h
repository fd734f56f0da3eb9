// The JSON bodies of Headway's HTTP API, converted with protobuf's JSON support:
//   - headway.v1 messages use protobuf's JSON mapping as they are (bytes as base64,
//     field names as in the .proto or lowerCamelCase; unknown fields are refused);
//   - the Open Inference Protocol's REST form goes through google.protobuf.Struct:
//     {"inputs": [{"name", "shape", "datatype", "parameters", "data"}], "outputs",
//     "parameters", "id"}, with `data` flat or nested in row-major order. BYTES
//     elements are base64 strings (or {"b64": "..."}), since images are binary.
//
// Every parse error is INVALID_ARGUMENT naming the problem, its message bounded.
// Pure functions; thread-safe.
#ifndef HEADWAY_SERVER_HTTP_JSON_H_
#define HEADWAY_SERVER_HTTP_JSON_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference/grpc_predict_v2.pb.h"

namespace headway {

// A headway.v1 request from JSON (protobuf's JSON mapping).
absl::Status ParseMessageJson(absl::string_view body, google::protobuf::Message& message);

// A message as JSON: proto field names, default values included.
std::string MessageJson(const google::protobuf::Message& message);

// An Open Inference Protocol inference request from its REST JSON form.
absl::StatusOr<inference::ModelInferRequest> ParseInferRequestJson(
    absl::string_view body);

// The REST JSON forms of the Open Inference Protocol's responses.
std::string InferResponseJson(const inference::ModelInferResponse& response);
std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata);
std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata);
std::string RepositoryIndexJson(const inference::RepositoryIndexResponse& index);

// {"error": message, "code": "NOT_FOUND"}: the protocol's error body, with the gRPC
// status code's name beside it.
std::string ErrorJson(const absl::Status& status);

}  // namespace headway

#endif  // HEADWAY_SERVER_HTTP_JSON_H_
