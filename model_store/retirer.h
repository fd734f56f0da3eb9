// Retirer: takes objects that stopped serving (a swapped-out head, ...) and destroys
// each on its own thread once no request holds it any more, so the last reader, an
// RPC or worker thread, never pays for the release.
//
// Thread-safe. The destructor releases whatever is left; by then nothing else may hold
// the retired objects.
#ifndef HEADWAY_MODEL_STORE_RETIRER_H_
#define HEADWAY_MODEL_STORE_RETIRER_H_

#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace headway {

class Retirer {
 public:
  Retirer();
  ~Retirer();
  Retirer(const Retirer&) = delete;
  Retirer& operator=(const Retirer&) = delete;

  void Retire(std::shared_ptr<const void> object);

  // Objects retired but still held by a reader.
  size_t pending() const;

 private:
  void Run();
  bool Stopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; }

  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<const void>> retired_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_RETIRER_H_
