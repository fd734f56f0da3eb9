// InferenceServiceImpl: headway.v1.InferenceService (Embed, Classify,
// GetModelMetadata) on gRPC's callback API. A thin adapter: it converts wire messages
// to the core's types, looks the model up in the registry and runs the request on the
// worker pool (metadata answers on the gRPC thread). It holds no model state. Every
// inference call is counted in the metrics; failures are logged.
//
// Failures are logged with the requested model and head in fields of their own;
// client errors at a bounded rate (ClientErrorLog), server faults each.
//
// Every call takes ServeInference's path: the server's CallGate (a bound on calls in
// flight, and the shutdown's hold and refusal), the model's admission, a worker.
//
// Thread-safe; the registry, pool, gate and metrics must outlive it.
#ifndef HEADWAY_SERVER_INFERENCE_SERVICE_H_
#define HEADWAY_SERVER_INFERENCE_SERVICE_H_

#include "headway/v1/inference.grpc.pb.h"
#include "model_store/model_registry.h"
#include "server/call_gate.h"
#include "server/client_error_log.h"
#include "server/inference_call.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace headway {

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  InferenceServiceImpl(const ModelRegistry* registry, WorkerPool* workers, CallGate* gate,
                       ServerMetrics* metrics);

  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const v1::EmbedRequest* request,
                                  v1::EmbedResponse* response) override;
  grpc::ServerUnaryReactor* GetModelMetadata(
      grpc::CallbackServerContext* context, const v1::GetModelMetadataRequest* request,
      v1::GetModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;

 private:
  // One inference call: ServeInference's admission, then on a worker the inputs'
  // conversion and `start` (the model's async call), whose result `fill` writes into
  // the response, returning the head that answered ("" for none).
  template <typename Result, typename Request, typename Start, typename Fill>
  grpc::ServerUnaryReactor* Serve(const char* rpc, grpc::CallbackServerContext* context,
                                  const Request* request,
                                  absl::string_view requested_head, Start start,
                                  Fill fill);

  ClientErrorLog errors_;
  const InferenceServing serving_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_INFERENCE_SERVICE_H_
