#include "server/listener_waker.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"

namespace headway {
namespace {

// Opens a TCP connection to `host` ("0.0.0.0" and "[::]" meaning this machine) and
// `port`, and closes it; errors are ignored.
void ConnectAndClose(std::string host, int port) {
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]" || host == "::") host = "::1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addresses) != 0) {
    return;
  }
  const int fd = socket(addresses->ai_family, SOCK_STREAM, 0);
  if (fd >= 0) {
    connect(fd, addresses->ai_addr, addresses->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(addresses);
}

}  // namespace

void StopWhileWaking(const std::string& host, int port,
                     const std::function<void()>& stop) {
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    while (!stopped.load()) {
      if (port > 0) ConnectAndClose(host, port);
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  stop();
  stopped.store(true);
  waker.join();
}

}  // namespace headway
