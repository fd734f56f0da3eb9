// ManagementServiceImpl: headway.v1.ManagementService (FitHead, HotSwapHead,
// RemoveHead, LoadModel, UnloadModel, ListModels) on gRPC's callback API. A thin adapter
// over the registry; holds no model state. Loads and swaps run on the management pool it
// is given, off gRPC's threads and off the threads that serve inference. The RPCs that
// change what is served need an admin (AdminAuthorizer) and are checked before anything
// runs; each is logged and counted in the metrics.
//
// Thread-safe; the registry, pool, authorizer and metrics must outlive it.
#ifndef HEADWAY_SERVER_MANAGEMENT_SERVICE_H_
#define HEADWAY_SERVER_MANAGEMENT_SERVICE_H_

#include <functional>
#include <string>

#include "headway/v1/management.grpc.pb.h"
#include "model_store/model_registry.h"
#include "server/admin_auth.h"
#include "server/fine_tune_jobs.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace headway {

class ManagementServiceImpl final : public v1::ManagementService::CallbackService {
 public:
  // Called with a model's name and whether any instance of it is loaded, after each
  // load and unload (the server's health service follows it).
  using ModelHealthCallback = std::function<void(const std::string& model, bool serving)>;

  // FitHead takes at most `max_fit_examples` examples. `jobs` runs the fine-tuning
  // jobs.
  ManagementServiceImpl(ModelRegistry* registry, WorkerPool* workers,
                        const AdminAuthorizer* admin, ServerMetrics* metrics,
                        ModelHealthCallback on_model_health, int64_t max_fit_examples,
                        FineTuneJobs* jobs);

  grpc::ServerUnaryReactor* FitHead(grpc::CallbackServerContext* context,
                                    const v1::FitHeadRequest* request,
                                    v1::FitHeadResponse* response) override;

  grpc::ServerUnaryReactor* StartFineTune(grpc::CallbackServerContext* context,
                                          const v1::StartFineTuneRequest* request,
                                          v1::StartFineTuneResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJob(grpc::CallbackServerContext* context,
                                              const v1::GetJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;

  grpc::ServerUnaryReactor* HotSwapHead(grpc::CallbackServerContext* context,
                                        const v1::HotSwapHeadRequest* request,
                                        v1::HotSwapHeadResponse* response) override;
  grpc::ServerUnaryReactor* RemoveHead(grpc::CallbackServerContext* context,
                                       const v1::RemoveHeadRequest* request,
                                       v1::RemoveHeadResponse* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

  // For the RPCs of other protocols that manage models (the Open Inference Protocol's
  // repository extension): checks that the caller is an admin, then runs `work` on
  // the management pool and finishes the call with its status.
  grpc::ServerUnaryReactor* DeferAdmin(grpc::CallbackServerContext* context,
                                       const char* rpc,
                                       std::function<absl::Status()> work);
  // LoadModel's and UnloadModel's work, logged, counted and told to the health
  // service; run them on the management pool (DeferAdmin).
  absl::StatusOr<std::shared_ptr<Model>> Load(const std::string& model,
                                              const std::string& device);
  absl::StatusOr<std::vector<std::string>> Unload(const std::string& model,
                                                  const std::string& device);

 private:
  ModelRegistry* registry_;
  WorkerPool* workers_;
  const AdminAuthorizer* admin_;
  ServerMetrics* metrics_;
  ModelHealthCallback on_model_health_;
  const int64_t max_fit_examples_;
  FineTuneJobs* jobs_;
};

// Fills a ModelStatus from a model instance.
void FillModelStatus(const Model& model, v1::ModelStatus& status);

}  // namespace headway

#endif  // HEADWAY_SERVER_MANAGEMENT_SERVICE_H_
