// HardenedHttpServer and HardenedHttpsServer: cpp-httplib's HTTP and HTTPS servers
// with the bounds a server facing untrusted clients needs, which Debian's cpp-httplib
// 0.11 lacks:
//  - a request's header bytes (request line included, up to the blank line) are
//    bounded by `max_header_bytes`: the library bounds each header line (8 KB) but
//    not how many lines a request sends; past the bound the library answers 400 and
//    closes the connection. Bodies are not counted here;
//  - a request's headers and body must arrive within the read timeout of its first
//    byte: the library's timeout applies to each read, so a client sending a byte at
//    a time could hold a thread for ever;
//  - connections are served by `threads` threads; while accepted connections wait
//    for one, a connection that has sent nothing (new, or idle between keep-alive
//    requests) gives its thread up within kCrowdedIdleMs instead of holding it for
//    the keep-alive timeout: otherwise a few hundred idle connections kept every
//    request waiting for minutes;
//  - every wait on a socket ends once the server stops, so a half-sent request or a
//    silent client cannot hold up the exit.
//
// They run the library's keep-alive loop themselves (the library's is internal): up
// to the keep-alive count of requests per connection, each awaited for at most the
// keep-alive timeout. The HTTPS server also runs the TLS handshake (bounded by the
// read timeout) on the library's SSL_CTX, so its certificate, key and client-CA
// checks are the library's; the connection's socket stays non-blocking, and every
// TLS read and write waits at most its timeout. A plain HTTP request sent to it is
// answered 400 in plain HTTP, saying the port serves HTTPS only. Everything else (routing, handlers,
// timeouts, limits) is the library's. Set threads here, not with new_task_queue.
//
// Thread-safe as httplib::Server is.
#ifndef HEADWAY_SERVER_HARDENED_HTTP_SERVER_H_
#define HEADWAY_SERVER_HARDENED_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstddef>

namespace headway {

struct HardenedHttpLimits {
  size_t max_header_bytes = 64 << 10;
  int threads = 16;
};

// How long a connection that has sent nothing keeps its thread while other accepted
// connections wait for one.
inline constexpr int kCrowdedIdleMs = 20;

class HardenedHttpServer : public httplib::Server {
 public:
  explicit HardenedHttpServer(const HardenedHttpLimits& limits);

 private:
  bool process_and_close_socket(socket_t sock) override;

  const HardenedHttpLimits limits_;
  // Connections accepted and not yet taken up by a thread.
  std::atomic<int> waiting_connections_{0};
};

class HardenedHttpsServer : public httplib::SSLServer {
 public:
  // As httplib::SSLServer's: PEM files; `client_ca_file` (nullable) asks every client
  // for a certificate that CA signed.
  HardenedHttpsServer(const HardenedHttpLimits& limits, const char* cert_file,
                      const char* key_file, const char* client_ca_file);

 private:
  bool process_and_close_socket(socket_t sock) override;

  const HardenedHttpLimits limits_;
  std::atomic<int> waiting_connections_{0};
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HARDENED_HTTP_SERVER_H_
