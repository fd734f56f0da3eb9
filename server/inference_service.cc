#include "server/inference_service.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "model_store/status_macros.h"
#include "server/grpc_status.h"

namespace headway {
namespace {

absl::StatusOr<std::vector<InputView>> ToInputViews(
    const google::protobuf::RepeatedPtrField<v1::Input>& inputs) {
  std::vector<InputView> views;
  views.reserve(inputs.size());
  for (int i = 0; i < inputs.size(); ++i) {
    const v1::Input& input = inputs[i];
    InputView& view = views.emplace_back();
    switch (input.kind_case()) {
      case v1::Input::kImage:
        view.kind = InputView::Kind::kEncodedImage;
        view.data = input.image();
        break;
      case v1::Input::kTensor:
        view.kind = InputView::Kind::kTensor;
        view.data = input.tensor().data();
        view.shape.assign(input.tensor().shape().begin(), input.tensor().shape().end());
        switch (input.tensor().dtype()) {
          case v1::UINT8:
            view.dtype = TensorType::kUint8;
            break;
          case v1::FLOAT32:
            view.dtype = TensorType::kFloat32;
            break;
          default:
            return absl::InvalidArgumentError(
                absl::StrCat("input ", i, ": tensor dtype must be UINT8 or FLOAT32"));
        }
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("input ", i, ": set either image or tensor"));
    }
  }
  return views;
}

absl::Status RunEmbed(const ModelRegistry& registry, const v1::EmbedRequest& request,
                      v1::EmbedResponse& response) {
  HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model,
                           registry.Find(request.model(), request.device()));
  HEADWAY_ASSIGN_OR_RETURN(const std::vector<InputView> inputs,
                           ToInputViews(request.inputs()));
  HEADWAY_ASSIGN_OR_RETURN(const EmbedResult result,
                           model->Embed(inputs, request.l2_normalize()));
  response.set_model(model->name());
  response.set_device(model->device());
  response.set_model_version(result.model_version);
  response.set_dimension(static_cast<int32_t>(result.dimension));
  for (const std::vector<float>& embedding : result.embeddings) {
    response.add_embeddings()->mutable_values()->Add(embedding.begin(), embedding.end());
  }
  return absl::OkStatus();
}

absl::Status RunClassify(const ModelRegistry& registry,
                         const v1::ClassifyRequest& request,
                         v1::ClassifyResponse& response) {
  HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model,
                           registry.Find(request.model(), request.device()));
  HEADWAY_ASSIGN_OR_RETURN(const std::vector<InputView> inputs,
                           ToInputViews(request.inputs()));
  HEADWAY_ASSIGN_OR_RETURN(const ClassifyResult result,
                           model->Classify(inputs, request.head(), request.top_k()));
  response.set_model(model->name());
  response.set_device(model->device());
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
  return absl::OkStatus();
}

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(const ModelRegistry* registry,
                                           WorkerPool* workers)
    : registry_(registry), workers_(workers) {}

grpc::ServerUnaryReactor* InferenceServiceImpl::Embed(
    grpc::CallbackServerContext* context, const v1::EmbedRequest* request,
    v1::EmbedResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  workers_->Schedule([this, reactor, request, response] {
    reactor->Finish(ToGrpcStatus(RunEmbed(*registry_, *request, *response)));
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(
    grpc::CallbackServerContext* context, const v1::ClassifyRequest* request,
    v1::ClassifyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  workers_->Schedule([this, reactor, request, response] {
    reactor->Finish(ToGrpcStatus(RunClassify(*registry_, *request, *response)));
  });
  return reactor;
}

}  // namespace headway
