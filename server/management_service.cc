#include "server/management_service.h"

#include "model_store/status_macros.h"
#include "server/grpc_status.h"

namespace headway {
namespace {

absl::Status RunHotSwapHead(ModelRegistry& registry,
                            const v1::HotSwapHeadRequest& request,
                            v1::HotSwapHeadResponse& response) {
  HeadSwap swap;
  swap.head = request.head();
  swap.file = request.file();
  swap.checkpoint = request.checkpoint();
  swap.labels_file = request.labels_file();
  swap.key_prefix = request.key_prefix();
  swap.labels.assign(request.labels().begin(), request.labels().end());
  if (request.source_case() == v1::HotSwapHeadRequest::SOURCE_NOT_SET) {
    return absl::InvalidArgumentError("set either file or checkpoint");
  }
  if (request.source_case() == v1::HotSwapHeadRequest::kCheckpoint &&
      swap.checkpoint.empty()) {
    return absl::InvalidArgumentError("checkpoint is empty");
  }
  HEADWAY_ASSIGN_OR_RETURN(
      const SwapResult result,
      registry.SwapHead(request.model(), swap, request.persist(), request.device()));
  response.set_model(request.model());
  response.set_head(result.head.name);
  response.set_head_version(result.head.version);
  response.set_num_classes(static_cast<int32_t>(result.head.num_classes));
  for (const std::string& device : result.devices) response.add_devices(device);
  return absl::OkStatus();
}

}  // namespace

void FillModelStatus(const Model& model, v1::ModelStatus& status) {
  const ModelInfo info = model.Info();
  status.set_name(info.name);
  status.set_version(info.version);
  status.set_device(info.device);
  status.set_state(info.state);
  status.set_feature_dim(static_cast<int32_t>(info.feature_dim));
  status.set_backbone_format(info.backbone_format);
  status.set_epoch(info.epoch);
  status.set_load_report(info.load_report);
  for (const std::string& location : info.saved_locations)
    status.add_saved_locations(location);
  status.set_load_time_ms(info.load_time_ms);
  for (const HeadInfo& head : info.heads) {
    v1::HeadStatus& head_status = *status.add_heads();
    head_status.set_name(head.name);
    head_status.set_version(head.version);
    head_status.set_num_classes(static_cast<int32_t>(head.num_classes));
    head_status.set_is_default(head.is_default);
  }
}

ManagementServiceImpl::ManagementServiceImpl(ModelRegistry* registry, WorkerPool* workers,
                                             ModelHealthCallback on_model_health)
    : registry_(registry),
      workers_(workers),
      on_model_health_(std::move(on_model_health)) {}

grpc::ServerUnaryReactor* ManagementServiceImpl::Defer(
    grpc::CallbackServerContext* context, std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  workers_->Schedule(
      [reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
  return reactor;
}

grpc::ServerUnaryReactor* ManagementServiceImpl::HotSwapHead(
    grpc::CallbackServerContext* context, const v1::HotSwapHeadRequest* request,
    v1::HotSwapHeadResponse* response) {
  return Defer(context, [this, request, response] {
    return RunHotSwapHead(*registry_, *request, *response);
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::RemoveHead(
    grpc::CallbackServerContext* context, const v1::RemoveHeadRequest* request,
    v1::RemoveHeadResponse* /*response*/) {
  return Defer(context, [this, request] {
    return registry_->RemoveHead(request->model(), request->head(), request->persist());
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::LoadModel(
    grpc::CallbackServerContext* context, const v1::LoadModelRequest* request,
    v1::LoadModelResponse* response) {
  return Defer(context, [this, request, response]() -> absl::Status {
    HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model,
                             registry_->LoadModel(request->model(), request->device()));
    FillModelStatus(*model, *response->mutable_status());
    if (on_model_health_) on_model_health_(model->name(), true);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::UnloadModel(
    grpc::CallbackServerContext* context, const v1::UnloadModelRequest* request,
    v1::UnloadModelResponse* response) {
  return Defer(context, [this, request, response]() -> absl::Status {
    HEADWAY_ASSIGN_OR_RETURN(const std::vector<std::string> devices,
                             registry_->UnloadModel(request->model(), request->device()));
    for (const std::string& device : devices) response->add_devices(device);
    if (on_model_health_) {
      on_model_health_(request->model(), !registry_->List(request->model()).empty());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  const std::vector<std::shared_ptr<Model>> models = registry_->List(request->model());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!request->model().empty() && models.empty()) {
    reactor->Finish(ToGrpcStatus(registry_->Find(request->model()).status()));
    return reactor;
  }
  for (const std::shared_ptr<Model>& model : models) {
    FillModelStatus(*model, *response->add_models());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace headway
