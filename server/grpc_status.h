// The one place Headway maps absl::Status onto grpc::Status. Stateless.
#ifndef HEADWAY_SERVER_GRPC_STATUS_H_
#define HEADWAY_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace headway {

// Same code (the two enums share their values), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace headway

#endif  // HEADWAY_SERVER_GRPC_STATUS_H_
