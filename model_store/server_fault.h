// Server faults: failures that are the server's, not the request's. A forward pass
// that fails at serving time (the inputs were already checked), memory that runs out,
// or an exception nobody expected. Clients get INTERNAL (RESOURCE_EXHAUSTED when
// memory ran out) and the server logs them as errors, apart from client errors.
//
// A status is a server fault when its code is INTERNAL, UNKNOWN or DATA_LOSS, or when
// ServerFault made it (it carries a payload saying so, which survives being passed on
// unchanged). Header-only; stateless and thread-safe.
#ifndef HEADWAY_MODEL_STORE_SERVER_FAULT_H_
#define HEADWAY_MODEL_STORE_SERVER_FAULT_H_

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace headway {

inline constexpr absl::string_view kServerFaultPayload = "headway/server-fault";

// A status of `code` with `message`, marked as the server's fault.
inline absl::Status ServerFault(absl::StatusCode code, absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(kServerFaultPayload, absl::Cord("1"));
  return status;
}

inline bool IsServerFault(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return status.GetPayload(kServerFaultPayload).has_value();
  }
}

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_SERVER_FAULT_H_
