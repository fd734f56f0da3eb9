#include "server/inference_service.h"

#include <memory>
#include <vector>

#include "server/request_inputs.h"

namespace headway {
namespace {

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

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(const ModelRegistry* registry,
                                           WorkerPool* workers, CallGate* gate,
                                           ServerMetrics* metrics)
    : serving_{registry, workers, gate, metrics, &errors_} {}

template <typename Result, typename Request, typename Start, typename Fill>
grpc::ServerUnaryReactor* InferenceServiceImpl::Serve(
    const char* rpc, grpc::CallbackServerContext* context, const Request* request,
    absl::string_view requested_head, Start start, Fill fill) {
  return ServeInference(
      serving_, rpc, context, request->model(), request->device(), requested_head,
      [request, start, fill](const std::shared_ptr<Model>& model, RequestControl control,
                             const InferenceCall& call) {
        absl::StatusOr<std::vector<InputView>> inputs = ToInputViews(request->inputs());
        if (!inputs.ok()) {
          call.Finish(inputs.status(), model->name());
          return;
        }
        start(*model, *inputs, std::move(control),
              [model, call, fill](absl::StatusOr<Result> result) {
                ServeGuarded(call, [&] {
                  const std::string head = result.ok() ? fill(*model, *result) : "";
                  call.Finish(result.status(), model->name(), head);
                });
              });
      });
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
