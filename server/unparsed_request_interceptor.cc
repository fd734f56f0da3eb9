#include "server/unparsed_request_interceptor.h"

#include <google/protobuf/descriptor.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/event_log.h"

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
      const std::string message = UnparsedRequestMessage(method_);
      methods->ModifySendStatus(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message));
      if (const google::protobuf::MethodDescriptor* method = DescriptorOf(method_)) {
        Record(method->name(), message);
      }
    }
    methods->Proceed();
  }

 private:
  // Counts and logs the call as the services do their client errors; `rpc` is a
  // method the protos declare (metric labels come from those alone).
  void Record(const std::string& rpc, const std::string& message) {
    if (metrics_ != nullptr) {
      metrics_->RequestStarted();
      metrics_->RequestFinished(rpc, "", "", absl::StatusCode::kInvalidArgument,
                                absl::ZeroDuration());
    }
    int64_t suppressed = 0;
    if (errors_ != nullptr && errors_->ShouldLog(rpc, absl::StatusCode::kInvalidArgument,
                                                 absl::Now(), suppressed)) {
      LogEvent(LogLevel::kWarning, "request_failed",
               {{"rpc", rpc},
                {"code", "INVALID_ARGUMENT"},
                {"suppressed", absl::StrCat(suppressed)},
                {"message", message}});
    }
  }

  const char* const method_;
  ServerMetrics* const metrics_;
  ClientErrorLog* const errors_;
  bool unparsed_ = false;
};

}  // namespace

std::string UnparsedRequestMessage(absl::string_view method) {
  const google::protobuf::MethodDescriptor* descriptor = DescriptorOf(method);
  const std::string type = descriptor == nullptr ? std::string("of the method")
                                                 : descriptor->input_type()->full_name();
  return absl::StrCat("the request's bytes do not parse as message ", type,
                      ": truncated or malformed protobuf, or a string field holding "
                      "invalid UTF-8");
}

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
