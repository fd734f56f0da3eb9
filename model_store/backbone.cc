#include "model_store/backbone.h"

#include <time.h>
#include <torch/torch.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "model_store/store/model_files.h"
#include "model_store/torch_errors.h"
#include "model_store/torch_runtime.h"

namespace headway {
namespace {

absl::StatusOr<std::optional<Checkpoint::Contents>> ExpectedContents(
    v1::BackboneConfig::Format format) {
  switch (format) {
    case v1::BackboneConfig::TORCHSCRIPT:
      return Checkpoint::Contents::kTorchScriptModule;
    case v1::BackboneConfig::STATE_DICT:
      return Checkpoint::Contents::kStateDict;
    case v1::BackboneConfig::TRAINING_CHECKPOINT:
      return Checkpoint::Contents::kTrainingCheckpoint;
    case v1::BackboneConfig::FORMAT_UNSPECIFIED:
      return std::nullopt;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown backbone.format ", format));
  }
}

}  // namespace

absl::StatusOr<BackboneSpec> ReadBackboneSpec(const std::filesystem::path& model_dir,
                                              const v1::BackboneConfig& config) {
  BackboneSpec spec;
  HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path weights,
                           ResolveModelFile(model_dir, config.file()));
  HEADWAY_ASSIGN_OR_RETURN(spec.weights, ReadFileToString(weights));
  if (!config.architecture().empty()) {
    HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path architecture,
                             ResolveModelFile(model_dir, config.architecture()));
    HEADWAY_ASSIGN_OR_RETURN(spec.architecture, ReadFileToString(architecture));
  }
  HEADWAY_ASSIGN_OR_RETURN(spec.expected_contents, ExpectedContents(config.format()));
  spec.load.mode = config.load_mode() == v1::BackboneConfig::PARTIAL ? LoadMode::kPartial
                                                                     : LoadMode::kStrict;
  spec.load.key_prefix = config.key_prefix();
  spec.load.ignore_prefixes.assign(config.ignore_prefixes().begin(),
                                   config.ignore_prefixes().end());
  return spec;
}

namespace {

// The TorchScript module of `spec`, with the weights loaded.
absl::StatusOr<torch::jit::Module> BuildModule(const BackboneSpec& spec,
                                               BackboneLoadInfo& info) {
  HEADWAY_ASSIGN_OR_RETURN(Checkpoint weights, ReadCheckpoint(spec.weights, spec.device));
  info.contents = weights.contents;
  if (spec.expected_contents && *spec.expected_contents != weights.contents) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a ", ContentsName(*spec.expected_contents),
                     " but the file is a ", ContentsName(weights.contents)));
  }
  info.saved_locations = weights.saved_locations;
  if (weights.contents == Checkpoint::Contents::kTorchScriptModule) {
    if (!spec.architecture.empty()) {
      return absl::InvalidArgumentError(
          "a TorchScript backbone carries its own architecture; drop "
          "backbone.architecture");
    }
    return *std::move(weights.module);
  }
  info.epoch = weights.epoch;
  info.labels = std::move(weights.labels);
  if (spec.architecture.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", ContentsName(weights.contents),
        " holds weights only: set backbone.architecture to a TorchScript archive of the "
        "network they load into"));
  }
  absl::StatusOr<Checkpoint> architecture =
      ReadCheckpoint(spec.architecture, spec.device);
  if (!architecture.ok() ||
      architecture->contents != Checkpoint::Contents::kTorchScriptModule) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backbone.architecture must be a TorchScript archive",
        architecture.ok() ? "" : absl::StrCat(": ", architecture.status().message())));
  }
  HEADWAY_ASSIGN_OR_RETURN(
      info.report, LoadStateDict(*architecture->module, weights.state_dict, spec.load));
  return *std::move(architecture->module);
}

// torch.jit.freeze + optimize_for_inference, checked on a random input against the
// plain module; returns the plain module when optimizing fails or changes outputs by
// more than kTolerance of their scale (the largest output's magnitude): folded batch
// norms and fused kernels round differently, by ~1e-3 of the scale for
// mobilenet_v3_small, exactly as PyTorch's own freeze + optimize_for_inference do.
const char* PrecisionName(v1::ModelConfig::Precision precision) {
  switch (precision) {
    case v1::ModelConfig::BF16:
      return "BF16";
    case v1::ModelConfig::FP16:
      return "FP16";
    default:
      return "FP32";
  }
}

// FAILED_PRECONDITION naming what `device` lacks to run `precision` natively.
absl::Status CheckPrecisionRuns(v1::ModelConfig::Precision precision,
                                const c10::Device& device) {
  if (device.is_cuda()) return absl::OkStatus();
  if (precision == v1::ModelConfig::FP16) {
    return absl::FailedPreconditionError(
        "FP16 runs on CUDA devices only; on a CPU use BF16 (CPUs with AVX512_BF16 or "
        "AMX) or FP32");
  }
  if (!CpuHasNativeBf16()) {
    return absl::FailedPreconditionError(
        "BF16 needs a CPU with AVX512_BF16 or AMX (flags avx512_bf16 or amx_bf16 in "
        "/proc/cpuinfo), and this one has neither");
  }
  return absl::OkStatus();
}

// Stores `module`'s four-dimensional weights (convolution kernels) channels-last:
// oneDNN's reduced-precision convolutions run on that layout without reordering each
// call's activations (ResNet-18 in BF16 on an AVX512_BF16 CPU: see the README).
void ToChannelsLast(torch::jit::Module& module) {
  for (at::Tensor parameter : module.parameters()) {
    if (parameter.dim() == 4) {
      parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
}

// Whether every four-dimensional weight `module` serves with is channels-last: its
// parameters and, in a frozen module, its graph's tensor constants.
bool WeightsAreChannelsLast(torch::jit::Module& module) {
  const auto channels_last = [](const at::Tensor& weight) {
    return weight.dim() != 4 || weight.is_mkldnn() ||
           weight.is_contiguous(at::MemoryFormat::ChannelsLast);
  };
  for (const at::Tensor& parameter : module.parameters()) {
    if (!channels_last(parameter)) return false;
  }
  for (const torch::jit::Node* node : module.get_method("forward").graph()->nodes()) {
    if (node->kind() != c10::prim::Constant) continue;
    const std::optional<c10::IValue> value = torch::jit::toIValue(node->output());
    if (value && value->isTensor() && !channels_last(value->toTensor())) return false;
  }
  return true;
}

struct Agreement {
  double worst_cosine = 0;   // of one input's features, FP32 against reduced
  double largest_error = 0;  // of any feature, as a share of the largest FP32 feature
};

// The module in `dtype`, with how its features agree with the FP32 module's on eight
// seeded random inputs.
absl::StatusOr<std::pair<torch::jit::Module, Agreement>> Convert(
    const torch::jit::Module& module, const BackboneSpec& spec, at::ScalarType dtype) {
  return CallTorch(
      "converting the backbone", absl::StatusCode::kInvalidArgument,
      [&]() -> std::pair<torch::jit::Module, Agreement> {
        c10::InferenceMode inference;
        absl::ReaderMutexLock running(&TorchScriptForkGate());
        std::vector<int64_t> shape = {8};
        shape.insert(shape.end(), spec.input_shape.begin(), spec.input_shape.end());
        at::Generator generator = at::detail::createCPUGenerator(20261201);
        const at::Tensor probe = torch::randn(shape, generator).to(spec.device);
        torch::jit::Module plain = module;
        const at::Tensor expected =
            plain.forward({probe}).toTensor().flatten(1).to(at::kFloat);
        torch::jit::Module reduced = module.clone();
        reduced.to(dtype);
        if (spec.device.is_cpu()) ToChannelsLast(reduced);
        const at::Tensor actual =
            reduced.forward({probe.to(dtype)}).toTensor().flatten(1).to(at::kFloat);
        Agreement agreement;
        agreement.worst_cosine =
            torch::nn::functional::cosine_similarity(
                expected, actual,
                torch::nn::functional::CosineSimilarityFuncOptions().dim(1))
                .min()
                .item<double>();
        agreement.largest_error = (expected - actual).abs().max().item<double>() /
                                  std::max(expected.abs().max().item<double>(), 1e-30);
        return {reduced, agreement};
      });
}

// `module` in spec.precision when the device runs it and its features agree with
// FP32's (cosine 0.99 or more for every probe input); otherwise the error, or with
// precision_fallback the FP32 module and why. Sets `dtype` to what serves.
absl::StatusOr<torch::jit::Module> InPrecision(torch::jit::Module module,
                                               const BackboneSpec& spec,
                                               BackboneLoadInfo& info,
                                               at::ScalarType& dtype) {
  constexpr double kWorstCosine = 0.99;
  if (spec.precision != v1::ModelConfig::BF16 &&
      spec.precision != v1::ModelConfig::FP16) {
    return module;
  }
  const char* name = PrecisionName(spec.precision);
  const at::ScalarType wanted =
      spec.precision == v1::ModelConfig::BF16 ? at::kBFloat16 : at::kHalf;
  absl::Status refused = CheckPrecisionRuns(spec.precision, spec.device);
  if (refused.ok()) {
    absl::StatusOr<std::pair<torch::jit::Module, Agreement>> converted =
        Convert(module, spec, wanted);
    if (!converted.ok()) {
      refused = converted.status();
    } else if (!(converted->second.worst_cosine >= kWorstCosine)) {
      refused = absl::InvalidArgumentError(absl::StrFormat(
          "%s features disagree with FP32's: cosine %.4f at worst over 8 random inputs "
          "(under %.2f)",
          name, converted->second.worst_cosine, kWorstCosine));
    } else {
      info.precision = name;
      info.precision_note = absl::StrFormat(
          "%s features agree with FP32's: cosine %.5f at worst over 8 random inputs, "
          "largest difference %.2g of their scale",
          name, converted->second.worst_cosine, converted->second.largest_error);
      dtype = wanted;
      return std::move(converted->first);
    }
  }
  if (!spec.precision_fallback) {
    return absl::Status(refused.code(),
                        absl::StrCat("precision ", name, ": ", refused.message()));
  }
  info.precision_note = absl::StrCat(name, " not served (", refused.message(),
                                     "); FP32 serves (precision_fallback)");
  return module;
}

torch::jit::Module Optimized(torch::jit::Module module, const BackboneSpec& spec,
                             at::ScalarType dtype, BackboneLoadInfo& info) {
  constexpr double kTolerance = 5e-3;
  std::vector<int64_t> shape = {2};
  shape.insert(shape.end(), spec.input_shape.begin(), spec.input_shape.end());
  absl::StatusOr<torch::jit::Module> optimized =
      CallTorch("optimizing", absl::StatusCode::kInternal, [&] {
        absl::ReaderMutexLock running(&TorchScriptForkGate());
        torch::jit::Module frozen = torch::jit::freeze(module.clone());
        return torch::jit::optimize_for_inference(frozen);
      });
  if (!optimized.ok()) {
    info.optimize_note =
        absl::StrCat(optimized.status().message(), "; the module serves");
    return module;
  }
  absl::StatusOr<double> difference =
      CallTorch("checking the optimized graph", absl::StatusCode::kInternal, [&] {
        c10::InferenceMode inference;
        absl::ReaderMutexLock running(&TorchScriptForkGate());
        const at::Tensor probe =
            torch::rand(shape, torch::dtype(dtype).device(spec.device));
        const at::Tensor expected = module.forward({probe}).toTensor();
        const at::Tensor actual = optimized->forward({probe}).toTensor();
        const double scale = std::max(expected.abs().max().item<double>(), 1e-30);
        return (expected - actual).abs().max().item<double>() / scale;
      });
  if (!difference.ok() || !(*difference <= kTolerance)) {
    info.optimize_note =
        difference.ok()
            ? absl::StrCat("the optimized graph's outputs differ from the module's by ",
                           *difference, " of their scale (more than ", kTolerance,
                           "); the module serves")
            : absl::StrCat(difference.status().message(), "; the module serves");
    return module;
  }
  info.optimized = true;
  return *std::move(optimized);
}

}  // namespace

Backbone::Backbone(torch::jit::Module module, c10::Device device,
                   BackboneLoadInfo load_info)
    : module_(std::move(module)), device_(device), load_info_(std::move(load_info)) {}

absl::StatusOr<torch::jit::Module> LoadBackboneModule(const BackboneSpec& spec) {
  BackboneLoadInfo info;
  return BuildModule(spec, info);
}

absl::StatusOr<std::unique_ptr<Backbone>> Backbone::Load(const BackboneSpec& spec) {
  BackboneLoadInfo info;
  HEADWAY_ASSIGN_OR_RETURN(torch::jit::Module module, BuildModule(spec, info));
  at::ScalarType dtype = at::kFloat;
  HEADWAY_ASSIGN_OR_RETURN(module, InPrecision(std::move(module), spec, info, dtype));
  if (spec.optimize) module = Optimized(std::move(module), spec, dtype, info);
  if (dtype != at::kFloat && spec.device.is_cpu()) {
    const absl::StatusOr<bool> channels_last =
        CallTorch("checking the weights' layout", absl::StatusCode::kInternal,
                  [&] { return WeightsAreChannelsLast(module); });
    absl::StrAppend(&info.precision_note, channels_last.ok() && *channels_last
                                              ? "; weights channels-last"
                                              : "; weights not channels-last");
  }
  std::unique_ptr<Backbone> backbone(
      new Backbone(std::move(module), spec.device, std::move(info)));
  backbone->dtype_ = dtype;

  c10::InferenceMode inference;
  std::vector<int64_t> probe_shape = {1};
  probe_shape.insert(probe_shape.end(), spec.input_shape.begin(), spec.input_shape.end());
  // A probe that fails is the checkpoint's fault (it does not take the configured
  // input), unless memory ran out.
  absl::StatusOr<at::Tensor> features = backbone->Forward(
      torch::zeros(probe_shape, torch::dtype(torch::kFloat32).device(spec.device)));
  if (!features.ok()) {
    return features.status().code() == absl::StatusCode::kResourceExhausted
               ? features.status()
               : absl::InvalidArgumentError(features.status().message());
  }
  backbone->feature_dim_ = features->size(1);
  backbone->single_input_shape_ = probe_shape;
  return backbone;
}

absl::StatusOr<absl::Duration> Backbone::TimeSingleInputPass(int threads,
                                                             int passes) const {
  c10::InferenceMode inference;
  SetThreadsOfThisThread(threads);
  HEADWAY_ASSIGN_OR_RETURN(
      const at::Tensor input,
      CallTorch("making a timing input", absl::StatusCode::kInternal, [&] {
        return torch::zeros(single_input_shape_,
                            torch::dtype(torch::kFloat32).device(device_));
      }));
  const bool cpu_time = threads == 1 && device_.is_cpu();
  const auto clock = [cpu_time] {
    if (!cpu_time) return absl::Now() - absl::UnixEpoch();
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return absl::DurationFromTimespec(now);
  };
  absl::Duration fastest = absl::InfiniteDuration();
  for (int pass = 0; pass <= passes; ++pass) {
    const absl::Duration start = clock();
    HEADWAY_RETURN_IF_ERROR(Forward(input).status());
    if (pass > 0) fastest = std::min(fastest, clock() - start);
  }
  return fastest;
}

absl::StatusOr<at::Tensor> Backbone::Forward(const at::Tensor& batch) const {
  HEADWAY_ASSIGN_OR_RETURN(
      at::Tensor features,
      CallTorch("backbone forward", absl::StatusCode::kInternal, [&] {
        c10::IValue output = [&] {
          absl::ReaderMutexLock running(&TorchScriptForkGate());
          return module_.forward({dtype_ == at::kFloat ? batch : batch.to(dtype_)});
        }();
        if (!output.isTensor()) {
          throw std::runtime_error(
              absl::StrCat("backbone returned a ", output.tagKind(), ", not a tensor"));
        }
        return dtype_ == at::kFloat ? output.toTensor()
                                    : output.toTensor().to(at::kFloat);
      }));
  if (features.dim() < 2 || features.size(0) != batch.size(0)) {
    return absl::InternalError(absl::StrCat(
        "backbone returned shape ", c10::str(features.sizes()), " for a batch of ",
        batch.size(0), "; expected one feature row per item"));
  }
  return features.dim() == 2 ? features : features.flatten(1);
}

}  // namespace headway
