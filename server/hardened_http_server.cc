#include "server/hardened_http_server.h"

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
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace headway {
namespace {

using Clock = std::chrono::steady_clock;

// How long a plain HTTP request to the HTTPS port is read after its answer.
constexpr int64_t kPlainHttpLingerMs = 200;

// What shedding a connection reads of its request at most before answering.
constexpr size_t kMaxDrainBytes = size_t{1} << 20;

// How long one wait on a socket lasts before it looks again whether to give up.
constexpr int64_t kWaitStepMs = 10;

int64_t MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
      .count();
}

// Waits until `fd` has `events`, at most `timeout_ms`, ending early (false) once
// `give_up()`, which is asked before the first wait and every kWaitStepMs; true when
// it has them.
bool WaitFor(int fd, short events, int64_t timeout_ms,
             absl::FunctionRef<bool()> give_up) {
  const Clock::time_point start = Clock::now();
  for (;;) {
    if (give_up()) return false;
    const int64_t left = timeout_ms - MillisecondsSince(start);
    pollfd entry{fd, events, 0};
    const int ready =
        poll(&entry, 1, static_cast<int>(std::clamp<int64_t>(left, 0, kWaitStepMs)));
    if (ready > 0) return true;
    if ((ready < 0 && errno != EINTR) || left <= 0) return false;
  }
}

// Whether the job running on this thread is a connection being shed
// (CountingThreadPool), which process_and_close_socket answers 503 and closes.
thread_local bool shedding_this_connection = false;

// httplib's ThreadPool, counting the jobs (accepted connections) that wait for a
// thread in `waiting`, with a thread of its own that sheds each job that has waited
// `max_wait_ms` (negative: none is shed): it runs the job with
// `shedding_this_connection` set. Queued jobs still run after shutdown() (each closes
// its connection at once, the server having stopped).
class CountingThreadPool final : public httplib::TaskQueue {
 public:
  CountingThreadPool(int threads, int64_t max_wait_ms, std::atomic<int>& waiting)
      : max_wait_(std::chrono::milliseconds(max_wait_ms)), waiting_(waiting) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
    if (max_wait_ms >= 0) threads_.emplace_back([this] { Shed(); });
  }

  void enqueue(std::function<void()> job) override {
    absl::MutexLock lock(&mutex_);
    jobs_.push_back({std::move(job), Clock::now()});
    waiting_.fetch_add(1);
  }

  void shutdown() override {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    for (std::thread& thread : threads_) thread.join();
  }

 private:
  struct Job {
    std::function<void()> run;
    Clock::time_point queued;
  };

  void Work() {
    for (;;) {
      std::function<void()> job;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](CountingThreadPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex_) {
              return pool->stopping_ || !pool->jobs_.empty();
            },
            this));
        if (jobs_.empty()) return;
        job = TakeFront();
      }
      job();
    }
  }

  // Waits for the oldest job to pass max_wait_ (or for another to become the
  // oldest), then sheds every job that has passed it.
  void Shed() {
    for (;;) {
      std::vector<std::function<void()>> expired;
      {
        absl::MutexLock lock(&mutex_);
        const Clock::time_point oldest = OldestQueued();
        const absl::Time deadline =
            oldest == Clock::time_point::max()
                ? absl::InfiniteFuture()
                : absl::Now() + absl::FromChrono(oldest + max_wait_ - Clock::now());
        struct Watch {
          CountingThreadPool* pool;
          Clock::time_point oldest;
        } watch{this, oldest};
        mutex_.AwaitWithDeadline(
            absl::Condition(
                +[](Watch* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->pool->mutex_) {
                  return w->pool->stopping_ || w->pool->OldestQueued() != w->oldest;
                },
                &watch),
            deadline);
        if (stopping_) return;
        const Clock::time_point now = Clock::now();
        while (!jobs_.empty() && now - jobs_.front().queued >= max_wait_) {
          expired.push_back(TakeFront());
        }
      }
      for (std::function<void()>& job : expired) {
        shedding_this_connection = true;
        job();
        shedding_this_connection = false;
      }
    }
  }

  std::function<void()> TakeFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    std::function<void()> job = std::move(jobs_.front().run);
    jobs_.pop_front();
    waiting_.fetch_sub(1);
    return job;
  }

  // When the job waiting longest was queued; max() when none waits.
  Clock::time_point OldestQueued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return jobs_.empty() ? Clock::time_point::max() : jobs_.front().queued;
  }

  const Clock::duration max_wait_;
  std::atomic<int>& waiting_;
  absl::Mutex mutex_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

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
// TLS: it counts each request's header bytes (a read that would pass the cap fails,
// and the library refuses the request) and gives each request the read timeout once,
// from its first byte. Every wait on the socket is bounded by its timeout and ends
// early once `stopping()`; a wait for a connection's next bytes also ends once it
// has lasted kCrowdedIdleMs while `crowded()` (other connections wait for a thread).
class GuardedStream final : public httplib::Stream {
 public:
  struct Options {
    int64_t read_timeout_ms = 0;
    int64_t write_timeout_ms = 0;
    size_t max_header_bytes = 0;
    std::function<bool()> stopping;
    std::function<bool()> crowded;
  };

  // `ssl` (nullable) is a TLS session on `fd`, which is then non-blocking.
  GuardedStream(int fd, SSL* ssl, Options options)
      : fd_(fd), ssl_(ssl), options_(std::move(options)) {}

  // Runs the server's side of the TLS handshake; false when it failed or timed out.
  bool AcceptTls() {
    return RunTls(options_.read_timeout_ms, [&] { return SSL_accept(ssl_); }) > 0;
  }

  // Waits at most `timeout_ms` for the connection's next bytes (TLS may hold some
  // decrypted already), or kCrowdedIdleMs while the server is crowded; true when
  // they came.
  bool AwaitInput(int64_t timeout_ms) const {
    const Clock::time_point start = Clock::now();
    return HasInput(timeout_ms, [&] {
      return options_.stopping() ||
             (MillisecondsSince(start) >= kCrowdedIdleMs && options_.crowded());
    });
  }

  // AwaitInput for the next request: the bytes read after it are counted as that
  // request's headers until a blank line, and all of them must come within the read
  // timeout.
  bool AwaitRequest(int64_t timeout_ms) {
    in_headers_ = true;
    header_bytes_ = 0;
    last_four_ = 0;
    if (!AwaitInput(timeout_ms)) return false;
    request_deadline_ =
        Clock::now() + std::chrono::milliseconds(options_.read_timeout_ms);
    return true;
  }

  // Whether bytes can be read without waiting (TLS may hold some decrypted already).
  bool HasInputNow() const {
    return HasInput(0, [] { return false; });
  }

  bool is_readable() const override {
    return HasInput(ReadTimeLeftMs(), options_.stopping);
  }
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

  // Whether bytes can be read within `timeout_ms` (TLS may hold some decrypted
  // already), unless `give_up()` first.
  bool HasInput(int64_t timeout_ms, absl::FunctionRef<bool()> give_up) const {
    return (ssl_ != nullptr && SSL_pending(ssl_) > 0) ||
           WaitFor(fd_, POLLIN, timeout_ms, give_up);
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
    const Clock::time_point start = Clock::now();
    for (;;) {
      ERR_clear_error();
      const int done = step();
      if (done > 0) return done;
      const int error = SSL_get_error(ssl_, done);
      if (error == SSL_ERROR_ZERO_RETURN) return 0;
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) return -1;
      const int64_t left = std::max<int64_t>(0, timeout_ms - MillisecondsSince(start));
      if (!WaitFor(fd_, error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left,
                   options_.stopping)) {
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
bool ServeConnection(GuardedStream& stream, size_t max_requests,
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

// A complete HTTP/1.1 answer with a JSON body after which the server closes the
// connection; `headers` are extra lines, each ending in CRLF.
std::string ClosingAnswer(absl::string_view status, absl::string_view json,
                          absl::string_view headers = "") {
  return absl::StrCat("HTTP/1.1 ", status,
                      "\r\nContent-Type: application/json\r\nContent-Length: ",
                      json.size(), "\r\n", headers, "Connection: close\r\n\r\n", json);
}

// The answer to a connection shed after waiting too long for a thread.
std::string ShedAnswer(absl::string_view json) {
  return ClosingAnswer("503 Service Unavailable", json, "Retry-After: 1\r\n");
}

// Reads and drops what a client has sent that can be read without waiting, at most
// kMaxDrainBytes: a socket closed with unread bytes resets the connection, and the
// client may lose the answer written before.
void DrainReadable(GuardedStream& stream) {
  char discard[16 << 10];
  for (size_t drained = 0; drained < kMaxDrainBytes && stream.HasInputNow();) {
    const ssize_t got = stream.read(discard, sizeof(discard));
    if (got <= 0) return;
    drained += static_cast<size_t>(got);
  }
}

// Writes all of `data` through `stream` (each write bounded by its timeout).
bool WriteAll(GuardedStream& stream, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t sent = stream.write(data.data(), data.size());
    if (sent <= 0) return false;
    data.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

// Whether a connection's first bytes (already arrived) are a plain HTTP request line
// ("GET ", "POST", ...) rather than a TLS record, which starts with a byte below 0x20.
bool StartsAsPlainHttp(int fd) {
  char first = 0;
  return recv(fd, &first, 1, MSG_PEEK) == 1 && first >= 'A' && first <= 'Z';
}

// Answers a plain HTTP request sent to the HTTPS port with a 400 whose body is
// `json` (the client would otherwise see the connection close with no answer), then
// reads what the client sent for at most `linger_ms`, so that closing does not reset
// the connection before the client has read the answer.
void AnswerPlainHttp(int fd, const std::string& json, int64_t linger_ms,
                     absl::FunctionRef<bool()> stopping) {
  const std::string answer = ClosingAnswer("400 Bad Request", json);
  if (send(fd, answer.data(), answer.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(answer.size())) {
    return;
  }
  shutdown(fd, SHUT_WR);
  const Clock::time_point start = Clock::now();
  char discard[4096];
  while (WaitFor(fd, POLLIN, linger_ms - MillisecondsSince(start), stopping) &&
         recv(fd, discard, sizeof(discard), 0) > 0) {
  }
}

void CloseSocket(int fd) {
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

}  // namespace

template <typename Library>
void Hardened<Library>::UseCountingThreadPool() {
  this->new_task_queue = [this] {
    return new CountingThreadPool(limits_.threads, limits_.max_queue_wait_ms,
                                  waiting_connections_);
  };
}

template <typename Library>
bool Hardened<Library>::process_and_close_socket(socket_t sock) {
  // A connection shed for waiting too long: what it has sent is read and dropped,
  // and it is answered 503, each step within kShedTlsMs.
  const bool shed = shedding_this_connection;
  const auto stopping = [this] { return this->svr_sock_ == INVALID_SOCKET; };
  GuardedStream::Options options{
      Milliseconds(this->read_timeout_sec_, this->read_timeout_usec_),
      Milliseconds(this->write_timeout_sec_, this->write_timeout_usec_),
      limits_.max_header_bytes, stopping,
      [this] { return waiting_connections_.load() > 0; }};
  if (shed) {
    options.read_timeout_ms = kShedTlsMs;
    options.write_timeout_ms = kShedTlsMs;
    options.crowded = [] { return false; };
  }
  const auto serve = [this](GuardedStream& stream) {
    return ServeConnection(
        stream, this->keep_alive_max_count_, this->keep_alive_timeout_sec_,
        [this](httplib::Stream& strm, bool close_connection, bool& connection_closed) {
          return this->process_request(strm, close_connection, connection_closed,
                                       nullptr);
        });
  };
  const auto answer_shed = [this](GuardedStream& stream) {
    DrainReadable(stream);
    WriteAll(stream, ShedAnswer(limits_.overload_answer));
  };
  bool served = false;
  if constexpr (std::is_same_v<Library, httplib::SSLServer>) {
    const std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(this->ssl_context()),
                                                        &SSL_free);
    const int flags = fcntl(sock, F_GETFL);
    if (ssl != nullptr && flags >= 0 && fcntl(sock, F_SETFL, flags | O_NONBLOCK) == 0 &&
        SSL_set_fd(ssl.get(), sock) == 1) {
      GuardedStream stream(sock, ssl.get(), std::move(options));
      // The client's hello, awaited as a request is.
      const bool hello = stream.AwaitInput(
          shed ? kShedTlsMs : int64_t{this->keep_alive_timeout_sec_} * 1000);
      if (hello && StartsAsPlainHttp(sock)) {
        if (!limits_.plain_http_answer.empty()) {
          AnswerPlainHttp(sock, limits_.plain_http_answer, kPlainHttpLingerMs, stopping);
        }
      } else if (hello && stream.AcceptTls()) {
        if (shed) {
          // The request follows the handshake.
          stream.AwaitRequest(kShedTlsMs);
          answer_shed(stream);
        } else {
          served = serve(stream);
        }
        // Tells the client the session ended; not waited for.
        if (served || shed) SSL_shutdown(ssl.get());
      }
    }
  } else {
    GuardedStream stream(sock, /*ssl=*/nullptr, std::move(options));
    if (shed) {
      answer_shed(stream);
      shutdown(sock, SHUT_WR);
    } else {
      served = serve(stream);
    }
  }
  CloseSocket(sock);
  return served;
}

template class Hardened<httplib::Server>;
template class Hardened<httplib::SSLServer>;

}  // namespace headway
