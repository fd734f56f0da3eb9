#include "server/http_api.h"

#include <google/protobuf/stubs/common.h>  // IsStructurallyValidUTF8

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model_store/model_config.h"
#include "server/http_json.h"
#include "server/open_inference_tensors.h"

namespace headway {
namespace {

HttpResponse Json(std::string body, int status = 200) {
  return {status, std::move(body), "", std::nullopt};
}

HttpResponse MethodNotAllowed(const std::string& method, const std::string& allowed) {
  HttpResponse response = ErrorResponse(absl::InvalidArgumentError(absl::StrCat(
      "method ", method.substr(0, 16), " is not allowed here; use ", allowed)));
  response.status = 405;
  response.allow = allowed;
  return response;
}

HttpResponse NotFound(const HttpRequest& request) {
  return ErrorResponse(absl::NotFoundError(absl::StrCat(
      "no such path: ", request.path.substr(0, 200),
      " (see the README's HTTP section: /v2/... for the Open Inference Protocol, "
      "/v1/models/... for Headway's API)")));
}

// Whether a POST body sent with `content_type` is read as JSON: application/json, no
// Content-Type at all, or application/x-www-form-urlencoded, what `curl -d` sends
// unless told otherwise (TF Serving's and Triton's curl examples rely on it). Any
// other type says the body is something else.
bool MayCarryJson(absl::string_view content_type) {
  const absl::string_view media_type = absl::StripAsciiWhitespace(
      content_type.substr(0, std::min(content_type.find(';'), content_type.size())));
  return media_type.empty() || absl::EqualsIgnoreCase(media_type, "application/json") ||
         absl::EqualsIgnoreCase(media_type, "application/x-www-form-urlencoded");
}

// Splits "name:verb" (Google's custom methods) into its parts; verb "" when none.
std::pair<std::string, std::string> SplitVerb(const std::string& segment) {
  const size_t colon = segment.rfind(':');
  if (colon == std::string::npos) return {segment, ""};
  return {segment.substr(0, colon), segment.substr(colon + 1)};
}

// Whether the query string has `key`=true (or 1).
bool QueryFlag(const std::string& query, absl::string_view key) {
  for (absl::string_view pair : absl::StrSplit(query, '&')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, '=');
    if (kv.first == key) return kv.second == "true" || kv.second == "1";
  }
  return false;
}

// A JSON request body into `message`; an empty body leaves it empty.
absl::Status ParseBody(const HttpRequest& request, google::protobuf::Message& message) {
  if (request.body.empty()) return absl::OkStatus();
  return ParseMessageJson(request.body, message);
}

template <typename Response>
HttpResponse MessageResponse(const absl::StatusOr<Response>& response) {
  if (!response.ok()) return ErrorResponse(response.status());
  return Json(MessageJson(*response));
}

}  // namespace

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

HttpResponse ErrorResponse(const absl::Status& status) {
  return {HttpStatusOf(status.code()), ErrorJson(status), "", std::nullopt};
}

absl::StatusOr<absl::Duration> ParseGrpcTimeout(absl::string_view value) {
  const auto refuse = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "Grpc-Timeout must be at most 8 digits and a unit (H, M, S, m, u or n; \"500m\" "
        "is 500 ms), not \"",
        EchoName(value.substr(0, 40)), "\""));
  };
  if (value.size() < 2 || value.size() > 9) return refuse();
  const absl::string_view digits = value.substr(0, value.size() - 1);
  int64_t amount = 0;
  if (!std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(digits, &amount)) {
    return refuse();
  }
  switch (value.back()) {
    case 'H':
      return absl::Hours(amount);
    case 'M':
      return absl::Minutes(amount);
    case 'S':
      return absl::Seconds(amount);
    case 'm':
      return absl::Milliseconds(amount);
    case 'u':
      return absl::Microseconds(amount);
    case 'n':
      return absl::Nanoseconds(amount);
    default:
      return refuse();
  }
}

HttpApi::HttpApi(std::shared_ptr<grpc::Channel> channel, absl::Duration call_timeout)
    : inference_(v1::InferenceService::NewStub(channel)),
      management_(v1::ManagementService::NewStub(channel)),
      open_inference_(inference::GRPCInferenceService::NewStub(channel)),
      call_timeout_(call_timeout),
      hangups_(std::make_unique<HangupWatch>()) {}

template <typename Response, typename Stub, typename Request, typename Method>
absl::StatusOr<Response> HttpApi::Call(Stub& stub, Method method, const Request& request,
                                       const HttpRequest& http,
                                       absl::Duration timeout) const {
  grpc::ClientContext context;
  timeout = std::min(timeout, call_timeout_);
  if (!http.grpc_timeout.empty()) {
    // Checked by Handle before any call.
    timeout = std::min(timeout, ParseGrpcTimeout(http.grpc_timeout).value_or(timeout));
  }
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMicroseconds(timeout));
  if (!http.authorization.empty())
    context.AddMetadata("authorization", http.authorization);
  Response response;
  // A client that hangs up cancels its call: a queued request is then dropped.
  const HangupWatch::Scope watch(hangups_.get(), http.client_socket, &context);
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      status.error_message() == "Deadline Exceeded") {
    // gRPC's own words when the deadline passed in transport or in a queue: say which.
    return absl::DeadlineExceededError(absl::StrCat(
        "no answer within the request's deadline of ", absl::FormatDuration(timeout),
        " (the sooner of its Grpc-Timeout header, its \"timeout\" parameter and the "
        "gateway's ",
        absl::FormatDuration(call_timeout_), ")"));
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  return response;
}

HttpResponse HttpApi::Handle(const HttpRequest& request) const {
  // Checked whether or not a body arrived: the HTTP library takes a multipart body
  // (curl -F) apart and leaves none.
  if (request.method == "POST" && request.inference_header_length.empty() &&
      !MayCarryJson(request.content_type)) {
    HttpResponse response = ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat("Content-Type must be application/json, not \"",
                     request.content_type.substr(0, 100),
                     "\" (images travel base64 inside the JSON; binary tensors follow "
                     "it, with an Inference-Header-Content-Length header)")));
    response.status = 415;
    return response;
  }
  if (!request.grpc_timeout.empty()) {
    if (absl::StatusOr<absl::Duration> timeout = ParseGrpcTimeout(request.grpc_timeout);
        !timeout.ok()) {
      return ErrorResponse(timeout.status());
    }
  }
  // Names in the path become protobuf strings, which must be UTF-8.
  if (!google::protobuf::internal::IsStructurallyValidUTF8(request.path) ||
      !google::protobuf::internal::IsStructurallyValidUTF8(request.query)) {
    return ErrorResponse(absl::InvalidArgumentError(
        "the request's path or query is not valid UTF-8 (after percent-decoding)"));
  }
  std::vector<std::string> path = absl::StrSplit(request.path, '/', absl::SkipEmpty());
  if (path.empty()) return NotFound(request);
  const std::string version = path.front();
  path.erase(path.begin());
  if (version == "v2") return HandleV2(request, path);
  if (version == "v1") return HandleV1(request, path);
  return NotFound(request);
}

HttpResponse HttpApi::HandleV2(const HttpRequest& request,
                               const std::vector<std::string>& path) const {
  using Stub = inference::GRPCInferenceService::Stub;
  const std::string& method = request.method;
  const auto expect = [&](const char* allowed) { return method == allowed; };
  if (path.empty()) {
    if (!expect("GET")) return MethodNotAllowed(method, "GET");
    auto metadata = Call<inference::ServerMetadataResponse>(
        *open_inference_, &Stub::ServerMetadata, inference::ServerMetadataRequest(),
        request);
    if (!metadata.ok()) return ErrorResponse(metadata.status());
    // The binary tensor data extension is REST's alone (gRPC has raw contents).
    metadata->add_extensions("binary_tensor_data");
    return Json(ServerMetadataJson(*metadata));
  }
  if (path.size() == 2 && path[0] == "health" &&
      (path[1] == "live" || path[1] == "ready")) {
    if (!expect("GET")) return MethodNotAllowed(method, "GET");
    if (path[1] == "live") {
      auto live = Call<inference::ServerLiveResponse>(
          *open_inference_, &Stub::ServerLive, inference::ServerLiveRequest(), request);
      if (!live.ok()) return ErrorResponse(live.status());
      return Json(R"({"live":true})");
    }
    auto ready = Call<inference::ServerReadyResponse>(
        *open_inference_, &Stub::ServerReady, inference::ServerReadyRequest(), request);
    if (!ready.ok()) return ErrorResponse(ready.status());
    return ready->ready() ? Json(R"({"ready":true})") : Json(R"({"ready":false})", 503);
  }
  if (path[0] == "repository") {
    if (!expect("POST")) return MethodNotAllowed(method, "POST");
    if (path.size() == 2 && path[1] == "index") {
      inference::RepositoryIndexRequest index_request;
      if (!request.body.empty()) {
        if (absl::Status parsed = ParseMessageJson(request.body, index_request);
            !parsed.ok()) {
          return ErrorResponse(parsed);
        }
      }
      auto index = Call<inference::RepositoryIndexResponse>(
          *open_inference_, &Stub::RepositoryIndex, index_request, request);
      if (!index.ok()) return ErrorResponse(index.status());
      return Json(RepositoryIndexJson(*index));
    }
    if (path.size() == 4 && path[1] == "models" && path[3] == "load") {
      inference::RepositoryModelLoadRequest load;
      load.set_model_name(path[2]);
      auto loaded = Call<inference::RepositoryModelLoadResponse>(
          *open_inference_, &Stub::RepositoryModelLoad, load, request);
      return loaded.ok() ? Json("{}") : ErrorResponse(loaded.status());
    }
    if (path.size() == 4 && path[1] == "models" && path[3] == "unload") {
      inference::RepositoryModelUnloadRequest unload;
      unload.set_model_name(path[2]);
      auto unloaded = Call<inference::RepositoryModelUnloadResponse>(
          *open_inference_, &Stub::RepositoryModelUnload, unload, request);
      return unloaded.ok() ? Json("{}") : ErrorResponse(unloaded.status());
    }
    return NotFound(request);
  }
  if (path[0] != "models" || path.size() < 2) return NotFound(request);
  const std::string& model = path[1];
  std::string model_version;
  size_t rest = 2;
  if (path.size() >= 4 && path[2] == "versions") {
    model_version = path[3];
    rest = 4;
  }
  if (path.size() == rest) {
    if (!expect("GET")) return MethodNotAllowed(method, "GET");
    inference::ModelMetadataRequest metadata_request;
    metadata_request.set_name(model);
    metadata_request.set_version(model_version);
    auto metadata = Call<inference::ModelMetadataResponse>(
        *open_inference_, &Stub::ModelMetadata, metadata_request, request);
    if (!metadata.ok()) return ErrorResponse(metadata.status());
    return Json(ModelMetadataJson(*metadata));
  }
  if (path.size() != rest + 1) return NotFound(request);
  if (path[rest] == "ready") {
    if (!expect("GET")) return MethodNotAllowed(method, "GET");
    inference::ModelReadyRequest ready_request;
    ready_request.set_name(model);
    ready_request.set_version(model_version);
    auto ready = Call<inference::ModelReadyResponse>(*open_inference_, &Stub::ModelReady,
                                                     ready_request, request);
    if (!ready.ok()) return ErrorResponse(ready.status());
    return ready->ready() ? Json(R"({"ready":true})") : Json(R"({"ready":false})", 503);
  }
  if (path[rest] == "infer") {
    if (!expect("POST")) return MethodNotAllowed(method, "POST");
    std::optional<size_t> json_length;
    if (!request.inference_header_length.empty()) {
      size_t length = 0;
      if (!absl::SimpleAtoi(request.inference_header_length, &length)) {
        return ErrorResponse(absl::InvalidArgumentError(
            absl::StrCat("Inference-Header-Content-Length must be a byte count, not \"",
                         request.inference_header_length.substr(0, 40), "\"")));
      }
      json_length = length;
    }
    absl::StatusOr<inference::ModelInferRequest> infer =
        ParseInferRequestJson(request.body, json_length);
    if (!infer.ok()) return ErrorResponse(infer.status());
    infer->set_model_name(model);
    infer->set_model_version(model_version);
    // The "timeout" parameter becomes the call's deadline too, so the answer comes
    // when it passes (the server checks the parameter itself).
    auto response = Call<inference::ModelInferResponse>(
        *open_inference_, &Stub::ModelInfer, *infer, request,
        RequestedTimeout(*infer).value_or(absl::InfiniteDuration()));
    if (!response.ok()) return ErrorResponse(response.status());
    InferResponseBody body = InferResponseHttp(*response, *infer);
    HttpResponse reply = Json(std::move(body.body));
    reply.json_length = body.json_length;
    return reply;
  }
  return NotFound(request);
}

HttpResponse HttpApi::HandleV1(const HttpRequest& request,
                               const std::vector<std::string>& path) const {
  using Inference = v1::InferenceService::Stub;
  using Management = v1::ManagementService::Stub;
  const std::string& method = request.method;
  if (path.empty() || path[0] != "models") return NotFound(request);
  if (path.size() == 1) {
    if (method != "GET") return MethodNotAllowed(method, "GET");
    return MessageResponse(Call<v1::ListModelsResponse>(
        *management_, &Management::ListModels, v1::ListModelsRequest(), request));
  }
  if (path.size() == 2) {
    const auto [model, verb] = SplitVerb(path[1]);
    if (verb.empty()) {
      if (method != "GET") return MethodNotAllowed(method, "GET");
      v1::GetModelMetadataRequest metadata;
      metadata.set_model(model);
      return MessageResponse(Call<v1::GetModelMetadataResponse>(
          *inference_, &Inference::GetModelMetadata, metadata, request));
    }
    if (method != "POST") return MethodNotAllowed(method, "POST");
    if (verb == "embed" || verb == "classify") {
      if (verb == "embed") {
        v1::EmbedRequest embed;
        if (absl::Status parsed = ParseBody(request, embed); !parsed.ok()) {
          return ErrorResponse(parsed);
        }
        embed.set_model(model);
        return MessageResponse(
            Call<v1::EmbedResponse>(*inference_, &Inference::Embed, embed, request));
      }
      v1::ClassifyRequest classify;
      if (absl::Status parsed = ParseBody(request, classify); !parsed.ok()) {
        return ErrorResponse(parsed);
      }
      classify.set_model(model);
      return MessageResponse(Call<v1::ClassifyResponse>(*inference_, &Inference::Classify,
                                                        classify, request));
    }
    if (verb == "load") {
      v1::LoadModelRequest load;
      if (absl::Status parsed = ParseBody(request, load); !parsed.ok()) {
        return ErrorResponse(parsed);
      }
      load.set_model(model);
      return MessageResponse(Call<v1::LoadModelResponse>(
          *management_, &Management::LoadModel, load, request));
    }
    if (verb == "unload") {
      v1::UnloadModelRequest unload;
      if (absl::Status parsed = ParseBody(request, unload); !parsed.ok()) {
        return ErrorResponse(parsed);
      }
      unload.set_model(model);
      return MessageResponse(Call<v1::UnloadModelResponse>(
          *management_, &Management::UnloadModel, unload, request));
    }
    return NotFound(request);
  }
  if (path.size() == 4 && path[2] == "heads") {
    const std::string& model = path[1];
    const auto [head, verb] = SplitVerb(path[3]);
    if (verb == "swap") {
      if (method != "POST") return MethodNotAllowed(method, "POST");
      v1::HotSwapHeadRequest swap;
      if (absl::Status parsed = ParseBody(request, swap); !parsed.ok()) {
        return ErrorResponse(parsed);
      }
      swap.set_model(model);
      swap.set_head(head);
      return MessageResponse(Call<v1::HotSwapHeadResponse>(
          *management_, &Management::HotSwapHead, swap, request));
    }
    if (verb == "fit") {
      if (method != "POST") return MethodNotAllowed(method, "POST");
      v1::FitHeadRequest fit;
      if (absl::Status parsed = ParseBody(request, fit); !parsed.ok()) {
        return ErrorResponse(parsed);
      }
      fit.set_model(model);
      fit.set_head(head);
      return MessageResponse(
          Call<v1::FitHeadResponse>(*management_, &Management::FitHead, fit, request));
    }
    if (verb.empty()) {
      if (method != "DELETE") return MethodNotAllowed(method, "DELETE");
      v1::RemoveHeadRequest remove;
      remove.set_model(model);
      remove.set_head(head);
      remove.set_persist(QueryFlag(request.query, "persist"));
      return MessageResponse(Call<v1::RemoveHeadResponse>(
          *management_, &Management::RemoveHead, remove, request));
    }
  }
  return NotFound(request);
}

}  // namespace headway
