#include "server/management_service.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "server/event_log.h"
#include "server/fit_head.h"
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

// `name` when it is loaded or a folder of the store, else "": metric labels come from
// the server's models, never from arbitrary request text.
std::string KnownModel(const ModelRegistry& registry, const std::string& name) {
  const std::vector<std::string> models = registry.StoreModels();
  const bool known = std::find(models.begin(), models.end(), name) != models.end() ||
                     registry.Find(name).ok();
  return known ? name : "";
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
  status.set_optimized(info.optimized);
  status.set_optimize_note(info.optimize_note);
  status.set_serving(info.serving.summary);
  for (const HeadInfo& head : info.heads) {
    v1::HeadStatus& head_status = *status.add_heads();
    head_status.set_name(head.name);
    head_status.set_version(head.version);
    head_status.set_num_classes(static_cast<int32_t>(head.num_classes));
    head_status.set_is_default(head.is_default);
    head_status.set_digest(head.digest);
  }
}

ManagementServiceImpl::ManagementServiceImpl(ModelRegistry* registry, WorkerPool* workers,
                                             const AdminAuthorizer* admin,
                                             ServerMetrics* metrics,
                                             ModelHealthCallback on_model_health,
                                             int64_t max_fit_examples)
    : registry_(registry),
      workers_(workers),
      admin_(admin),
      metrics_(metrics),
      on_model_health_(std::move(on_model_health)),
      max_fit_examples_(max_fit_examples) {}

grpc::ServerUnaryReactor* ManagementServiceImpl::DeferAdmin(
    grpc::CallbackServerContext* context, const char* rpc,
    std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Status authorized = admin_->Authorize(*context);
  if (!authorized.ok()) {
    LogEvent(LogLevel::kWarning, "admin_refused",
             {{"rpc", rpc},
              {"peer", context->peer()},
              {"code", absl::StatusCodeToString(authorized.code())}});
    reactor->Finish(ToGrpcStatus(authorized));
    return reactor;
  }
  workers_->Schedule(
      [reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
  return reactor;
}

grpc::ServerUnaryReactor* ManagementServiceImpl::HotSwapHead(
    grpc::CallbackServerContext* context, const v1::HotSwapHeadRequest* request,
    v1::HotSwapHeadResponse* response) {
  return DeferAdmin(context, "HotSwapHead", [this, request, response] {
    const absl::Time start = absl::Now();
    const absl::Status status = RunHotSwapHead(*registry_, *request, *response);
    const absl::Duration duration = absl::Now() - start;
    metrics_->RecordHeadSwap(KnownModel(*registry_, request->model()), status.ok(),
                             duration);
    LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarning,
             status.ok() ? "head_swapped" : "head_swap_failed",
             {{"model", request->model()},
              {"head", request->head()},
              {"version", absl::StrCat(response->head_version())},
              {"devices", absl::StrJoin(response->devices(), ",")},
              {"persist", request->persist() ? "true" : "false"},
              {"duration_ms", absl::StrCat(absl::ToDoubleMilliseconds(duration))},
              {"message", std::string(status.message())}});
    return status;
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::FitHead(
    grpc::CallbackServerContext* context, const v1::FitHeadRequest* request,
    v1::FitHeadResponse* response) {
  return DeferAdmin(context, "FitHead", [this, request, response] {
    const absl::Time start = absl::Now();
    const absl::Status status =
        RunFitHead(*registry_, *request, max_fit_examples_, *response);
    const absl::Duration duration = absl::Now() - start;
    metrics_->RecordHeadSwap(KnownModel(*registry_, request->model()), status.ok(),
                             duration);
    LogEvent(
        status.ok() ? LogLevel::kInfo : LogLevel::kWarning,
        status.ok() ? "head_fitted" : "head_fit_failed",
        {{"model", EchoName(request->model())},
         {"head", EchoName(request->head())},
         {"version", absl::StrCat(response->head_version())},
         {"examples", absl::StrCat(request->inputs_size() + request->embeddings_size())},
         {"classes", absl::StrCat(response->classes_size())},
         {"validation_accuracy", absl::StrCat(response->validation_accuracy())},
         {"embed_ms", absl::StrCat(response->embed_ms())},
         {"fit_ms", absl::StrCat(response->fit_ms())},
         {"install_ms", absl::StrCat(response->install_ms())},
         {"persist", request->persist() ? "true" : "false"},
         {"message", std::string(status.message())}});
    return status;
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::RemoveHead(
    grpc::CallbackServerContext* context, const v1::RemoveHeadRequest* request,
    v1::RemoveHeadResponse* /*response*/) {
  return DeferAdmin(context, "RemoveHead", [this, request] {
    const absl::Status status =
        registry_->RemoveHead(request->model(), request->head(), request->persist());
    LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarning,
             status.ok() ? "head_removed" : "head_removal_failed",
             {{"model", request->model()},
              {"head", request->head()},
              {"message", std::string(status.message())}});
    return status;
  });
}

absl::StatusOr<std::shared_ptr<Model>> ManagementServiceImpl::Load(
    const std::string& model_name, const std::string& device) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::shared_ptr<Model>> model = registry_->LoadModel(model_name, device);
  const absl::Duration duration = absl::Now() - start;
  metrics_->RecordModelLoad(KnownModel(*registry_, model_name), model.ok(), duration);
  LogEvent(model.ok() ? LogLevel::kInfo : LogLevel::kWarning,
           model.ok() ? "model_loaded" : "model_load_failed",
           {{"model", model_name},
            {"device", model.ok() ? (*model)->device() : device},
            {"duration_ms", absl::StrCat(absl::ToDoubleMilliseconds(duration))},
            {"serving", model.ok() ? (*model)->Info().serving.summary : ""},
            {"message", std::string(model.status().message())}});
  if (model.ok() && on_model_health_) on_model_health_((*model)->name(), true);
  return model;
}

absl::StatusOr<std::vector<std::string>> ManagementServiceImpl::Unload(
    const std::string& model, const std::string& device) {
  absl::StatusOr<std::vector<std::string>> devices =
      registry_->UnloadModel(model, device);
  LogEvent(devices.ok() ? LogLevel::kInfo : LogLevel::kWarning,
           devices.ok() ? "model_unloaded" : "model_unload_failed",
           {{"model", model},
            {"devices", devices.ok() ? absl::StrJoin(*devices, ",") : ""},
            {"message", std::string(devices.status().message())}});
  if (devices.ok() && on_model_health_) {
    on_model_health_(model, !registry_->List(model).empty());
  }
  return devices;
}

grpc::ServerUnaryReactor* ManagementServiceImpl::LoadModel(
    grpc::CallbackServerContext* context, const v1::LoadModelRequest* request,
    v1::LoadModelResponse* response) {
  return DeferAdmin(context, "LoadModel", [this, request, response]() -> absl::Status {
    HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model,
                             Load(request->model(), request->device()));
    FillModelStatus(*model, *response->mutable_status());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::UnloadModel(
    grpc::CallbackServerContext* context, const v1::UnloadModelRequest* request,
    v1::UnloadModelResponse* response) {
  return DeferAdmin(context, "UnloadModel", [this, request, response]() -> absl::Status {
    HEADWAY_ASSIGN_OR_RETURN(const std::vector<std::string> devices,
                             Unload(request->model(), request->device()));
    for (const std::string& device : devices) response->add_devices(device);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  const std::vector<std::shared_ptr<Model>> models = registry_->List(request->model());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::map<std::string, ModelRecord> records;
  for (ModelRecord& record : registry_->Records()) {
    if (request->model().empty() || record.name == request->model()) {
      records[record.name] = std::move(record);
    }
  }
  if (!request->model().empty() && records.empty()) {
    reactor->Finish(ToGrpcStatus(registry_->Find(request->model()).status()));
    return reactor;
  }
  for (const std::shared_ptr<Model>& model : models) {
    v1::ModelStatus& status = *response->add_models();
    FillModelStatus(*model, status);
    auto record = records.find(model->name());
    if (record != records.end()) status.set_error(record->second.error);
  }
  for (const auto& [name, record] : records) {
    if (record.instances > 0) continue;
    v1::ModelStatus& status = *response->add_models();
    status.set_name(name);
    status.set_state(record.state);
    status.set_error(record.error);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace headway
