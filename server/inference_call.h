// InferenceCall: one inference call of any protocol (headway.v1, the Open Inference
// Protocol) from its arrival to its answer, and ServeInference, the path every such
// call takes: the server's CallGate, then the model's admission (both on the gRPC
// thread, so a refused call costs no worker time), then the protocol's own work on a
// worker thread, or on the gRPC thread for inputs that need no decoding. Finishing a call
// records its metrics, logs a failure (client errors at ClientErrorLog's rate, server
// faults each) and releases its admissions.
//
// Thread safety: copies of an InferenceCall share one call and may finish it from any
// thread; only the first Finish answers it.
#ifndef HEADWAY_SERVER_INFERENCE_CALL_H_
#define HEADWAY_SERVER_INFERENCE_CALL_H_

#include <grpcpp/server_context.h>

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "model_store/model.h"
#include "model_store/model_registry.h"
#include "model_store/request_control.h"
#include "model_store/torch_errors.h"
#include "server/call_gate.h"
#include "server/client_error_log.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace headway {

// What inference calls share within one server; every pointer outlives the calls.
struct InferenceServing {
  const ModelRegistry* registry = nullptr;
  WorkerPool* workers = nullptr;
  CallGate* gate = nullptr;
  ServerMetrics* metrics = nullptr;
  ClientErrorLog* errors = nullptr;
};

class InferenceCall {
 public:
  // The call was admitted by the serving's gate, which it releases when it finishes.
  // `requested_model` and `requested_head` are the request's (they outlive the call's
  // answer), for the log.
  InferenceCall(const char* rpc, grpc::ServerUnaryReactor* reactor,
                const InferenceServing& serving, absl::string_view requested_model,
                absl::string_view requested_head);

  // `model` and `head` served the call; empty when it failed before reaching them.
  void Finish(const absl::Status& status, absl::string_view model = "",
              absl::string_view head = "") const;

  // The call holds one of `model`'s admissions, released when it finishes. Set before
  // the call is copied.
  void HoldAdmission(std::shared_ptr<const Model> model) { admitted_ = std::move(model); }

 private:
  const char* rpc_;
  grpc::ServerUnaryReactor* reactor_;
  InferenceServing serving_;
  absl::string_view requested_model_;
  absl::string_view requested_head_;
  absl::Time start_;
  std::shared_ptr<std::atomic<bool>> finished_ =
      std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<const Model> admitted_;
};

// The request's deadline and cancellation, as the core sees them.
RequestControl ControlOf(grpc::CallbackServerContext* context);

// The status for a request that nobody waits for any more, or OK.
absl::Status Abandoned(const RequestControl& control);

// Runs `serve`, a step of `call` on a server thread; whatever escapes it answers the
// call as a server fault (if nothing answered it yet) instead of ending the thread.
template <typename Serve>
void ServeGuarded(const InferenceCall& call, Serve&& serve) {
  try {
    serve();
  } catch (...) {
    call.Finish(StatusFromException("serving the request", absl::StatusCode::kInternal,
                                    std::current_exception()));
  }
}

// Where an admitted call's own work (reading its inputs, preparing them, handing them
// to the model's batcher) runs. kWorker: on the worker pool, for inputs that need
// decoding or resizing (an encoded image, uint8 pixels), which may take milliseconds.
// kGrpcThread: on the gRPC thread that admitted it, for float32 tensors only: their
// preparation is one copy of bytes that thread has just parsed, cheaper than the
// hand-off (a small model's requests then skip a thread switch each).
enum class CallWork { kWorker, kGrpcThread };

// Admits a call for `model_name` (on `device`, "" for any instance) and runs
// `run(model, control, call)` where `work` says; `run` answers the call through
// call.Finish and never waits for the model. A call refused by the gate, an unknown
// model or the model's admission is answered here. Returns the call's reactor.
template <typename Run>
grpc::ServerUnaryReactor* ServeInference(const InferenceServing& serving, const char* rpc,
                                         grpc::CallbackServerContext* context,
                                         absl::string_view model_name,
                                         absl::string_view device,
                                         absl::string_view requested_head, CallWork work,
                                         Run run) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!serving.gate->Admit(rpc, reactor)) return reactor;
  InferenceCall call(rpc, reactor, serving, model_name, requested_head);
  absl::StatusOr<std::shared_ptr<Model>> model =
      serving.registry->Find(model_name, device);
  if (!model.ok()) {
    call.Finish(model.status());
    return reactor;
  }
  if (const absl::Status admitted = (*model)->Admit(); !admitted.ok()) {
    call.Finish(admitted, (*model)->name());
    return reactor;
  }
  call.HoldAdmission(*model);
  auto serve = [context, call, model = *std::move(model), run] {
    ServeGuarded(call, [&] {
      RequestControl control = ControlOf(context);
      if (absl::Status abandoned = Abandoned(control); !abandoned.ok()) {
        call.Finish(abandoned, model->name());
        return;
      }
      run(model, std::move(control), call);
    });
  };
  if (work == CallWork::kGrpcThread) {
    serve();
  } else {
    serving.workers->Schedule(std::move(serve));
  }
  return reactor;
}

}  // namespace headway

#endif  // HEADWAY_SERVER_INFERENCE_CALL_H_
