#include "server/inference_service.h"

#include <atomic>
#include <exception>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model_store/model_config.h"
#include "model_store/server_fault.h"
#include "model_store/status_macros.h"
#include "model_store/torch_errors.h"
#include "server/event_log.h"
#include "server/grpc_status.h"
#include "server/request_inputs.h"

namespace headway {
namespace {

RequestControl ControlOf(grpc::CallbackServerContext* context) {
  RequestControl control;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    control.deadline = absl::FromChrono(context->deadline());
  }
  control.cancelled = [context] { return context->IsCancelled(); };
  return control;
}

// The status for a request that nobody waits for any more, or OK.
absl::Status Abandoned(const RequestControl& control) {
  if (control.cancelled()) return absl::CancelledError("the request was cancelled");
  if (absl::Now() > control.deadline) {
    return absl::DeadlineExceededError("the request's deadline passed before it ran");
  }
  return absl::OkStatus();
}

void FillEmbed(const Model& model, const EmbedResult& result,
               v1::EmbedResponse& response) {
  response.set_model(model.name());
  response.set_device(model.device());
  response.set_model_version(result.model_version);
  response.set_dimension(static_cast<int32_t>(result.dimension));
  for (const std::vector<float>& embedding : result.embeddings) {
    response.add_embeddings()->mutable_values()->Add(embedding.begin(), embedding.end());
  }
}

void FillClassify(const Model& model, const ClassifyResult& result,
                  v1::ClassifyResponse& response) {
  response.set_model(model.name());
  response.set_device(model.device());
  response.set_model_version(result.model_version);
  response.set_head(result.head);
  response.set_head_version(result.head_version);
  for (const std::vector<ScoredLabel>& labels : result.results) {
    v1::Classification& classification = *response.add_results();
    for (const ScoredLabel& scored : labels) {
      v1::ScoredLabel& out = *classification.add_labels();
      out.set_label(scored.label);
      out.set_index(scored.index);
      out.set_score(scored.score);
    }
  }
}

// One inference call from arrival to answer: finishing it records its metrics and
// logs a failure. Copies share the call; only the first Finish answers it.
class Call {
 public:
  // The call was admitted by `gate`, which it releases when it finishes.
  // `requested_model` and `requested_head` are the request's (they outlive the call's
  // answer), for the log.
  Call(const char* rpc, grpc::ServerUnaryReactor* reactor, ServerMetrics* metrics,
       CallGate* gate, ClientErrorLog* errors, absl::string_view requested_model,
       absl::string_view requested_head = "")
      : rpc_(rpc),
        reactor_(reactor),
        metrics_(metrics),
        gate_(gate),
        errors_(errors),
        requested_model_(requested_model),
        requested_head_(requested_head),
        start_(absl::Now()) {
    metrics_->RequestStarted();
  }

  // `model` and `head` served the call; empty when it failed before reaching them.
  void Finish(const absl::Status& status, absl::string_view model = "",
              absl::string_view head = "") const {
    if (finished_->exchange(true)) return;
    const absl::Duration latency = absl::Now() - start_;
    metrics_->RequestFinished(rpc_, model, head, status.code(), latency);
    if (!status.ok()) Log(status, latency);
    if (admitted_ != nullptr) admitted_->Release();
    gate_->Release();
    reactor_->Finish(ToGrpcStatus(status));
  }

  // Logs a failure: every server fault, and client errors at ClientErrorLog's rate.
  void Log(const absl::Status& status, absl::Duration latency) const {
    const bool server_fault = IsServerFault(status);
    int64_t suppressed = 0;
    if (!server_fault &&
        !errors_->ShouldLog(rpc_, status.code(), absl::Now(), suppressed)) {
      return;
    }
    LogEvent(server_fault ? LogLevel::kError : LogLevel::kWarning,
             server_fault ? "request_failed_server_fault" : "request_failed",
             {{"rpc", rpc_},
              {"model", EchoName(requested_model_)},
              {"head", EchoName(requested_head_)},
              {"code", absl::StatusCodeToString(status.code())},
              {"duration_ms", absl::StrCat(absl::ToDoubleMilliseconds(latency))},
              {"suppressed", absl::StrCat(suppressed)},
              {"message", std::string(status.message())}});
  }

  // The call holds one of `model`'s admissions, released when it finishes. Set before
  // the call is copied.
  void HoldAdmission(std::shared_ptr<const Model> model) { admitted_ = std::move(model); }

 private:
  const char* const rpc_;
  grpc::ServerUnaryReactor* const reactor_;
  ServerMetrics* const metrics_;
  CallGate* const gate_;
  ClientErrorLog* const errors_;
  const absl::string_view requested_model_;
  const absl::string_view requested_head_;
  const absl::Time start_;
  const std::shared_ptr<std::atomic<bool>> finished_ =
      std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<const Model> admitted_;
};

// Runs `serve`, a step of `call` on a server thread; whatever escapes it answers the
// call as a server fault (if nothing answered it yet) instead of ending the thread.
template <typename Serve>
void ServeGuarded(const Call& call, Serve&& serve) {
  try {
    serve();
  } catch (...) {
    call.Finish(StatusFromException("serving the request", absl::StatusCode::kInternal,
                                    std::current_exception()));
  }
}

// Looks the model up and admits the call to it, on the gRPC thread, so that a call
// refused costs no worker time; on refusal answers the call and returns null.
template <typename Request>
std::shared_ptr<Model> AdmitToModel(const ModelRegistry& registry, const Request& request,
                                    Call& call) {
  absl::StatusOr<std::shared_ptr<Model>> model =
      registry.Find(request.model(), request.device());
  if (!model.ok()) {
    call.Finish(model.status());
    return nullptr;
  }
  if (const absl::Status admitted = (*model)->Admit(); !admitted.ok()) {
    call.Finish(admitted, (*model)->name());
    return nullptr;
  }
  call.HoldAdmission(*model);
  return *std::move(model);
}

// Converts the inputs of a call still wanted; on error answers the call and returns
// false.
template <typename Request>
bool PrepareInputs(const Request& request, const RequestControl& control,
                   const Model& model, const Call& call, std::vector<InputView>& inputs) {
  absl::Status status = Abandoned(control);
  absl::StatusOr<std::vector<InputView>> views =
      status.ok() ? ToInputViews(request.inputs()) : status;
  if (!views.ok()) {
    call.Finish(views.status(), model.name());
    return false;
  }
  inputs = *std::move(views);
  return true;
}

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(const ModelRegistry* registry,
                                           WorkerPool* workers, CallGate* gate,
                                           ServerMetrics* metrics)
    : registry_(registry), workers_(workers), gate_(gate), metrics_(metrics) {}

template <typename Result, typename Request, typename Start, typename Fill>
grpc::ServerUnaryReactor* InferenceServiceImpl::Serve(
    const char* rpc, grpc::CallbackServerContext* context, const Request* request,
    absl::string_view requested_head, Start start, Fill fill) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!gate_->Admit(rpc, reactor)) return reactor;
  Call call(rpc, reactor, metrics_, gate_, &errors_, request->model(), requested_head);
  std::shared_ptr<Model> model = AdmitToModel(*registry_, *request, call);
  if (model == nullptr) return reactor;
  workers_->Schedule([context, request, call, model, start, fill] {
    ServeGuarded(call, [&] {
      RequestControl control = ControlOf(context);
      std::vector<InputView> inputs;
      if (!PrepareInputs(*request, control, *model, call, inputs)) return;
      start(*model, inputs, std::move(control),
            [model, call, fill](absl::StatusOr<Result> result) {
              ServeGuarded(call, [&] {
                const std::string head = result.ok() ? fill(*model, *result) : "";
                call.Finish(result.status(), model->name(), head);
              });
            });
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Embed(
    grpc::CallbackServerContext* context, const v1::EmbedRequest* request,
    v1::EmbedResponse* response) {
  return Serve<EmbedResult>(
      "Embed", context, request, "",
      [l2_normalize = request->l2_normalize()](const Model& model,
                                               absl::Span<const InputView> inputs,
                                               RequestControl control, auto done) {
        model.EmbedAsync(inputs, l2_normalize, std::move(control), std::move(done));
      },
      [response](const Model& model, const EmbedResult& result) {
        FillEmbed(model, result, *response);
        return std::string();
      });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(
    grpc::CallbackServerContext* context, const v1::ClassifyRequest* request,
    v1::ClassifyResponse* response) {
  return Serve<ClassifyResult>(
      "Classify", context, request, request->head(),
      [request](const Model& model, absl::Span<const InputView> inputs,
                RequestControl control, auto done) {
        model.ClassifyAsync(inputs, request->head(), request->top_k(), std::move(control),
                            std::move(done));
      },
      [response](const Model& model, const ClassifyResult& result) {
        FillClassify(model, result, *response);
        return result.head;
      });
}

}  // namespace headway
