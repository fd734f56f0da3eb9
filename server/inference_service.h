// InferenceServiceImpl: headway.v1.InferenceService (Embed, Classify) on gRPC's
// callback API. A thin adapter: it converts wire messages to the core's types, looks
// the model up in the registry and runs the request on the worker pool. It holds no
// model state. Every call is counted in the metrics; failures are logged.
//
// Admission is bounded: at most `max_in_flight` calls are between arrival and answer
// (queued for a worker, preprocessing, waiting for a batch or running); a call beyond
// that gets RESOURCE_EXHAUSTED at once, naming the limit, so overload is shed instead
// of piling up in front of the batchers.
//
// Thread-safe; the registry, pool and metrics must outlive it.
#ifndef HEADWAY_SERVER_INFERENCE_SERVICE_H_
#define HEADWAY_SERVER_INFERENCE_SERVICE_H_

#include <atomic>

#include "headway/v1/inference.grpc.pb.h"
#include "model_store/model_registry.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace headway {

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  InferenceServiceImpl(const ModelRegistry* registry, WorkerPool* workers,
                       ServerMetrics* metrics, int max_in_flight);

  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const v1::EmbedRequest* request,
                                  v1::EmbedResponse* response) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;

 private:
  // Counts the call in flight when the server has room; else answers it
  // RESOURCE_EXHAUSTED (counted in the metrics) and returns false.
  bool Admit(const char* rpc, grpc::ServerUnaryReactor* reactor);

  const ModelRegistry* registry_;
  WorkerPool* workers_;
  ServerMetrics* metrics_;
  const int max_in_flight_;
  std::atomic<int> in_flight_{0};
};

}  // namespace headway

#endif  // HEADWAY_SERVER_INFERENCE_SERVICE_H_
