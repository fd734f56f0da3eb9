// HttpGateway: Headway's HTTP/JSON API (HttpApi) on a port of its own, served by
// civetweb (which Headway already carries for its metrics endpoint): thread per
// connection from a fixed pool, one request per connection; each request's work runs
// on a pool of Headway's own (civetweb's threads have 100 KiB stacks).
//
// Bounds, so that HTTP clients cannot hold the server: a body longer than
// max_body_bytes is refused (413) from its Content-Length before any of it is read (a
// chunked one once it passes the limit); a request whose headers or body do not
// arrive within request_timeout is answered 408 or dropped, which also frees the
// threads that idle connections hold. Every answer is JSON, errors included.
//
// Thread-safe; the channel must outlive it. Stops (waiting for the requests in
// progress) when destroyed.
#ifndef HEADWAY_SERVER_HTTP_GATEWAY_H_
#define HEADWAY_SERVER_HTTP_GATEWAY_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/http_api.h"
#include "server/worker_pool.h"

struct mg_context;
struct mg_connection;

namespace headway {

class HttpGateway {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    // 0 picks a free port (see port()).
    int port = 8000;
    // Connections served at once; more wait in the listen queue.
    int threads = 16;
    int64_t max_body_bytes = int64_t{64} << 20;
    // For a request's headers and body to arrive.
    absl::Duration request_timeout = absl::Seconds(30);
    // Deadline of the gRPC call each request becomes.
    absl::Duration call_timeout = absl::Seconds(60);
  };

  // UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(
      const Options& options, std::shared_ptr<grpc::Channel> channel);
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  int port() const { return port_; }

 private:
  HttpGateway(const Options& options, std::shared_ptr<grpc::Channel> channel);
  static int HandleRequest(mg_connection* connection, void* gateway);
  int Handle(mg_connection* connection) const;

  const Options options_;
  const HttpApi api_;
  // Runs the requests' calls and JSON work: civetweb's own threads have small stacks.
  std::unique_ptr<WorkerPool> handlers_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HTTP_GATEWAY_H_
