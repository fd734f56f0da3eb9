// HangupWatch: cancels the gRPC call an HTTP request became when its client hangs up
// while the call runs: closes its connection, or shuts down its sending side (taken
// as leaving, as nginx and Go's net/http take it). One thread watches the sockets of
// the calls in progress with epoll (EPOLLRDHUP, EPOLLHUP, EPOLLERR: a hang-up, never
// the bytes of a next request) and cancels the call's ClientContext, so a request
// whose client is gone is dropped from its model's queue instead of computed.
//
// Thread-safe. The destructor stops the thread; no Scope may outlive the watch.
#ifndef HEADWAY_SERVER_HANGUP_WATCH_H_
#define HEADWAY_SERVER_HANGUP_WATCH_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace headway {

class HangupWatch {
 public:
  // Watches nothing if the kernel refuses an epoll set (calls are then not cancelled).
  HangupWatch();
  ~HangupWatch();
  HangupWatch(const HangupWatch&) = delete;
  HangupWatch& operator=(const HangupWatch&) = delete;

  // While it lives, a hang-up on `fd` cancels `context` (once).
  class Scope {
   public:
    Scope(HangupWatch* watch, int fd, grpc::ClientContext* context);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    HangupWatch* const watch_;  // null: nothing watched
    const int fd_;
  };

 private:
  bool Add(int fd, grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  void Run();

  int epoll_ = -1;
  int wake_ = -1;  // eventfd: ends Run
  absl::Mutex mu_;
  absl::flat_hash_map<int, grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HANGUP_WATCH_H_
