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
//    for one, a connection that has sent nothing gives its thread up (a new one at
//    once, one between keep-alive requests after kCrowdedIdleMs) instead of holding
//    it for the keep-alive timeout (otherwise a few hundred idle connections kept
//    every request waiting for minutes). It is parked, not closed: one thread watches
//    parked connections (up to 4096; more are closed) and queues each for a
//    thread again when its next request arrives, or closes it at the end of the
//    keep-alive timeout. Closing them instead made keep-alive clients beyond the
//    thread count fail a third of their requests on connections closed under them;
//  - a connection that has waited `max_queue_wait_ms` for a thread is shed: a
//    thread of its own answers it 503 (over TLS after a handshake bounded by
//    kShedTlsMs; a TLS connection that has sent nothing is closed unanswered) and
//    closes it, so overload is answered in bounded time rather than served late to
//    clients that may have given up;
//  - every wait on a socket ends once the server stops, so a half-sent request or a
//    silent client cannot hold up the exit;
//  - the listen queue holds SOMAXCONN connections: the library listens with a
//    backlog of 5, and a burst of more new connections lost their handshakes' last
//    packets and stalled for a second or more (TCP retransmission).
//
// They run the library's keep-alive loop themselves (the library's is internal): up
// to the keep-alive count of requests per connection, each awaited for at most the
// keep-alive timeout. The HTTPS server also runs the TLS handshake (bounded by the
// read timeout) on the library's SSL_CTX, so its certificate, key and client-CA
// checks are the library's; the connection's socket stays non-blocking, and every
// TLS read and write waits at most its timeout. A plain HTTP request sent to it is
// answered 400 in plain HTTP with `plain_http_answer` (the gateway's JSON error).
// Everything else (routing, handlers, timeouts, limits) is the library's. Set
// threads here, not with new_task_queue.
//
// One class template over the library's two servers, instantiated in the .cc for
// httplib::Server and httplib::SSLServer only.
//
// Thread-safe as httplib::Server is.
#ifndef HEADWAY_SERVER_HARDENED_HTTP_SERVER_H_
#define HEADWAY_SERVER_HARDENED_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace headway {

struct HardenedHttpLimits {
  size_t max_header_bytes = 64 << 10;
  int threads = 16;
  // How long an accepted connection may wait for one of `threads`; past it, it is
  // answered 503 with `overload_answer` (a JSON body) and Retry-After: 1, and closed,
  // its request unserved. Negative: no bound.
  int64_t max_queue_wait_ms = 1000;
  std::string overload_answer;
  // Called (on the shedding thread) for each connection shed; may be empty.
  std::function<void()> on_shed;
  // HTTPS only: the body of the 400 that answers a plain HTTP request; empty closes
  // such a connection without an answer.
  std::string plain_http_answer;
};

// How long a connection between keep-alive requests keeps its thread while other
// accepted connections wait for one.
inline constexpr int kCrowdedIdleMs = 20;

// How long shedding a TLS connection may spend on its handshake and answer.
inline constexpr int kShedTlsMs = 200;

class ConnectionPool;
struct HardenedConnection;

// Inside a request handler: the socket of the connection whose request the calling
// thread serves (for watching it for a hang-up, never for reading or writing);
// -1 elsewhere.
int ServedConnectionSocket();

template <typename Library>  // httplib::Server or httplib::SSLServer
class Hardened final : public Library {
 public:
  // `library_args` go to the library's constructor: for SSLServer the certificate
  // and key files, and the client CA file (nullable) that asks every client for a
  // certificate that CA signed.
  template <typename... LibraryArgs>
  explicit Hardened(const HardenedHttpLimits& limits, LibraryArgs&&... library_args)
      : Library(std::forward<LibraryArgs>(library_args)...), limits_(limits) {
    UseConnectionPool();
  }

  // HTTPS only: connections accepted from now on handshake with `context` instead of
  // the library's (certificates rotated while serving); those already made keep
  // theirs. Thread-safe.
  void ReplaceSslContext(std::shared_ptr<SSL_CTX> context) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ssl_context_ = std::move(context);
  }

 private:
  // The context a new TLS connection handshakes with; null for the library's.
  std::shared_ptr<SSL_CTX> ReplacedSslContext() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return ssl_context_;
  }

  void UseConnectionPool();
  bool process_and_close_socket(socket_t sock) override;
  // Serves `connection` on this thread until it closes, or parks it while idle.
  void Serve(const std::shared_ptr<HardenedConnection>& connection);

  const HardenedHttpLimits limits_;
  // Created by the library when it starts listening, on new_task_queue.
  ConnectionPool* pool_ = nullptr;
  // Connections accepted and not yet taken up by a thread.
  std::atomic<int> waiting_connections_{0};
  mutable absl::Mutex mu_;
  std::shared_ptr<SSL_CTX> ssl_context_ ABSL_GUARDED_BY(mu_);
};

using HardenedHttpServer = Hardened<httplib::Server>;
using HardenedHttpsServer = Hardened<httplib::SSLServer>;
extern template class Hardened<httplib::Server>;
extern template class Hardened<httplib::SSLServer>;

}  // namespace headway

#endif  // HEADWAY_SERVER_HARDENED_HTTP_SERVER_H_
