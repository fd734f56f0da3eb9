// HttpApi: Headway's HTTP/JSON API, independent of the HTTP server that carries it.
// Each request is routed, its JSON body decoded (http_json.h), and sent as the gRPC
// call it stands for to the server's own services over `channel` (the server's
// in-process channel): admission, limits, batching, metrics, admin checks (the
// Authorization header travels as gRPC metadata) and error messages are gRPC's. The
// status maps to an HTTP status with a JSON body {"error": ..., "code": ...}. A
// client that hangs up while its call runs cancels it (HangupWatch), and a Grpc-Timeout
// header or the Open Inference "timeout" parameter shortens its deadline.
//
// Routes (the Open Inference Protocol's REST form, then headway.v1 as JSON):
//   GET  /v2/health/live, /v2/health/ready             200, or 503 when not ready
//   GET  /v2                                            server metadata
//   GET  /v2/models/{m}[/versions/{v}]                  model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready            200, or 503 when not ready
//   POST /v2/models/{m}[/versions/{v}]/infer            inference (JSON, or JSON and
//                                                       binary tensor data)
//   POST /v2/repository/index                           every model and its state
//   POST /v2/repository/models/{m}/load, .../unload     admin
//   GET  /v1/models                                     ListModels
//   GET  /v1/models/{m}                                 GetModelMetadata
//   POST /v1/models/{m}:embed, /v1/models/{m}:classify  EmbedRequest, ClassifyRequest
//   POST /v1/models/{m}:load, /v1/models/{m}:unload     admin (LoadModelRequest body)
//   POST /v1/models/{m}/heads/{h}:swap                  admin (HotSwapHeadRequest body)
//   POST /v1/models/{m}/heads/{h}:fit                   admin (FitHeadRequest body)
//   DELETE /v1/models/{m}/heads/{h}[?persist=true]      admin
// The model (and head) in the path win over any in the body. Other paths are 404,
// other methods 405 (with Allow), a POST body whose Content-Type says it is not JSON
// 415 (none, or curl -d's application/x-www-form-urlencoded, is read as JSON; any
// type goes with an Inference-Header-Content-Length header).
//
// Thread-safe (gRPC stubs are); the channel may be shared.
#ifndef HEADWAY_SERVER_HTTP_API_H_
#define HEADWAY_SERVER_HTTP_API_H_

#include <grpcpp/channel.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "headway/v1/inference.grpc.pb.h"
#include "headway/v1/management.grpc.pb.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/hangup_watch.h"

namespace headway {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // URL-decoded, without the query
  std::string query;
  std::string content_type;
  std::string authorization;
  // The Inference-Header-Content-Length header (binary tensor data); "" when none.
  std::string inference_header_length;
  // The Grpc-Timeout header (a deadline, in gRPC's form: "500m", "2S"); "" when none.
  std::string grpc_timeout;
  // The client's connection, watched for a hang-up while the request's call runs
  // (which cancels it); -1 for none.
  int client_socket = -1;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;   // JSON, followed by binary tensor data when json_length is set
  std::string allow;  // for 405: the methods the path takes
  // For a body with binary tensor data: the JSON's length, sent as
  // Inference-Header-Content-Length (the body is then application/octet-stream).
  std::optional<size_t> json_length;
};

// The HTTP status for a gRPC status code (Google's API mapping: INVALID_ARGUMENT 400,
// NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, ...).
int HttpStatusOf(absl::StatusCode code);

// A response carrying `status` as {"error": ..., "code": ...}.
HttpResponse ErrorResponse(const absl::Status& status);

// A Grpc-Timeout header's value (gRPC's wire form: at most 8 digits and a unit, H M S
// for hours, minutes, seconds, m u n for milli-, micro- and nanoseconds; "250m" is
// 250 ms), the header gRPC-to-JSON gateways take a deadline from; INVALID_ARGUMENT,
// naming the header, for anything else.
absl::StatusOr<absl::Duration> ParseGrpcTimeout(absl::string_view value);

class HttpApi {
 public:
  // Each forwarded call has `call_timeout` as its deadline, or the request's
  // Grpc-Timeout when that is sooner.
  HttpApi(std::shared_ptr<grpc::Channel> channel, absl::Duration call_timeout);

  HttpResponse Handle(const HttpRequest& request) const;

 private:
  HttpResponse HandleV2(const HttpRequest& request,
                        const std::vector<std::string>& path) const;
  HttpResponse HandleV1(const HttpRequest& request,
                        const std::vector<std::string>& path) const;

  // Runs a unary call of `stub` with the request's credential and the deadline
  // (`timeout` from now, when that is sooner).
  template <typename Response, typename Stub, typename Request, typename Method>
  absl::StatusOr<Response> Call(Stub& stub, Method method, const Request& request,
                                const HttpRequest& http,
                                absl::Duration timeout = absl::InfiniteDuration()) const;

  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ManagementService::Stub> management_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> open_inference_;
  const absl::Duration call_timeout_;
  const std::unique_ptr<HangupWatch> hangups_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HTTP_API_H_
