#include "server/unparsed_request_interceptor.h"

#include <google/protobuf/descriptor.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"

namespace headway {
namespace {

using grpc::experimental::InterceptionHookPoints;

// The descriptor of `method` ("/package.Service/Method"), or null for a method the
// server's protos do not declare.
const google::protobuf::MethodDescriptor* DescriptorOf(absl::string_view method) {
  if (!absl::StartsWith(method, "/")) return nullptr;
  const std::string full_name =
      absl::StrReplaceAll(method.substr(1), {{"/", "."}});  // package.Service.Method
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name);
}

// What answers a request whose bytes did not parse as `method`'s (nullable) request.
std::string UnparsedRequestMessage(const google::protobuf::MethodDescriptor* method) {
  const std::string type = method == nullptr ? std::string("of the method")
                                             : method->input_type()->full_name();
  return absl::StrCat("the request's bytes do not parse as message ", type,
                      ": truncated or malformed protobuf, or a string field holding "
                      "invalid UTF-8");
}

class UnparsedRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  // `method` ("/package.Service/Method") outlives the interceptor.
  UnparsedRequestInterceptor(const char* method, ServerMetrics* metrics,
                             ClientErrorLog* errors)
      : method_(method), metrics_(metrics), errors_(errors) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // A request that failed to parse reaches its handler as no message.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;
    }
    if (unparsed_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      const google::protobuf::MethodDescriptor* method = DescriptorOf(method_);
      const absl::Status status =
          absl::InvalidArgumentError(UnparsedRequestMessage(method));
      methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                             std::string(status.message())));
      // Counted and logged as the services do their client errors; only for methods
      // the protos declare (metric labels come from those alone).
      if (method != nullptr) {
        if (metrics_ != nullptr) {
          metrics_->RequestStarted();
          metrics_->RequestFinished(method->name(), "", "", status.code(),
                                    absl::ZeroDuration());
        }
        if (errors_ != nullptr) {
          errors_->LogFailure(method->name(), "", "", status, absl::ZeroDuration());
        }
      }
    }
    methods->Proceed();
  }

 private:
  const char* const method_;
  ServerMetrics* const metrics_;
  ClientErrorLog* const errors_;
  bool unparsed_ = false;
};

}  // namespace

grpc::experimental::Interceptor*
UnparsedRequestInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  if (info->type() != Type::UNARY && info->type() != Type::SERVER_STREAMING) {
    return nullptr;
  }
  // Looked up only for a request that failed to parse: this runs for every call.
  return new UnparsedRequestInterceptor(info->method(), metrics_, errors_);
}

}  // namespace headway
