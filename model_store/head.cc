#include "model_store/head.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "model_store/checkpoint.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "model_store/store/model_files.h"
#include "model_store/torch_errors.h"

namespace headway {

namespace {

// The weight [C, D] and bias [C] of a linear head saved as a state_dict.
absl::Status TakeLinearLayer(const StateDict& state_dict, absl::string_view key_prefix,
                             at::Tensor& weight, at::Tensor& bias) {
  const StateDict selected = SelectKeys(state_dict, key_prefix);
  for (const auto& [name, tensor] : selected) {
    if (name == "weight") weight = tensor;
    if (name == "bias") bias = tensor;
  }
  if (!weight.defined() || weight.dim() != 2 ||
      (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))) {
    std::vector<std::string> keys;
    for (const auto& [name, tensor] : state_dict) keys.push_back(name);
    if (keys.size() > 8) keys.resize(8);
    return absl::InvalidArgumentError(absl::StrCat(
        "a state_dict head needs ", key_prefix, "weight [C, D] and ", key_prefix,
        "bias [C] (key_prefix selects them in a whole model's state_dict); its keys: ",
        absl::StrJoin(keys, ", "), state_dict.size() > 8 ? ", ..." : ""));
  }
  weight = weight.to(torch::kFloat32).contiguous();
  if (bias.defined()) bias = bias.to(torch::kFloat32).contiguous();
  return absl::OkStatus();
}

}  // namespace

absl::Status Head::CheckFiniteWeights() const {
  std::vector<std::pair<std::string, at::Tensor>> weights;
  if (module_) {
    for (const auto& parameter : module_->named_parameters()) {
      weights.emplace_back(parameter.name, parameter.value);
    }
    for (const auto& buffer : module_->named_buffers()) {
      weights.emplace_back(buffer.name, buffer.value);
    }
  } else {
    weights.emplace_back("weight", weight_);
    if (bias_.defined()) weights.emplace_back("bias", bias_);
  }
  for (const auto& [weight_name, tensor] : weights) {
    if (tensor.is_floating_point() && !at::isfinite(tensor).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "head \"", name_, "\": its ", weight_name,
          " holds NaN or infinite values; every score it gave would be NaN"));
    }
  }
  return absl::OkStatus();
}

Head::Head(std::string name, int64_t version)
    : name_(std::move(name)), version_(version) {}

absl::StatusOr<std::shared_ptr<const Head>> Head::Load(const HeadSpec& spec) {
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(spec.checkpoint, spec.device);
  if (!checkpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "loading head \"", spec.name, "\": ", checkpoint.status().message()));
  }
  std::shared_ptr<Head> head(new Head(spec.name, spec.version));
  head->digest_ = spec.digest;
  head->source_ = spec.source;
  if (checkpoint->module) {
    head->module_ = std::move(checkpoint->module);
    // A linear layer states its input size: say exactly what differs.
    if (head->module_->hasattr("weight") && head->module_->attr("weight").isTensor()) {
      head->weight_ = head->module_->attr("weight").toTensor();
    }
  } else {
    absl::Status linear = TakeLinearLayer(checkpoint->state_dict, spec.key_prefix,
                                          head->weight_, head->bias_);
    if (!linear.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("loading head \"", spec.name, "\": ", linear.message()));
    }
  }
  if (head->weight_.defined() && head->weight_.dim() == 2 &&
      head->weight_.size(1) != spec.feature_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("head \"", spec.name, "\" takes ", head->weight_.size(1),
                     " features; the backbone gives ", spec.feature_dim));
  }

  c10::InferenceMode inference;
  const at::Tensor probe = torch::zeros(
      {1, spec.feature_dim}, torch::dtype(torch::kFloat32).device(spec.device));
  absl::StatusOr<at::Tensor> logits = head->Forward(probe);
  if (!logits.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("head \"", spec.name, "\" cannot take the backbone's ",
                     spec.feature_dim, " features: ", logits.status().message()));
  }
  HEADWAY_RETURN_IF_ERROR(head->CheckFiniteWeights());
  if (!at::isfinite(*logits).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "head \"", spec.name, "\" gives NaN or infinite scores for a zero input"));
  }
  const int64_t classes = logits->size(1);
  const std::vector<std::string>& labels =
      spec.labels.empty() ? checkpoint->labels : spec.labels;
  if (labels.empty()) {
    for (int64_t i = 0; i < classes; ++i) head->labels_.push_back(std::to_string(i));
  } else if (static_cast<int64_t>(labels.size()) != classes) {
    return absl::InvalidArgumentError(absl::StrCat("head \"", spec.name, "\" has ",
                                                   classes, " classes but ",
                                                   labels.size(), " labels"));
  } else {
    const std::set<absl::string_view> distinct(labels.begin(), labels.end());
    if (distinct.size() != labels.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("head \"", spec.name, "\" has duplicate labels"));
    }
    head->labels_ = labels;
  }
  return std::shared_ptr<const Head>(std::move(head));
}

absl::StatusOr<at::Tensor> Head::Forward(const at::Tensor& features) const {
  HEADWAY_ASSIGN_OR_RETURN(
      at::Tensor logits, CallTorch("head forward", absl::StatusCode::kInternal, [&] {
        if (!module_) return at::linear(features, weight_, bias_);
        c10::IValue output = [&] {
          absl::ReaderMutexLock running(&TorchScriptForkGate());
          return module_->forward({features});
        }();
        if (!output.isTensor()) {
          throw std::runtime_error(
              absl::StrCat("head returned a ", output.tagKind(), ", not a tensor"));
        }
        return output.toTensor();
      }));
  if (logits.dim() != 2 || logits.size(0) != features.size(0) || logits.size(1) < 1) {
    return absl::InternalError(
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
