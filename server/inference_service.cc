#include "server/inference_service.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"
#include "server/request_inputs.h"

namespace headway {
namespace {

void FillEmbed(const Model& model, const EmbedResult& result,
               v1::EmbedResponse& response) {
  response.set_model(model.name());
  response.set_device(model.device());
  response.set_model_version(result.model_version);
  response.set_dimension(static_cast<int32_t>(result.dimension));
  for (int64_t row = 0; row < result.rows; ++row) {
    const absl::Span<const float> embedding = result.row(row);
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

void FillModelMetadata(const Model& model,
                       const std::vector<std::shared_ptr<Model>>& instances,
                       v1::GetModelMetadataResponse& response) {
  const ModelInfo info = model.Info();
  const v1::ModelConfig& config = model.config();
  response.set_model(info.name);
  response.set_version(info.version);
  response.set_feature_dim(static_cast<int32_t>(info.feature_dim));
  *response.mutable_input() = config.input();
  const v1::InputSpec& input = config.input();

  v1::AcceptedInput& image = *response.add_accepted_inputs();
  image.set_kind("image");
  image.set_description(
      input.resize() == v1::InputSpec::NONE
          ? absl::StrCat("JPEG, PNG, BMP or WebP bytes, exactly ", input.width(), "x",
                         input.height())
          : "JPEG, PNG, BMP or WebP bytes, any size (resized as input.resize says)");
  v1::AcceptedInput& pixels = *response.add_accepted_inputs();
  pixels.set_kind("tensor");
  pixels.set_dtype(v1::UINT8);
  for (int64_t dim : {int64_t{-1}, int64_t{-1}, int64_t{-1}}) pixels.add_shape(dim);
  pixels.set_description(
      "pixels 0..255, [H, W, C] with C = 1 (grey) or 3 (RGB), or [H, W]; preprocessed "
      "as a decoded image is");
  v1::AcceptedInput& tensor = *response.add_accepted_inputs();
  tensor.set_kind("tensor");
  tensor.set_dtype(v1::FLOAT32);
  for (int64_t dim : {input.channels(), input.height(), input.width()}) {
    tensor.add_shape(dim);
  }
  tensor.set_description("a preprocessed model input; goes to the backbone unchanged");

  for (const HeadInfo& head : info.heads) {
    v1::HeadMetadata& out = *response.add_heads();
    out.set_name(head.name);
    out.set_version(head.version);
    out.set_num_classes(static_cast<int32_t>(head.num_classes));
    for (const std::string& label : head.labels) out.add_labels(label);
    out.set_is_default(head.is_default);
    out.set_digest(head.digest);
    if (head.is_default) response.set_default_head(head.name);
  }
  *response.mutable_batching() = config.batching();
  response.mutable_batching()->set_max_batch_size(info.serving.max_batch_size);
  response.mutable_batching()->set_max_queue_delay_us(
      absl::ToInt64Microseconds(info.serving.max_queue_delay));
  response.set_model_workers(info.serving.workers);
  response.set_max_inputs_per_request(config.limits().max_inputs_per_request());
  response.set_backbone_format(info.backbone_format);
  for (const std::shared_ptr<Model>& instance : instances) {
    const ModelInfo instance_info = instance->Info();
    v1::InstanceMetadata& out = *response.add_instances();
    out.set_device(instance_info.device);
    out.set_optimized(instance_info.optimized);
    out.set_optimize_note(instance_info.optimize_note);
    out.set_serving(instance_info.serving.summary);
  }
}

}  // namespace

grpc::ServerUnaryReactor* InferenceServiceImpl::GetModelMetadata(
    grpc::CallbackServerContext* context, const v1::GetModelMetadataRequest* request,
    v1::GetModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<Model>> model =
      serving_.registry->Find(request->model());
  if (!model.ok()) {
    reactor->Finish(ToGrpcStatus(model.status()));
    return reactor;
  }
  FillModelMetadata(**model, serving_.registry->List((*model)->name()), *response);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

InferenceServiceImpl::InferenceServiceImpl(const ModelRegistry* registry,
                                           WorkerPool* workers, CallGate* gate,
                                           ServerMetrics* metrics)
    : serving_{registry, workers, gate, metrics, &errors_} {}

template <typename Result, typename Request, typename Start, typename Fill>
grpc::ServerUnaryReactor* InferenceServiceImpl::Serve(
    const char* rpc, grpc::CallbackServerContext* context, const Request* request,
    absl::string_view requested_head, Start start, Fill fill) {
  const CallWork work =
      IsOneFloat32Tensor(request->inputs()) ? CallWork::kGrpcThread : CallWork::kWorker;
  return ServeInference(
      serving_, rpc, context, request->model(), request->device(), requested_head, work,
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
