#include "server/header_capped_http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

namespace headway {
namespace {

// Waits until `fd` has `events`, at most `timeout_ms`; true when it has.
bool WaitFor(int fd, short events, int64_t timeout_ms) {
  pollfd entry{fd, events, 0};
  int ready = 0;
  do {
    ready = poll(&entry, 1, static_cast<int>(timeout_ms));
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
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

// A connection's socket as the library's Stream, counting each request's header
// bytes: a read that would pass the cap fails, and the library refuses the request.
class HeaderCappedStream final : public httplib::Stream {
 public:
  HeaderCappedStream(int fd, int64_t read_timeout_ms, int64_t write_timeout_ms,
                     size_t max_header_bytes)
      : fd_(fd),
        read_timeout_ms_(read_timeout_ms),
        write_timeout_ms_(write_timeout_ms),
        max_header_bytes_(max_header_bytes) {}

  // The next bytes read start a request: its headers are counted until a blank line.
  void StartRequest() {
    in_headers_ = true;
    header_bytes_ = 0;
    last_four_ = 0;
  }

  bool is_readable() const override { return WaitFor(fd_, POLLIN, read_timeout_ms_); }
  bool is_writable() const override { return WaitFor(fd_, POLLOUT, write_timeout_ms_); }

  ssize_t read(char* ptr, size_t size) override {
    if (in_headers_ && header_bytes_ >= max_header_bytes_) return -1;
    if (!is_readable()) return -1;
    ssize_t got = 0;
    do {
      got = recv(fd_, ptr, size, 0);
    } while (got < 0 && errno == EINTR);
    for (ssize_t i = 0; in_headers_ && i < got; ++i) {
      ++header_bytes_;
      last_four_ = (last_four_ << 8) | static_cast<uint8_t>(ptr[i]);
      if (last_four_ == kBlankLine) in_headers_ = false;
    }
    return got;
  }

  ssize_t write(const char* ptr, size_t size) override {
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

  const int fd_;
  const int64_t read_timeout_ms_;
  const int64_t write_timeout_ms_;
  const size_t max_header_bytes_;
  bool in_headers_ = true;
  size_t header_bytes_ = 0;
  uint32_t last_four_ = 0;
};

}  // namespace

bool HeaderCappedHttpServer::process_and_close_socket(socket_t sock) {
  HeaderCappedStream stream(sock, Milliseconds(read_timeout_sec_, read_timeout_usec_),
                            Milliseconds(write_timeout_sec_, write_timeout_usec_),
                            max_header_bytes_);
  bool served = false;
  for (size_t left = keep_alive_max_count_; left > 0; --left) {
    // The next request, awaited in short steps so that a stopping server need not
    // wait out the keep-alive timeout.
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::seconds(keep_alive_timeout_sec_);
    bool readable = false;
    while (!readable && svr_sock_ != INVALID_SOCKET &&
           std::chrono::steady_clock::now() < end) {
      readable = WaitFor(sock, POLLIN, 10);
    }
    if (!readable) break;
    stream.StartRequest();
    bool connection_closed = false;
    served = process_request(stream, left == 1, connection_closed, nullptr);
    if (!served || connection_closed) break;
  }
  shutdown(sock, SHUT_RDWR);
  close(sock);
  return served;
}

}  // namespace headway
