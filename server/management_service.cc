#include "server/management_service.h"

#include "model_store/status_macros.h"
#include "server/grpc_status.h"

namespace headway {
namespace {

absl::Status RunHotSwapHead(const ModelRegistry& registry,
                            const v1::HotSwapHeadRequest& request,
                            v1::HotSwapHeadResponse& response) {
  HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model,
                           registry.Find(request.model()));
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
  HEADWAY_ASSIGN_OR_RETURN(const HeadInfo head, model->SwapHead(swap));
  response.set_model(model->name());
  response.set_head(head.name);
  response.set_head_version(head.version);
  response.set_num_classes(static_cast<int32_t>(head.num_classes));
  return absl::OkStatus();
}

void FillListModels(const ModelRegistry& registry, v1::ListModelsResponse& response) {
  for (const std::shared_ptr<Model>& model : registry.List()) {
    const ModelInfo info = model->Info();
    v1::ModelStatus& status = *response.add_models();
    status.set_name(info.name);
    status.set_version(info.version);
    status.set_device(info.device);
    status.set_state(info.state);
    status.set_feature_dim(static_cast<int32_t>(info.feature_dim));
    status.set_backbone_format(info.backbone_format);
    status.set_epoch(info.epoch);
    status.set_load_report(info.load_report);
    for (const std::string& location : info.saved_locations) {
      status.add_saved_locations(location);
    }
    status.set_load_time_ms(info.load_time_ms);
    for (const HeadInfo& head : info.heads) {
      v1::HeadStatus& head_status = *status.add_heads();
      head_status.set_name(head.name);
      head_status.set_version(head.version);
      head_status.set_num_classes(static_cast<int32_t>(head.num_classes));
      head_status.set_is_default(head.is_default);
    }
  }
}

}  // namespace

ManagementServiceImpl::ManagementServiceImpl(const ModelRegistry* registry,
                                             WorkerPool* workers)
    : registry_(registry), workers_(workers) {}

grpc::ServerUnaryReactor* ManagementServiceImpl::HotSwapHead(
    grpc::CallbackServerContext* context, const v1::HotSwapHeadRequest* request,
    v1::HotSwapHeadResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  workers_->Schedule([this, reactor, request, response] {
    reactor->Finish(ToGrpcStatus(RunHotSwapHead(*registry_, *request, *response)));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ManagementServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* /*request*/,
    v1::ListModelsResponse* response) {
  FillListModels(*registry_, *response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace headway
