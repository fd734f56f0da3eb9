#include "server/hangup_watch.h"

#include <grpcpp/client_context.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "model_store/thread_name.h"

namespace headway {

HangupWatch::HangupWatch() {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_;
  if (epoll_ < 0 || wake_ < 0 || epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &event) != 0) {
    if (epoll_ >= 0) close(epoll_);
    if (wake_ >= 0) close(wake_);
    epoll_ = wake_ = -1;
    return;
  }
  thread_ = std::thread([this] { Run(); });
}

HangupWatch::~HangupWatch() {
  if (epoll_ < 0) return;
  const uint64_t one = 1;
  (void)!write(wake_, &one, sizeof(one));
  thread_.join();
  close(epoll_);
  close(wake_);
}

bool HangupWatch::Add(int fd, grpc::ClientContext* context) {
  if (epoll_ < 0 || fd < 0) return false;
  absl::MutexLock lock(&mu_);
  epoll_event event{};
  event.events = EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLONESHOT;
  event.data.fd = fd;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) return false;
  calls_[fd] = context;
  return true;
}

void HangupWatch::Remove(int fd) {
  absl::MutexLock lock(&mu_);
  epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  calls_.erase(fd);
}

void HangupWatch::Run() {
  NameThisThread("hw-http-hangup");
  epoll_event events[64];
  while (true) {
    const int ready = epoll_wait(epoll_, events, 64, -1);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_) return;
      // Under the lock, so a Scope ending now has either not removed the call yet
      // (its context still lives) or removed it (nothing to cancel).
      absl::MutexLock lock(&mu_);
      auto call = calls_.find(fd);
      if (call != calls_.end()) call->second->TryCancel();
    }
  }
}

HangupWatch::Scope::Scope(HangupWatch* watch, int fd, grpc::ClientContext* context)
    : watch_(watch != nullptr && watch->Add(fd, context) ? watch : nullptr), fd_(fd) {}

HangupWatch::Scope::~Scope() {
  if (watch_ != nullptr) watch_->Remove(fd_);
}

}  // namespace headway
