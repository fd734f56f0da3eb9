#include "server/management_service.h"

#include <algorithm>
#include <deque>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
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
  status.set_precision(info.precision);
  status.set_precision_note(info.precision_note);
  for (const HeadInfo& head : info.heads) {
    v1::HeadStatus& head_status = *status.add_heads();
    head_status.set_name(head.name);
    head_status.set_version(head.version);
    head_status.set_num_classes(static_cast<int32_t>(head.num_classes));
    head_status.set_is_default(head.is_default);
    head_status.set_digest(head.digest);
    head_status.set_source(head.source);
  }
}

ManagementServiceImpl::ManagementServiceImpl(ModelRegistry* registry, WorkerPool* workers,
                                             const AdminAuthorizer* admin,
                                             ServerMetrics* metrics,
                                             ModelHealthCallback on_model_health,
                                             int64_t max_fit_examples, FineTuneJobs* jobs)
    : registry_(registry),
      workers_(workers),
      admin_(admin),
      metrics_(metrics),
      on_model_health_(std::move(on_model_health)),
      max_fit_examples_(max_fit_examples),
      jobs_(jobs) {}

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
    const std::string model = KnownModel(*registry_, request->model());
    metrics_->RecordHeadFit(model, status.ok());
    metrics_->RecordHeadSwap(model, status.ok(), duration);
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

grpc::ServerUnaryReactor* ManagementServiceImpl::StartFineTune(
    grpc::CallbackServerContext* context, const v1::StartFineTuneRequest* request,
    v1::StartFineTuneResponse* response) {
  return DeferAdmin(context, "StartFineTune", [this, request, response] {
    absl::StatusOr<v1::Job> job = jobs_->Start(*request);
    LogEvent(job.ok() ? LogLevel::kInfo : LogLevel::kWarning,
             job.ok() ? "fine_tune_queued" : "fine_tune_refused",
             {{"model", EchoName(request->model())},
              {"job", job.ok() ? job->id() : ""},
              {"output_model", job.ok() ? job->output_model() : ""},
              {"examples", absl::StrCat(request->inputs_size())},
              {"examples_dir", EchoName(request->examples_dir())},
              {"message", std::string(job.status().message())}});
    if (!job.ok()) return job.status();
    *response->mutable_job() = *std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::GetJob(
    grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
    v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::Job> job = jobs_->Get(request->id());
  if (job.ok()) *response = *std::move(job);
  reactor->Finish(ToGrpcStatus(job.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ManagementServiceImpl::CancelJob(
    grpc::CallbackServerContext* context, const v1::CancelJobRequest* request,
    v1::Job* response) {
  return DeferAdmin(context, "CancelJob", [this, request, response] {
    absl::StatusOr<v1::Job> job = jobs_->Cancel(request->id());
    if (!job.ok()) return job.status();
    *response = *std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ManagementServiceImpl::ListJobs(
    grpc::CallbackServerContext* context, const v1::ListJobsRequest* /*request*/,
    v1::ListJobsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  for (v1::Job& job : jobs_->List()) *response->add_jobs() = std::move(job);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

namespace {

// WatchJob's stream: the job now, then each change FineTuneJobs publishes, one write
// at a time (a change that arrives during a write replaces any older one waiting),
// until a write carries an ended state, the client goes away or the server stops.
class JobWatch : public grpc::ServerWriteReactor<v1::Job> {
 public:
  JobWatch(FineTuneJobs* jobs, std::string id) : jobs_(jobs), id_(std::move(id)) {
    absl::StatusOr<int64_t> token =
        jobs_->Watch(id_, [this](const v1::Job& job) { OnChange(job); });
    absl::MutexLock lock(&mu_);
    if (!token.ok()) {
      finished_ = true;
      Finish(ToGrpcStatus(token.status()));
      return;
    }
    token_ = *token;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (finished_) return;
    if (!ok) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the watch's stream broke"));
      return;
    }
    const v1::Job::State state = written_.state();
    if (state == v1::Job::SUCCEEDED || state == v1::Job::FAILED ||
        state == v1::Job::CANCELLED) {
      finished_ = true;
      Finish(grpc::Status::OK);
      return;
    }
    if (!waiting_.empty()) WriteWaiting();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (finished_ || writing_) return;  // a write in flight ends with !ok
    finished_ = true;
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped watching"));
  }

  void OnDone() override {
    jobs_->Unwatch(id_, token_);
    delete this;
  }

 private:
  // Called by FineTuneJobs under its lock. A step's update waiting to be written is
  // replaced by a newer one; an epoch's end or a change of state is always written.
  void OnChange(const v1::Job& job) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    const v1::Job& before =
        waiting_.size() >= 2 ? waiting_[waiting_.size() - 2] : written_;
    if (!waiting_.empty() && !Milestone(waiting_.back(), before)) {
      waiting_.back() = job;
    } else {
      waiting_.push_back(job);
    }
    if (!writing_) WriteWaiting();
  }

  static bool Milestone(const v1::Job& job, const v1::Job& before) {
    return job.epoch_done() || job.state() != before.state();
  }

  void WriteWaiting() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    written_ = std::move(waiting_.front());
    waiting_.pop_front();
    writing_ = true;
    StartWrite(&written_);
  }

  FineTuneJobs* const jobs_;
  const std::string id_;
  int64_t token_ = 0;
  absl::Mutex mu_;
  v1::Job written_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::Job> waiting_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::Job>* ManagementServiceImpl::WatchJob(
    grpc::CallbackServerContext* /*context*/, const v1::GetJobRequest* request) {
  return new JobWatch(jobs_, request->id());
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
