#include "model_store/backbone.h"

#include "absl/strings/str_cat.h"
#include "model_store/status_macros.h"
#include "model_store/torch_errors.h"

namespace headway {

Backbone::Backbone(torch::jit::Module module, c10::Device device)
    : module_(std::move(module)), device_(device) {}

absl::StatusOr<std::unique_ptr<Backbone>> Backbone::Load(
    const std::filesystem::path& file, c10::Device device,
    const std::vector<int64_t>& input_shape) {
  const std::string context = absl::StrCat("loading backbone ", file.string());
  HEADWAY_ASSIGN_OR_RETURN(torch::jit::Module module,
                           CallTorch(context, absl::StatusCode::kInvalidArgument, [&] {
                             torch::jit::Module m =
                                 torch::jit::load(file.string(), device);
                             m.eval();
                             return m;
                           }));
  std::unique_ptr<Backbone> backbone(new Backbone(std::move(module), device));

  c10::InferenceMode inference;
  std::vector<int64_t> probe_shape = {1};
  probe_shape.insert(probe_shape.end(), input_shape.begin(), input_shape.end());
  HEADWAY_ASSIGN_OR_RETURN(
      at::Tensor features,
      backbone->Forward(
          torch::zeros(probe_shape, torch::dtype(torch::kFloat32).device(device))));
  backbone->feature_dim_ = features.size(1);
  return backbone;
}

absl::StatusOr<at::Tensor> Backbone::Forward(const at::Tensor& batch) const {
  HEADWAY_ASSIGN_OR_RETURN(
      at::Tensor features,
      CallTorch("backbone forward", absl::StatusCode::kInvalidArgument, [&] {
        c10::IValue output = module_.forward({batch});
        if (!output.isTensor()) {
          throw std::runtime_error(
              absl::StrCat("backbone returned a ", output.tagKind(), ", not a tensor"));
        }
        return output.toTensor();
      }));
  if (features.dim() < 2 || features.size(0) != batch.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backbone returned shape ", c10::str(features.sizes()), " for a batch of ",
        batch.size(0), "; expected one feature row per item"));
  }
  return features.dim() == 2 ? features : features.flatten(1);
}

}  // namespace headway
