#include "server/fit_head.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "model_store/example_split.h"
#include "model_store/head_fitting.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "server/request_inputs.h"

namespace headway {
namespace {

double MillisecondsSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

// The backbone's features of every input, in requests the model accepts.
absl::StatusOr<std::vector<std::vector<float>>> EmbedAll(
    const Model& model, const v1::FitHeadRequest& request) {
  HEADWAY_ASSIGN_OR_RETURN(const std::vector<InputView> views,
                           ToInputViews(request.inputs()));
  const size_t chunk = std::max(1, model.config().limits().max_inputs_per_request());
  std::vector<std::vector<float>> features;
  for (size_t start = 0; start < views.size(); start += chunk) {
    const size_t count = std::min(chunk, views.size() - start);
    absl::StatusOr<EmbedResult> embedded =
        model.Embed(absl::MakeConstSpan(views).subspan(start, count), false);
    if (!embedded.ok()) {
      // The core names the input within its chunk; name it within the request.
      return absl::Status(embedded.status().code(),
                          absl::StrCat("examples ", start, "-", start + count - 1, ": ",
                                       embedded.status().message()));
    }
    for (int64_t row = 0; row < embedded->rows; ++row) {
      const absl::Span<const float> values = embedded->row(row);
      features.emplace_back(values.begin(), values.end());
    }
  }
  return features;
}

}  // namespace

absl::Status RunFitHead(ModelRegistry& registry, const v1::FitHeadRequest& request,
                        int64_t max_examples, v1::FitHeadResponse& response) {
  HEADWAY_RETURN_IF_ERROR(ValidateHeadName(request.head()));
  const int64_t examples = request.inputs_size() + request.embeddings_size();
  if (request.inputs_size() > 0 && request.embeddings_size() > 0) {
    return absl::InvalidArgumentError("give inputs or embeddings, not both");
  }
  if (examples == 0) return absl::InvalidArgumentError("no examples");
  if (examples > max_examples) {
    return absl::InvalidArgumentError(absl::StrCat(
        examples, " examples; the limit is ", max_examples, " (--max_fit_examples)"));
  }
  if (request.labels_size() != examples) {
    return absl::InvalidArgumentError(
        absl::StrCat(examples, " examples but ", request.labels_size(), " labels"));
  }
  std::vector<std::string> classes(request.classes().begin(), request.classes().end());
  std::vector<int> labels;
  HEADWAY_RETURN_IF_ERROR(IndexLabels(
      std::vector<std::string>(request.labels().begin(), request.labels().end()), classes,
      labels));
  HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model,
                           registry.Find(request.model(), request.device()));
  const ModelInfo info = model->Info();
  const bool exists =
      std::any_of(info.heads.begin(), info.heads.end(),
                  [&](const HeadInfo& h) { return h.name == request.head(); });
  if (exists && !request.replace()) {
    return absl::AlreadyExistsError(
        absl::StrCat("model \"", model->name(), "\" has a head \"", request.head(),
                     "\" already; set replace to fit it anew"));
  }

  absl::Time start = absl::Now();
  std::vector<std::vector<float>> features;
  if (request.inputs_size() > 0) {
    HEADWAY_ASSIGN_OR_RETURN(features, EmbedAll(*model, request));
  } else {
    for (const v1::Embedding& embedding : request.embeddings()) {
      features.emplace_back(embedding.values().begin(), embedding.values().end());
    }
    if (features[0].size() != static_cast<size_t>(info.feature_dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat("embeddings have ", features[0].size(), " values; model \"",
                       model->name(), "\" has ", info.feature_dim, " features"));
    }
  }
  response.set_embed_ms(MillisecondsSince(start));

  start = absl::Now();
  HeadFitOptions options;
  options.l2 = request.l2();
  options.validation_fraction = request.validation_fraction() == 0
                                    ? 0.2
                                    : std::max(0.0, request.validation_fraction());
  options.max_iterations = request.max_iterations();
  options.seed = request.seed() == 0 ? 1 : request.seed();
  HEADWAY_ASSIGN_OR_RETURN(
      HeadFit fit,
      FitLinearHead(features, labels, static_cast<int>(classes.size()), options));
  response.set_fit_ms(MillisecondsSince(start));

  start = absl::Now();
  HeadSwap swap;
  swap.head = request.head();
  swap.checkpoint = std::move(fit.checkpoint);
  swap.labels = classes;
  swap.source =
      absl::StrCat("FitHead: ", features.size(), " examples, validation accuracy ",
                   fit.validation_accuracy < 0
                       ? std::string("none")
                       : absl::StrFormat("%.4f on %d held out", fit.validation_accuracy,
                                         fit.validation_examples),
                   ", l2 ", fit.l2);
  HEADWAY_ASSIGN_OR_RETURN(const SwapResult installed,
                           registry.SwapHead(request.model(), swap, request.persist()));
  response.set_install_ms(MillisecondsSince(start));

  response.set_model(model->name());
  response.set_head(installed.head.name);
  response.set_head_version(installed.head.version);
  for (size_t c = 0; c < classes.size(); ++c) {
    response.add_classes(classes[c]);
    response.add_examples_per_class(fit.examples_per_class[c]);
  }
  response.set_train_accuracy(fit.train_accuracy);
  response.set_validation_accuracy(fit.validation_accuracy);
  response.set_validation_examples(fit.validation_examples);
  response.set_final_loss(fit.final_loss);
  response.set_iterations(fit.iterations);
  response.set_l2(fit.l2);
  for (const std::string& device : installed.devices) response.add_devices(device);
  return absl::OkStatus();
}

}  // namespace headway
