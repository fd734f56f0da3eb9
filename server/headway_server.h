// HeadwayServer: the gRPC server: Headway's inference and management services, the
// Open Inference Protocol (KServe v2) on the same port, the standard gRPC health
// service and server reflection, over a ModelRegistry.
//
// Health: each model of the store (its name) says SERVING while an instance of it is
// loaded (UpdateModelHealth, after every load, unload and store change); the whole
// server ("") says NOT_SERVING from Start until MarkServing (called once every model
// the store held at start is serving or has failed). Drain sets every status to
// NOT_SERVING while calls are still accepted, so load balancers and readiness probes
// move traffic away before Shutdown stops accepting.
//
// Inference runs on the worker pool; management calls (loads, unloads, swaps) on a
// management pool of their own, at a lower priority (kBackgroundNiceness), so they
// never occupy a thread inference needs nor take its CPU time. A request whose bytes
// do not parse is answered INVALID_ARGUMENT (UnparsedRequestInterceptorFactory).
//
// Thread-safe. Owns both pools and the gRPC server; the registry and metrics must
// outlive it.
#ifndef HEADWAY_SERVER_HEADWAY_SERVER_H_
#define HEADWAY_SERVER_HEADWAY_SERVER_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model_store/model_registry.h"
#include "server/admin_auth.h"
#include "server/call_gate.h"
#include "server/client_error_log.h"
#include "server/inference_service.h"
#include "server/management_service.h"
#include "server/open_inference_service.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace headway {

// Calls one client connection may have open at once unless --max_concurrent_streams
// says otherwise (headway_loadgen's kCallsPerChannel follows it).
inline constexpr int kDefaultMaxConcurrentStreams = 256;

class HeadwayServer {
 public:
  struct Options {
    // Listening address; port 0 picks a free port (see port()).
    std::string host = "0.0.0.0";
    int port = 50051;
    // Plaintext when null.
    std::shared_ptr<grpc::ServerCredentials> credentials;
    // Threads running inference requests.
    int worker_threads = 2;
    // Threads running management calls (loads, unloads, head swaps).
    int management_threads = 2;
    // Inference calls between arrival and answer at most; more get
    // RESOURCE_EXHAUSTED at once.
    int max_requests_in_flight = 1024;
    // HTTP/2 streams (calls) each client connection may have open at once; a client
    // holds its further calls until one ends, so a flood from one connection waits
    // in that client, not in the server's memory, and its calls that time out there
    // cost the server nothing. 0: gRPC's default (no limit).
    int max_concurrent_streams = kDefaultMaxConcurrentStreams;
    // How long a client connection lives: then the server sends GOAWAY (gRPC adds
    // +-10% jitter), calls in progress finish on it, and the client's next calls go
    // out on a new connection, resolving the target again, so clients of a fleet
    // behind one name (a headless Service) find replicas added since they connected.
    // Infinite: connections live until the client closes them.
    absl::Duration max_connection_age = absl::Minutes(5);
    // A unix socket the server also listens on, plaintext, with every service: for
    // local clients such as a container's health check, which then need not know the
    // port or the TLS settings. Empty: none. A folder the server cannot write to
    // (a read-only root filesystem) skips it with a warning.
    std::string local_socket;
    int max_message_bytes = 64 << 20;
    // Examples one FitHead call or fine-tuning job takes at most.
    int64_t max_fit_examples = 20000;
    // Intra-op threads of the running fine-tuning job (jobs run one at a time).
    int fine_tune_threads = 1;
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

  // Admin calls need `token` instead of the bearer token they needed (a rotated
  // token file); a server started without a token takes none. Thread-safe.
  void ReplaceAdminToken(std::string token) { admin_.ReplaceToken(std::move(token)); }

  // The server says SERVING (and each model as UpdateModelHealth would).
  void MarkServing();

  // `model` says SERVING when an instance of it is loaded, else NOT_SERVING.
  void UpdateModelHealth(const std::string& model);

  // Every service says NOT_SERVING; calls are still accepted.
  void Drain();

  // Drains, then stops: inference calls that arrive from now on are held, the ones in
  // flight may finish until `grace` has passed, gRPC stops accepting (telling clients
  // to go away), and the held calls get UNAVAILABLE (CallGate). Clients never see
  // CANCELLED unless calls are still running when `grace` ends.
  void Shutdown(absl::Duration grace);

  // Blocks until the server has shut down.
  void Wait();

  // A channel to this server's services that stays inside the process (no socket, no
  // TLS), for the HTTP gateway.
  std::shared_ptr<grpc::Channel> InProcessChannel() const;

 private:
  explicit HeadwayServer(const Options& options);
  static FineTuneJobs::Options FineTuneJobsOptions(const Options& options,
                                                   HeadwayServer* server);

  ModelRegistry* const registry_;
  AdminAuthorizer admin_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<WorkerPool> management_workers_;
  CallGate gate_;
  // Before management_, which uses it; reset first in the destructor, since its
  // jobs load models through management_.
  std::unique_ptr<FineTuneJobs> jobs_;
  InferenceServiceImpl inference_;
  ManagementServiceImpl management_;
  OpenInferenceServiceImpl open_inference_;
  // Requests that do not parse (UnparsedRequestInterceptorFactory), logged at its rate.
  ClientErrorLog unparsed_requests_;
  std::unique_ptr<grpc::Server> server_;
  // Between MarkServing and Drain (the Open Inference Protocol's ServerReady).
  std::atomic<bool> ready_{false};
  int port_ = 0;
  std::atomic<bool> shut_down_{false};
  int max_message_bytes_ = 0;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HEADWAY_SERVER_H_
