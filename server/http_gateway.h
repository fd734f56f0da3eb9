// HttpGateway: Headway's HTTP/JSON API (HttpApi) on a port of its own, served by
// cpp-httplib (Debian's libcpp-httplib, built with OpenSSL 3: the HTTPS the civetweb
// package cannot do): a fixed pool of threads, keep-alive connections.
//
// Bounds, so that HTTP clients cannot hold the server (HardenedHttpServer): headers
// of more than max_header_bytes are refused (400); a body longer than
// max_body_bytes, or a compressed one (Content-Encoding gzip, deflate or br) that
// inflates past it, is refused (413) without buffering more than the limit; a
// request whose headers and body do not arrive within request_timeout of its first
// byte is answered 400 or dropped; a connection that sends nothing gives its thread
// up at once while other connections wait for one; a connection that has waited
// max_queue_wait for a thread is answered 503 (overload is shed, not served late).
// Every answer is JSON, errors included.
//
// With a certificate it serves HTTPS only, from the gRPC port's TLS flags (and with a
// client CA, mutual TLS: a client without a certificate the CA signed cannot connect);
// the admin credential over HTTP is the bearer token. ReplaceTls swaps the
// certificates for the connections that follow (rotation while serving).
//
// Thread-safe; the channel must outlive it. Stops (finishing the requests in
// progress) when destroyed.
#ifndef HEADWAY_SERVER_HTTP_GATEWAY_H_
#define HEADWAY_SERVER_HTTP_GATEWAY_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/client_error_log.h"
#include "server/http_api.h"
#include "server/server_metrics.h"
#include "server/tls.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace headway {

class HttpGateway {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    // 0 picks a free port (see port()).
    int port = 8000;
    // Connections served at once; more wait their turn.
    int threads = 16;
    // How long a connection waits for one of `threads`; then it is answered 503
    // (Retry-After: 1) and closed. Infinite: no bound.
    absl::Duration max_queue_wait = absl::Seconds(1);
    // Counts each connection shed (each is also logged, at a bounded rate); may be
    // null.
    ServerMetrics* metrics = nullptr;
    int64_t max_body_bytes = int64_t{64} << 20;
    // A request's headers, request line included (plain HTTP; over HTTPS the library
    // bounds each header line alone).
    int64_t max_header_bytes = int64_t{64} << 10;
    // For a request's headers and body to arrive, and for an idle keep-alive
    // connection to send its next request.
    absl::Duration request_timeout = absl::Seconds(30);
    // Deadline of the gRPC call each request becomes.
    absl::Duration call_timeout = absl::Seconds(60);
    // HTTPS with this PEM certificate chain and key when set.
    std::string tls_cert_file;
    std::string tls_key_file;
    // With it, clients must present a certificate this CA signed.
    std::string tls_client_ca_file;
  };

  // UNAVAILABLE when the port cannot be bound; INVALID_ARGUMENT for TLS files that
  // cannot be used, or no threads, or a max_queue_wait under 1 ms.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(
      const Options& options, std::shared_ptr<grpc::Channel> channel);
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  int port() const { return port_; }

  // HTTPS only: connections accepted from now on handshake with `material`; those
  // already made keep their session. INTERNAL if OpenSSL refuses it (nothing changes).
  absl::Status ReplaceTls(const TlsMaterial& material);

 private:
  HttpGateway(const Options& options, std::shared_ptr<grpc::Channel> channel);

  // Counts and logs (at ClientErrorLog's rate) a connection shed.
  void RecordShed();

  const Options options_;
  const HttpApi api_;
  ClientErrorLog shed_log_;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HTTP_GATEWAY_H_
