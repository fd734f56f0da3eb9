// UnparsedRequestInterceptorFactory: a gRPC server interceptor that answers a request
// whose bytes do not parse as its method's request message (truncated or garbled
// protobuf, or a string field holding invalid UTF-8, which proto3 refuses) with
// INVALID_ARGUMENT naming the message type. Left alone, gRPC 1.51's callback server
// answers such a request UNIMPLEMENTED with no message, which reads as a method the
// server lacks; the request never reaches Headway's services.
//
// Each such call is counted in the server's request metrics (model and head empty)
// and logged at ClientErrorLog's rate, as the services do for their client errors.
//
// Applies to calls with one request message (unary and server-streaming); a
// streaming request's messages are the reactor's to read.
//
// Thread-safe; the metrics and log must outlive the server.
#ifndef HEADWAY_SERVER_UNPARSED_REQUEST_INTERCEPTOR_H_
#define HEADWAY_SERVER_UNPARSED_REQUEST_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include "server/client_error_log.h"
#include "server/server_metrics.h"

namespace headway {

class UnparsedRequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  UnparsedRequestInterceptorFactory(ServerMetrics* metrics, ClientErrorLog* errors)
      : metrics_(metrics), errors_(errors) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics* const metrics_;
  ClientErrorLog* const errors_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_UNPARSED_REQUEST_INTERCEPTOR_H_
