#include "server/open_inference_service.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model_store/model_config.h"
#include "server/grpc_status.h"
#include "server/open_inference_tensors.h"
#include "version/version.h"

namespace headway {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// NOT_FOUND unless `version` is empty or `model`'s.
absl::Status CheckVersion(const Model& model, absl::string_view version) {
  const std::string serving = absl::StrCat(model.config().version());
  if (version.empty() || version == serving) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model \"", model.name(), "\" serves version ",
                                          serving, ", not \"", EchoName(version), "\""));
}

// The request's "head" parameter, for the log ("" when absent or not a string).
absl::string_view RequestedHead(const inference::ModelInferRequest& request) {
  auto head = request.parameters().find("head");
  if (head == request.parameters().end() ||
      head->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return "";
  }
  return head->second.string_param();
}

}  // namespace

OpenInferenceServiceImpl::OpenInferenceServiceImpl(const ModelRegistry* registry,
                                                   WorkerPool* workers, CallGate* gate,
                                                   ServerMetrics* metrics,
                                                   ManagementServiceImpl* management,
                                                   std::function<bool()> ready)
    : serving_{registry, workers, gate, metrics, &errors_},
      management_(management),
      ready_(std::move(ready)) {}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(ready_());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::StatusOr<std::shared_ptr<Model>> model = serving_.registry->Find(request->name());
  if (!model.ok()) {
    // A model the registry knows (loading, failed, unloaded) is not ready; an unknown
    // one is NOT_FOUND. From memory: no store listing per call.
    for (const ModelRecord& record : serving_.registry->Records()) {
      if (record.name == request->name()) return Answer(context, absl::OkStatus());
    }
    return Answer(context, model.status());
  }
  const absl::Status version = CheckVersion(**model, request->version());
  response->set_ready(version.ok());
  return Answer(context, version.code() == absl::StatusCode::kNotFound ? absl::OkStatus()
                                                                       : version);
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("headway");
  response->set_version(HeadwayVersion());
  response->add_extensions("classification");
  response->add_extensions("model_repository");
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::StatusOr<std::shared_ptr<Model>> model = serving_.registry->Find(request->name());
  if (!model.ok()) return Answer(context, model.status());
  if (absl::Status version = CheckVersion(**model, request->version()); !version.ok()) {
    return Answer(context, version);
  }
  FillOpenInferenceMetadata((*model)->Info(), (*model)->config().input(), *response);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  const absl::Time arrived = absl::Now();
  const CallWork work =
      IsOneFp32Input(*request) ? CallWork::kGrpcThread : CallWork::kWorker;
  return ServeInference(
      serving_, "ModelInfer", context, request->model_name(), "", RequestedHead(*request),
      work,
      [request, response, arrived](const std::shared_ptr<Model>& model,
                                   RequestControl control, const InferenceCall& call) {
        if (absl::Status version = CheckVersion(*model, request->model_version());
            !version.ok()) {
          return call.Finish(version, model->name());
        }
        // The "timeout" parameter tightens the transport's deadline (HTTP clients
        // have no other way to send one); the batcher keeps whichever comes first.
        absl::StatusOr<absl::Duration> timeout = RequestedTimeout(*request);
        if (!timeout.ok()) return call.Finish(timeout.status(), model->name());
        control.deadline = std::min(control.deadline, arrived + *timeout);
        absl::StatusOr<OpenInferenceOutputs> outputs =
            ToOpenInferenceOutputs(*request, model->has_heads());
        if (!outputs.ok()) return call.Finish(outputs.status(), model->name());
        absl::StatusOr<OpenInferenceInputs> inputs =
            ToOpenInferenceInputs(*request, model->config().input());
        if (!inputs.ok()) return call.Finish(inputs.status(), model->name());

        InferOptions options;
        options.embed = outputs->wants(kEmbeddingOutput);
        options.l2_normalize = outputs->l2_normalize;
        options.classify = outputs->wants(kProbabilitiesOutput);
        options.head = outputs->head;
        // Every class's probability, unless only the top k are asked for.
        options.top_k = std::numeric_limits<int>::max();
        for (const OpenInferenceOutputs::Output& output : outputs->outputs) {
          if (output.name == kProbabilitiesOutput && output.classification > 0) {
            options.top_k = static_cast<int>(std::min<int64_t>(
                output.classification, std::numeric_limits<int>::max()));
          }
        }
        model->InferAsync(
            inputs->views, options, std::move(control),
            [model, call, request, response, outputs = *std::move(outputs),
             raw = inputs->raw](absl::StatusOr<InferResult> result) {
              ServeGuarded(call, [&] {
                if (!result.ok()) return call.Finish(result.status(), model->name());
                response->set_model_name(model->name());
                response->set_model_version(absl::StrCat(model->config().version()));
                response->set_id(request->id());
                const ClassifyResult* classified =
                    result->classified ? &*result->classified : nullptr;
                FillOpenInferenceResponse(outputs,
                                          result->embedded ? &*result->embedded : nullptr,
                                          classified, raw, *response);
                call.Finish(absl::OkStatus(), model->name(),
                            classified != nullptr ? classified->head : "");
              });
            });
      });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  for (const ModelRecord& record : serving_.registry->Records()) {
    const bool ready = record.instances > 0;
    if (request->ready() && !ready) continue;
    auto& index = *response->add_models();
    index.set_name(record.name);
    absl::StatusOr<std::shared_ptr<Model>> model = serving_.registry->Find(record.name);
    if (model.ok()) index.set_version(absl::StrCat((*model)->config().version()));
    // The protocol's states: READY, UNAVAILABLE (with a reason), LOADING, UNLOADING.
    index.set_state(ready                       ? "READY"
                    : record.state == "LOADING" ? "LOADING"
                                                : "UNAVAILABLE");
    index.set_reason(record.error.empty() && !ready ? record.state : record.error);
  }
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::RepositoryModelLoad(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  return management_->DeferAdmin(context, "RepositoryModelLoad", [this, request] {
    return management_->Load(request->model_name(), "").status();
  });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::RepositoryModelUnload(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  return management_->DeferAdmin(context, "RepositoryModelUnload", [this, request] {
    return management_->Unload(request->model_name(), "").status();
  });
}

}  // namespace headway
