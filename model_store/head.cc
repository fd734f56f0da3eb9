#include "model_store/head.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "model_store/torch_errors.h"

namespace headway {

Head::Head(std::string name, torch::jit::Module module, int64_t version)
    : name_(std::move(name)), module_(std::move(module)), version_(version) {}

absl::StatusOr<std::shared_ptr<const Head>> Head::Load(const HeadSpec& spec) {
  const std::string context = absl::StrCat("loading head \"", spec.name, "\"");
  HEADWAY_ASSIGN_OR_RETURN(torch::jit::Module module,
                           CallTorch(context, absl::StatusCode::kInvalidArgument, [&] {
                             std::istringstream archive(spec.checkpoint);
                             torch::jit::Module m =
                                 torch::jit::load(archive, spec.device);
                             m.eval();
                             return m;
                           }));

  // A linear layer states its input size: say exactly what differs.
  if (module.hasattr("weight") && module.attr("weight").isTensor()) {
    const at::Tensor weight = module.attr("weight").toTensor();
    if (weight.dim() == 2 && weight.size(1) != spec.feature_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("head \"", spec.name, "\" takes ", weight.size(1),
                       " features; the backbone gives ", spec.feature_dim));
    }
  }
  std::shared_ptr<Head> head(new Head(spec.name, std::move(module), spec.version));

  c10::InferenceMode inference;
  const at::Tensor probe = torch::zeros(
      {1, spec.feature_dim}, torch::dtype(torch::kFloat32).device(spec.device));
  absl::StatusOr<at::Tensor> logits = head->Forward(probe);
  if (!logits.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("head \"", spec.name, "\" cannot take the backbone's ",
                     spec.feature_dim, " features: ", logits.status().message()));
  }
  const int64_t classes = logits->size(1);
  if (spec.labels.empty()) {
    for (int64_t i = 0; i < classes; ++i) head->labels_.push_back(std::to_string(i));
  } else if (static_cast<int64_t>(spec.labels.size()) != classes) {
    return absl::InvalidArgumentError(absl::StrCat("head \"", spec.name, "\" has ",
                                                   classes, " classes but ",
                                                   spec.labels.size(), " labels"));
  } else {
    head->labels_ = spec.labels;
  }
  return std::shared_ptr<const Head>(std::move(head));
}

absl::StatusOr<at::Tensor> Head::Forward(const at::Tensor& features) const {
  HEADWAY_ASSIGN_OR_RETURN(
      at::Tensor logits,
      CallTorch("head forward", absl::StatusCode::kInvalidArgument, [&] {
        c10::IValue output = module_.forward({features});
        if (!output.isTensor()) {
          throw std::runtime_error(
              absl::StrCat("head returned a ", output.tagKind(), ", not a tensor"));
        }
        return output.toTensor();
      }));
  if (logits.dim() != 2 || logits.size(0) != features.size(0) || logits.size(1) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("head returned shape ", c10::str(logits.sizes()), " for ",
                     features.size(0), " feature rows; expected [N, classes]"));
  }
  return logits;
}

absl::StatusOr<std::vector<std::string>> ReadLabelsFile(
    const std::filesystem::path& path) {
  HEADWAY_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::vector<std::string> labels = absl::StrSplit(text, '\n');
  if (!labels.empty() && labels.back().empty()) labels.pop_back();
  for (std::string& label : labels) {
    if (!label.empty() && label.back() == '\r') label.pop_back();
  }
  if (labels.empty())
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " has no labels"));
  return labels;
}

}  // namespace headway
