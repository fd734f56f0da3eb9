// HeadwayServer: the gRPC server: Headway's inference and management services, the
// standard gRPC health service (SERVING once every model is loaded, per model too)
// and server reflection, over a ModelRegistry.
//
// Thread-safe. Owns the worker pool and the gRPC server; the registry must outlive it.
#ifndef HEADWAY_SERVER_HEADWAY_SERVER_H_
#define HEADWAY_SERVER_HEADWAY_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model_store/model_registry.h"
#include "server/inference_service.h"
#include "server/management_service.h"
#include "server/worker_pool.h"

namespace headway {

class HeadwayServer {
 public:
  struct Options {
    // Listening address; port 0 picks a free port (see port()).
    std::string host = "0.0.0.0";
    int port = 50051;
    // Threads running inference and head loads.
    int worker_threads = 2;
    int max_message_bytes = 64 << 20;
    ModelRegistry* registry = nullptr;
  };

  // Starts listening. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HeadwayServer>> Start(const Options& options);
  ~HeadwayServer();

  // The bound port.
  int port() const { return port_; }

  // Marks every service NOT_SERVING, stops accepting, and lets requests in flight
  // finish until `grace` has passed.
  void Shutdown(absl::Duration grace);

  // Blocks until the server has shut down.
  void Wait();

 private:
  HeadwayServer(const Options& options);

  // The health service's status for a model's service name.
  void SetModelHealth(const std::string& model, bool serving);

  std::unique_ptr<WorkerPool> workers_;
  InferenceServiceImpl inference_;
  ManagementServiceImpl management_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HEADWAY_SERVER_H_
