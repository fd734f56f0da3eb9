#include "model_store/retirer.h"

#include <algorithm>
#include <utility>

#include "absl/time/time.h"

namespace headway {

Retirer::Retirer() : thread_([this] { Run(); }) {}

Retirer::~Retirer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void Retirer::Retire(std::shared_ptr<const void> object) {
  if (object == nullptr) return;
  absl::MutexLock lock(&mu_);
  retired_.push_back(std::move(object));
}

size_t Retirer::pending() const {
  absl::MutexLock lock(&mu_);
  return retired_.size();
}

void Retirer::Run() {
  constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
  bool stopping = false;
  while (!stopping) {
    std::vector<std::shared_ptr<const void>> released;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &Retirer::Stopping), kPollInterval);
      stopping = stopping_;
      // Nobody but us holds these, and nobody can take them back: they left every
      // table requests read from.
      auto unused = std::partition(
          retired_.begin(), retired_.end(),
          [&](const auto& object) { return !stopping && object.use_count() > 1; });
      released.assign(std::make_move_iterator(unused),
                      std::make_move_iterator(retired_.end()));
      retired_.erase(unused, retired_.end());
    }
    released.clear();  // the destructors run here, outside the lock
  }
}

}  // namespace headway
