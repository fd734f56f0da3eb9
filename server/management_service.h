// ManagementServiceImpl: headway.v1.ManagementService (HotSwapHead, ListModels) on
// gRPC's callback API. A thin adapter over the registry; holds no model state.
// Head loads run on the worker pool, off gRPC's threads.
//
// Thread-safe; the registry and pool must outlive it.
#ifndef HEADWAY_SERVER_MANAGEMENT_SERVICE_H_
#define HEADWAY_SERVER_MANAGEMENT_SERVICE_H_

#include "headway/v1/management.grpc.pb.h"
#include "model_store/model_registry.h"
#include "server/worker_pool.h"

namespace headway {

class ManagementServiceImpl final : public v1::ManagementService::CallbackService {
 public:
  ManagementServiceImpl(const ModelRegistry* registry, WorkerPool* workers);

  grpc::ServerUnaryReactor* HotSwapHead(grpc::CallbackServerContext* context,
                                        const v1::HotSwapHeadRequest* request,
                                        v1::HotSwapHeadResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  const ModelRegistry* registry_;
  WorkerPool* workers_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_MANAGEMENT_SERVICE_H_
