// OpenInferenceServiceImpl: the Open Inference Protocol (KServe v2),
// inference.GRPCInferenceService, on the server's gRPC port beside headway.v1.
//
// ModelInfer takes the same path as headway.v1's Embed and Classify (ServeInference:
// the call gate, the model's admission, a worker, the model's batcher), so one
// backbone pass can mix both protocols' requests, under the same limits, metrics (rpc
// label "ModelInfer") and logs. Its tensors map onto Headway's inputs and outputs as
// open_inference_tensors.h says. Health and metadata answer on the gRPC thread;
// RepositoryModelLoad and RepositoryModelUnload need an admin and run on the
// management pool, as LoadModel and UnloadModel do.
//
// Thread-safe; everything it is given must outlive it.
#ifndef HEADWAY_SERVER_OPEN_INFERENCE_SERVICE_H_
#define HEADWAY_SERVER_OPEN_INFERENCE_SERVICE_H_

#include <functional>

#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/inference_call.h"
#include "server/management_service.h"

namespace headway {

class OpenInferenceServiceImpl final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // `ready` says whether the server takes inference (every model of the store at start
  // loaded or failed, and not draining). `management` runs the repository extension's
  // loads and unloads.
  OpenInferenceServiceImpl(const ModelRegistry* registry, WorkerPool* workers,
                           CallGate* gate, ServerMetrics* metrics,
                           ManagementServiceImpl* management,
                           std::function<bool()> ready);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context, const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(
      grpc::CallbackServerContext* context,
      const inference::RepositoryIndexRequest* request,
      inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

 private:
  ClientErrorLog errors_;
  const InferenceServing serving_;
  ManagementServiceImpl* const management_;
  const std::function<bool()> ready_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_OPEN_INFERENCE_SERVICE_H_
