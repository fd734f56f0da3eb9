#include "server/inference_call.h"

#include <chrono>

#include "absl/time/clock.h"
#include "model_store/model_config.h"
#include "server/grpc_status.h"

namespace headway {

InferenceCall::InferenceCall(const char* rpc, grpc::ServerUnaryReactor* reactor,
                             const InferenceServing& serving,
                             absl::string_view requested_model,
                             absl::string_view requested_head)
    : rpc_(rpc),
      reactor_(reactor),
      serving_(serving),
      requested_model_(requested_model),
      requested_head_(requested_head),
      start_(absl::Now()) {
  serving_.metrics->RequestStarted();
}

void InferenceCall::Finish(const absl::Status& status, absl::string_view model,
                           absl::string_view head) const {
  if (finished_->exchange(true)) return;
  const absl::Duration latency = absl::Now() - start_;
  serving_.metrics->RequestFinished(rpc_, model, head, status.code(), latency);
  if (!status.ok()) {
    serving_.errors->LogFailure(rpc_, EchoName(requested_model_),
                                EchoName(requested_head_), status, latency);
  }
  if (admitted_ != nullptr) {
    // Refused after admission (a deadline that cannot be met, a full queue, a
    // client gone): nothing was answered, which the model's flood detection counts.
    const absl::StatusCode code = status.code();
    admitted_->Release(code != absl::StatusCode::kDeadlineExceeded &&
                       code != absl::StatusCode::kResourceExhausted &&
                       code != absl::StatusCode::kCancelled);
  }
  serving_.gate->Release();
  reactor_->Finish(ToGrpcStatus(status));
}

RequestControl ControlOf(grpc::CallbackServerContext* context) {
  RequestControl control;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    control.deadline = absl::FromChrono(context->deadline());
  }
  control.cancelled = [context] { return context->IsCancelled(); };
  return control;
}

absl::Status Abandoned(const RequestControl& control) {
  if (control.cancelled()) return absl::CancelledError("the request was cancelled");
  if (absl::Now() > control.deadline) {
    return absl::DeadlineExceededError("the request's deadline passed before it ran");
  }
  return absl::OkStatus();
}

}  // namespace headway
