#include "server/header_capped_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"

namespace headway {
namespace {

using Clock = std::chrono::steady_clock;

// How long one wait on a socket lasts before it looks again whether the server stops.
constexpr int64_t kStopCheckMs = 10;

// Waits until `fd` has `events`, at most `timeout_ms`, ending early (false) once
// `stopping()`; true when it has them.
bool WaitFor(int fd, short events, int64_t timeout_ms,
             const std::function<bool()>& stopping) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const int64_t left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
            .count();
    pollfd entry{fd, events, 0};
    const int ready =
        poll(&entry, 1, static_cast<int>(std::clamp<int64_t>(left, 0, kStopCheckMs)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
    if (left <= 0 || stopping()) return false;
  }
}

int64_t Milliseconds(time_t seconds, time_t microseconds) {
  return static_cast<int64_t>(seconds) * 1000 + microseconds / 1000;
}

// The address of a socket's peer (`peer`) or its own end, numeric.
void AddressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  auto* raw = reinterpret_cast<sockaddr*>(&address);
  if ((peer ? getpeername(fd, raw, &length) : getsockname(fd, raw, &length)) != 0) return;
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(raw, length, host, sizeof(host), service, sizeof(service),
                  NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::stoi(service);
  }
}

// A connection as the library's Stream, over the socket or, with a TLS session, over
// TLS, counting each request's header bytes: a read that would pass the cap fails,
// and the library refuses the request. A request's headers and body must arrive
// within the read timeout of its first byte (the library's own timeout is per read,
// so a client sending a byte at a time could hold a thread for ever). Every wait on
// the socket is bounded by its timeout and ends early once `stopping()`.
class HeaderCappedStream final : public httplib::Stream {
 public:
  struct Options {
    int64_t read_timeout_ms = 0;
    int64_t write_timeout_ms = 0;
    size_t max_header_bytes = 0;
    std::function<bool()> stopping;
  };

  // `ssl` (nullable) is a TLS session on `fd`, which is then non-blocking.
  HeaderCappedStream(int fd, SSL* ssl, Options options)
      : fd_(fd), ssl_(ssl), options_(std::move(options)) {}

  // Runs the server's side of the TLS handshake; false when it failed or timed out.
  bool AcceptTls() {
    return RunTls(options_.read_timeout_ms, [&] { return SSL_accept(ssl_); }) > 0;
  }

  // Waits at most `timeout_ms` for the next request's first bytes (TLS may hold some
  // decrypted already); true when they came. The bytes read after it are counted as
  // that request's headers until a blank line, and all of them must come within the
  // read timeout.
  bool AwaitRequest(int64_t timeout_ms) {
    in_headers_ = true;
    header_bytes_ = 0;
    last_four_ = 0;
    if (!HasInput(timeout_ms)) return false;
    request_deadline_ =
        Clock::now() + std::chrono::milliseconds(options_.read_timeout_ms);
    return true;
  }

  bool is_readable() const override { return HasInput(ReadTimeLeftMs()); }
  bool is_writable() const override {
    return WaitFor(fd_, POLLOUT, options_.write_timeout_ms, options_.stopping);
  }

  ssize_t read(char* ptr, size_t size) override {
    if (in_headers_ && header_bytes_ >= options_.max_header_bytes) return -1;
    const ssize_t got = ssl_ != nullptr ? ReadTls(ptr, size) : ReadPlain(ptr, size);
    for (ssize_t i = 0; in_headers_ && i < got; ++i) {
      ++header_bytes_;
      last_four_ = (last_four_ << 8) | static_cast<uint8_t>(ptr[i]);
      if (last_four_ == kBlankLine) in_headers_ = false;
    }
    return got;
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (ssl_ != nullptr) {
      // The library writes on until all is sent, so a part is enough here.
      const int part = static_cast<int>(std::min<size_t>(size, kMaxTlsWrite));
      return RunTls(options_.write_timeout_ms,
                    [&] { return SSL_write(ssl_, ptr, part); });
    }
    if (!is_writable()) return -1;
    ssize_t sent = 0;
    do {
      sent = send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    AddressOf(fd_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    AddressOf(fd_, false, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  static constexpr uint32_t kBlankLine = 0x0d0a0d0a;  // "\r\n\r\n"
  static constexpr size_t kMaxTlsWrite = size_t{1} << 20;

  // What is left of the request's time to arrive.
  int64_t ReadTimeLeftMs() const {
    return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    request_deadline_ - Clock::now())
                                    .count());
  }

  bool HasInput(int64_t timeout_ms) const {
    return (ssl_ != nullptr && SSL_pending(ssl_) > 0) ||
           WaitFor(fd_, POLLIN, timeout_ms, options_.stopping);
  }

  ssize_t ReadPlain(char* ptr, size_t size) {
    if (!is_readable()) return -1;
    ssize_t got = 0;
    do {
      got = recv(fd_, ptr, size, 0);
    } while (got < 0 && errno == EINTR);
    return got;
  }

  ssize_t ReadTls(char* ptr, size_t size) {
    const int part = static_cast<int>(std::min<size_t>(size, INT_MAX));
    return RunTls(ReadTimeLeftMs(), [&] { return SSL_read(ssl_, ptr, part); });
  }

  // Runs `step` (SSL_accept, SSL_read or SSL_write on the session) until it
  // succeeds, waiting on the socket for what TLS asks, at most `timeout_ms` in all.
  // Returns the step's positive result, 0 when the peer closed the TLS session, or -1
  // on failure, timeout or stop.
  int RunTls(int64_t timeout_ms, absl::FunctionRef<int()> step) {
    const Clock::time_point deadline =
        Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      ERR_clear_error();
      const int done = step();
      if (done > 0) return done;
      const int error = SSL_get_error(ssl_, done);
      if (error == SSL_ERROR_ZERO_RETURN) return 0;
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) return -1;
      const int64_t left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
              .count();
      if (!WaitFor(fd_, error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                   std::max<int64_t>(0, left), options_.stopping)) {
        return -1;
      }
    }
  }

  const int fd_;
  SSL* const ssl_;
  const Options options_;
  bool in_headers_ = true;
  size_t header_bytes_ = 0;
  uint32_t last_four_ = 0;
  Clock::time_point request_deadline_;
};

// Serves requests on one connection through `stream`: at most `max_requests`, each
// awaited for at most `keep_alive_seconds`. `process` is the library's
// process_request. Returns whether the last request was served.
bool ServeConnection(HeaderCappedStream& stream, size_t max_requests,
                     time_t keep_alive_seconds,
                     absl::FunctionRef<bool(httplib::Stream&, bool, bool&)> process) {
  bool served = false;
  for (size_t left = max_requests; left > 0; --left) {
    if (!stream.AwaitRequest(int64_t{keep_alive_seconds} * 1000)) break;
    bool connection_closed = false;
    served = process(stream, left == 1, connection_closed);
    if (!served || connection_closed) break;
  }
  return served;
}

void CloseSocket(int fd) {
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

}  // namespace

bool HeaderCappedHttpServer::process_and_close_socket(socket_t sock) {
  HeaderCappedStream stream(
      sock, /*ssl=*/nullptr,
      {Milliseconds(read_timeout_sec_, read_timeout_usec_),
       Milliseconds(write_timeout_sec_, write_timeout_usec_), max_header_bytes_,
       [this] { return svr_sock_ == INVALID_SOCKET; }});
  const bool served = ServeConnection(
      stream, keep_alive_max_count_, keep_alive_timeout_sec_,
      [this](httplib::Stream& strm, bool close_connection, bool& connection_closed) {
        return process_request(strm, close_connection, connection_closed, nullptr);
      });
  CloseSocket(sock);
  return served;
}

bool HeaderCappedHttpsServer::process_and_close_socket(socket_t sock) {
  const std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ssl_context()), &SSL_free);
  const int flags = fcntl(sock, F_GETFL);
  bool served = false;
  if (ssl != nullptr && flags >= 0 && fcntl(sock, F_SETFL, flags | O_NONBLOCK) == 0 &&
      SSL_set_fd(ssl.get(), sock) == 1) {
    HeaderCappedStream stream(
        sock, ssl.get(),
        {Milliseconds(read_timeout_sec_, read_timeout_usec_),
         Milliseconds(write_timeout_sec_, write_timeout_usec_), max_header_bytes_,
         [this] { return svr_sock_ == INVALID_SOCKET; }});
    if (stream.AcceptTls()) {
      served = ServeConnection(
          stream, keep_alive_max_count_, keep_alive_timeout_sec_,
          [this](httplib::Stream& strm, bool close_connection, bool& connection_closed) {
            return process_request(strm, close_connection, connection_closed, nullptr);
          });
      // Tells the client the session ended; not waited for.
      if (served) SSL_shutdown(ssl.get());
    }
  }
  CloseSocket(sock);
  return served;
}

}  // namespace headway
