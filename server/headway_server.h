// HeadwayServer: the gRPC server: Headway's inference and management services, the
// standard gRPC health service and server reflection, over a ModelRegistry.
//
// Health: the whole server ("") and each model of the store (its name) say
// NOT_SERVING from Start until MarkServing (called once every model is loaded and
// warmed up); after that a model's status follows LoadModel and UnloadModel. Drain
// sets every status to NOT_SERVING while calls are still accepted, so load balancers
// and readiness probes move traffic away before Shutdown stops accepting.
//
// Thread-safe. Owns the worker pool and the gRPC server; the registry and metrics must
// outlive it.
#ifndef HEADWAY_SERVER_HEADWAY_SERVER_H_
#define HEADWAY_SERVER_HEADWAY_SERVER_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model_store/model_registry.h"
#include "server/admin_auth.h"
#include "server/inference_service.h"
#include "server/management_service.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace headway {

class HeadwayServer {
 public:
  struct Options {
    // Listening address; port 0 picks a free port (see port()).
    std::string host = "0.0.0.0";
    int port = 50051;
    // Plaintext when null.
    std::shared_ptr<grpc::ServerCredentials> credentials;
    // Threads running inference and head loads.
    int worker_threads = 2;
    int max_message_bytes = 64 << 20;
    // Who may call the management RPCs that change what is served.
    AdminAuthorizer::Options admin;
    ModelRegistry* registry = nullptr;
    ServerMetrics* metrics = nullptr;
  };

  // Starts listening. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HeadwayServer>> Start(const Options& options);
  ~HeadwayServer();

  // The bound port.
  int port() const { return port_; }

  // Every loaded model, and the server, say SERVING.
  void MarkServing();

  // Every service says NOT_SERVING; calls are still accepted.
  void Drain();

  // Drains, stops accepting, and lets requests in flight finish until `grace` has
  // passed.
  void Shutdown(absl::Duration grace);

  // Blocks until the server has shut down.
  void Wait();

 private:
  explicit HeadwayServer(const Options& options);

  // The health service's status for a model's service name.
  void SetModelHealth(const std::string& model, bool serving);

  ModelRegistry* const registry_;
  const AdminAuthorizer admin_;
  std::unique_ptr<WorkerPool> workers_;
  InferenceServiceImpl inference_;
  ManagementServiceImpl management_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HEADWAY_SERVER_H_
