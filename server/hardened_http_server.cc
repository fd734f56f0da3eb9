#include "server/hardened_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
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
// (ConnectionPool), which Serve answers 503 and closes.
thread_local bool shedding_this_connection = false;
// The connection whose request this thread's handler serves; -1 outside one.
thread_local int served_socket = -1;

// When the job running on this thread was queued (ConnectionPool).
thread_local Clock::time_point running_job_queued;

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
// has lasted its grace while `crowded()` (other connections wait for a thread).
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

  // How a wait for a connection's next bytes ended.
  enum class Arrival {
    kInput,
    // After the grace with nothing, while other connections wait for a thread.
    kCrowdedOut,
    // Timed out, or the server stopped.
    kNone,
  };

  // Waits at most `timeout_ms` for the connection's next bytes (TLS may hold some
  // decrypted already), or `grace_ms` while the server is crowded.
  Arrival AwaitInput(int64_t timeout_ms, int64_t grace_ms) const {
    // Bytes already there are taken, however crowded the server.
    if (HasInputNow()) return Arrival::kInput;
    const Clock::time_point start = Clock::now();
    bool crowded_out = false;
    const bool input = HasInput(timeout_ms, [&] {
      if (options_.stopping()) return true;
      crowded_out = MillisecondsSince(start) >= grace_ms && options_.crowded();
      return crowded_out;
    });
    return input ? Arrival::kInput : crowded_out ? Arrival::kCrowdedOut : Arrival::kNone;
  }

  // AwaitInput for the next request: the bytes read after it are counted as that
  // request's headers until a blank line, and all of them must come within the read
  // timeout.
  Arrival AwaitRequest(int64_t timeout_ms, int64_t grace_ms) {
    in_headers_ = true;
    header_bytes_ = 0;
    last_four_ = 0;
    const Arrival arrival = AwaitInput(timeout_ms, grace_ms);
    if (arrival == Arrival::kInput) {
      request_deadline_ =
          Clock::now() + std::chrono::milliseconds(options_.read_timeout_ms);
    }
    return arrival;
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

// The library's task queue, for connections: `threads` threads serve queued jobs
// (accepted or resumed connections) in order of arrival, and `waiting` counts the
// jobs queued. A thread of its own sheds each job that has waited `max_wait_ms`
// (negative: none is shed): it runs the job with `shedding_this_connection` set.
// Another watches parked connections (Park). Queued jobs still run after shutdown()
// (each closes its connection at once, the server having stopped); parked ones are
// dropped.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(int threads, int64_t max_wait_ms, std::atomic<int>& waiting)
      : max_wait_(std::chrono::milliseconds(max_wait_ms)),
        waiting_(waiting),
        epoll_(epoll_create1(EPOLL_CLOEXEC)),
        wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.fd = wake_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &wake);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
    if (max_wait_ms >= 0) threads_.emplace_back([this] { Shed(); });
    watcher_ = std::thread([this] { WatchParked(); });
  }

  ~ConnectionPool() override {
    close(wake_);
    close(epoll_);
  }

  void enqueue(std::function<void()> job) override {
    Queue(std::move(job), Clock::now());
  }

  // Watches `fd` (a connection with nothing to read) off the serving threads: once
  // it has input (or has closed), `resume` is queued as a job, at the back, or with
  // `keep_place` where the job running on this thread stood (a new connection whose
  // first request was a moment behind it keeps its place in line, and its queueing
  // time counts on). If nothing comes by `deadline`, or the pool shuts down first,
  // `resume` is destroyed unrun (on the watching thread). False, taking nothing,
  // when kMaxParked are parked already.
  bool Park(int fd, Clock::time_point deadline, bool keep_place,
            std::function<void()> resume) {
    absl::MutexLock lock(&park_mutex_);
    if (park_stopping_ || parked_.size() >= kMaxParked) return false;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.fd = fd;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) return false;
    std::optional<Clock::time_point> place;
    if (keep_place) place = running_job_queued;
    parked_.emplace(fd, Parked{deadline, place, std::move(resume)});
    return true;
  }

  void shutdown() override {
    {
      absl::MutexLock lock(&park_mutex_);
      park_stopping_ = true;
    }
    const uint64_t one = 1;
    (void)!write(wake_, &one, sizeof(one));
    watcher_.join();
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
  struct Parked {
    Clock::time_point deadline;
    // Where to queue it again: as queued then; at the back when unset.
    std::optional<Clock::time_point> place;
    std::function<void()> resume;
  };

  // Queues `job` in order of `queued` (at the back unless it is older than some).
  void Queue(std::function<void()> job, Clock::time_point queued) {
    absl::MutexLock lock(&mutex_);
    // New jobs go at the back; one queued again with its old place belongs near the
    // front (the deque stays in order of `queued`).
    if (jobs_.empty() || jobs_.back().queued <= queued) {
      jobs_.push_back({std::move(job), queued});
    } else {
      auto before = jobs_.begin();
      while (before->queued <= queued) ++before;
      jobs_.insert(before, {std::move(job), queued});
    }
    waiting_.fetch_add(1);
  }

  // Connections parked at most: each holds a file descriptor.
  static constexpr size_t kMaxParked = 4096;
  // How often the watcher looks for parked connections past their deadline.
  static constexpr int kParkSweepMs = 100;

  void Work() {
    for (;;) {
      Job job;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](ConnectionPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex_) {
              return pool->stopping_ || !pool->jobs_.empty();
            },
            this));
        if (jobs_.empty()) return;
        job = TakeFront();
      }
      job.run();
    }
  }

  // Waits for the oldest job to pass max_wait_ (or for another to become the
  // oldest), then sheds every job that has passed it.
  void Shed() {
    for (;;) {
      std::vector<Job> expired;
      {
        absl::MutexLock lock(&mutex_);
        const Clock::time_point oldest = OldestQueued();
        const absl::Time deadline =
            oldest == Clock::time_point::max()
                ? absl::InfiniteFuture()
                : absl::Now() + absl::FromChrono(oldest + max_wait_ - Clock::now());
        struct Watch {
          ConnectionPool* pool;
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
      for (Job& job : expired) {
        shedding_this_connection = true;
        running_job_queued = job.queued;
        job.run();
        shedding_this_connection = false;
      }
    }
  }

  // Queues each parked connection that has input; drops those past their deadline,
  // and all of them once the pool shuts down.
  void WatchParked() {
    epoll_event events[64];
    for (;;) {
      const int ready = epoll_wait(epoll_, events, 64, kParkSweepMs);
      std::vector<Parked> resume;
      std::vector<Parked> dropped;
      bool stopping = false;
      {
        absl::MutexLock lock(&park_mutex_);
        stopping = park_stopping_;
        for (int i = 0; i < ready; ++i) {
          const auto found = parked_.find(events[i].data.fd);
          if (found == parked_.end()) continue;
          epoll_ctl(epoll_, EPOLL_CTL_DEL, found->first, nullptr);
          resume.push_back(std::move(found->second));
          parked_.erase(found);
        }
        const Clock::time_point now = Clock::now();
        for (auto it = parked_.begin(); it != parked_.end();) {
          if (stopping || it->second.deadline <= now) {
            epoll_ctl(epoll_, EPOLL_CTL_DEL, it->first, nullptr);
            dropped.push_back(std::move(it->second));
            parked_.erase(it++);
          } else {
            ++it;
          }
        }
      }
      // Outside the lock: dropping closes connections, and a job may park again.
      for (Parked& parked : resume) {
        Queue(std::move(parked.resume), parked.place.value_or(Clock::now()));
      }
      dropped.clear();
      if (stopping) return;
    }
  }

  // Sets running_job_queued for the thread that runs it.
  Job TakeFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    waiting_.fetch_sub(1);
    running_job_queued = job.queued;
    return job;
  }

  // When the job waiting longest was queued; max() when none waits.
  Clock::time_point OldestQueued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return jobs_.empty() ? Clock::time_point::max() : jobs_.front().queued;
  }

  const Clock::duration max_wait_;
  std::atomic<int>& waiting_;
  absl::Mutex mutex_;
  // Parked connections' sockets, and an eventfd that wakes the watcher to stop.
  const int epoll_;
  const int wake_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;

  absl::Mutex park_mutex_;
  absl::flat_hash_map<int, Parked> parked_ ABSL_GUARDED_BY(park_mutex_);
  bool park_stopping_ ABSL_GUARDED_BY(park_mutex_) = false;
  std::thread watcher_;
};

// One client connection from accept to close, as it moves between threads: served
// on a pool thread, parked while idle. Closed when the last reference goes.
struct HardenedConnection {
  HardenedConnection(int fd, size_t requests_left)
      : fd(fd), requests_left(requests_left) {}
  ~HardenedConnection() {
    // Tells a TLS client the session ended; not waited for.
    if (tls_established) SSL_shutdown(ssl.get());
    CloseSocket(fd);
  }
  HardenedConnection(const HardenedConnection&) = delete;
  HardenedConnection& operator=(const HardenedConnection&) = delete;

  const int fd;
  // HTTPS: the session, made on the connection's first turn on a thread.
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl{nullptr, &SSL_free};
  bool tls_established = false;
  // Requests the connection may still send (the library's keep-alive count).
  size_t requests_left;
};

template <typename Library>
void Hardened<Library>::UseConnectionPool() {
  // Called by the library as it starts listening, on the bound socket.
  this->new_task_queue = [this] {
    ::listen(this->svr_sock_, SOMAXCONN);
    pool_ = new ConnectionPool(limits_.threads, limits_.max_queue_wait_ms,
                               waiting_connections_);
    return pool_;
  };
}

template <typename Library>
bool Hardened<Library>::process_and_close_socket(socket_t sock) {
  Serve(std::make_shared<HardenedConnection>(sock, this->keep_alive_max_count_));
  return true;
}

template <typename Library>
void Hardened<Library>::Serve(const std::shared_ptr<HardenedConnection>& connection) {
  HardenedConnection& c = *connection;
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
  const int64_t keep_alive_ms = int64_t{this->keep_alive_timeout_sec_} * 1000;
  const auto before_first_request = [&] {
    return c.requests_left == this->keep_alive_max_count_;
  };
  // Crowded out while idle since `since`: parked until its next bytes, or closed at
  // the end of the keep-alive timeout. One that has not sent its first request
  // keeps its place in line.
  const auto park = [&](Clock::time_point since) {
    pool_->Park(c.fd, since + std::chrono::milliseconds(keep_alive_ms),
                before_first_request(), [this, connection] { Serve(connection); });
  };
  if constexpr (std::is_same_v<Library, httplib::SSLServer>) {
    if (c.ssl == nullptr) {
      // The connection holds a reference to its context from here.
      const std::shared_ptr<SSL_CTX> replaced = ReplacedSslContext();
      c.ssl.reset(SSL_new(replaced != nullptr ? replaced.get() : this->ssl_context()));
      const int flags = fcntl(c.fd, F_GETFL);
      if (c.ssl == nullptr || flags < 0 ||
          fcntl(c.fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
          SSL_set_fd(c.ssl.get(), c.fd) != 1) {
        return;
      }
    }
  }
  GuardedStream stream(c.fd, c.ssl.get(), std::move(options));
  if constexpr (std::is_same_v<Library, httplib::SSLServer>) {
    if (!c.tls_established) {
      // The client's hello, awaited as a request is; a connection shed without one
      // has sent nothing in all its wait and is closed at once (the shedding thread
      // does not wait on clients that say nothing).
      const Clock::time_point since = Clock::now();
      const GuardedStream::Arrival hello =
          stream.AwaitInput(shed ? 0 : keep_alive_ms, /*grace_ms=*/0);
      if (hello == GuardedStream::Arrival::kCrowdedOut) return park(since);
      if (hello != GuardedStream::Arrival::kInput) return;
      if (StartsAsPlainHttp(c.fd)) {
        if (!limits_.plain_http_answer.empty()) {
          AnswerPlainHttp(c.fd, limits_.plain_http_answer, kPlainHttpLingerMs, stopping);
        }
        return;
      }
      if (!stream.AcceptTls()) return;
      c.tls_established = true;
      // The request follows the handshake.
      if (shed) stream.AwaitRequest(kShedTlsMs, /*grace_ms=*/0);
    }
  }
  if (shed) {
    if (limits_.on_shed) limits_.on_shed();
    DrainReadable(stream);
    WriteAll(stream, ShedAnswer(limits_.overload_answer));
    if (c.ssl == nullptr) shutdown(c.fd, SHUT_WR);
    return;
  }
  while (c.requests_left > 0) {
    const Clock::time_point since = Clock::now();
    // A connection that has sent nothing yet is parked at once when crowded; one
    // between requests keeps its thread kCrowdedIdleMs for the next.
    const GuardedStream::Arrival next =
        stream.AwaitRequest(keep_alive_ms, before_first_request() ? 0 : kCrowdedIdleMs);
    if (next == GuardedStream::Arrival::kCrowdedOut) return park(since);
    if (next != GuardedStream::Arrival::kInput) return;
    bool connection_closed = false;
    served_socket = c.fd;
    const bool served =
        this->process_request(stream, c.requests_left == 1, connection_closed, nullptr);
    served_socket = -1;
    --c.requests_left;
    if (!served || connection_closed) return;
  }
}

int ServedConnectionSocket() { return served_socket; }

template class Hardened<httplib::Server>;
template class Hardened<httplib::SSLServer>;

}  // namespace headway
