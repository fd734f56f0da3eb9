// RequestControl: a request's deadline and cancellation as the transport knows them,
// handed to the core so that work nobody waits for is never done. Free of gRPC and
// LibTorch types.
#ifndef HEADWAY_MODEL_STORE_REQUEST_CONTROL_H_
#define HEADWAY_MODEL_STORE_REQUEST_CONTROL_H_

#include <functional>

#include "absl/time/time.h"

namespace headway {

struct RequestControl {
  absl::Time deadline = absl::InfiniteFuture();
  // Returns true once the client has gone away; may be empty. Thread-safe.
  std::function<bool()> cancelled;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_REQUEST_CONTROL_H_
