// Backbone: a feature extractor (the network without its output layer) on one device,
// from a TorchScript archive, or from a state_dict or training checkpoint loaded into a
// TorchScript architecture. Load probes it with a zero input of the model's shape to
// learn its feature dimension, which also warms it up.
//
// Immutable after Load; Forward is thread-safe (TorchScript modules may run
// concurrently for inference).
#ifndef HEADWAY_MODEL_STORE_BACKBONE_H_
#define HEADWAY_MODEL_STORE_BACKBONE_H_

#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "headway/v1/model_config.pb.h"
#include "model_store/checkpoint.h"

namespace headway {

struct BackboneSpec {
  // The weights: a TorchScript archive, a state_dict or a training checkpoint.
  std::string weights;
  // For a state_dict or training checkpoint: the TorchScript archive of the
  // architecture they load into. Empty for a TorchScript archive.
  std::string architecture;
  // When set, the weights must be of this kind.
  std::optional<Checkpoint::Contents> expected_contents;
  StateDictOptions load;
  c10::Device device = c10::Device(c10::kCPU);
  // {C, H, W} of one input.
  std::vector<int64_t> input_shape;
  // Freeze and optimize the TorchScript graph for inference (torch.jit.freeze +
  // optimize_for_inference), kept only when its outputs match the plain module's.
  bool optimize = false;
  // Serve in this number format (see Precision in model_config.proto), after checking
  // that the device runs it natively and that its features agree with FP32's.
  v1::ModelConfig::Precision precision = v1::ModelConfig::FP32;
  bool precision_fallback = false;
};

// What loading found.
struct BackboneLoadInfo {
  Checkpoint::Contents contents = Checkpoint::Contents::kTorchScriptModule;
  std::optional<int64_t> epoch;           // training checkpoints
  std::vector<std::string> labels;        // training checkpoints with class names
  std::set<std::string> saved_locations;  // torch.save storages' devices
  StateDictReport report;                 // state_dict loads
  // Whether the optimized graph serves; otherwise why not (empty when not asked).
  bool optimized = false;
  std::string optimize_note;
  // "FP32", "BF16" or "FP16", as it serves; the agreement with FP32, or why not.
  std::string precision = "FP32";
  std::string precision_note;
};

// The spec of a model's backbone as its config names it: the files read from the
// model's folder, the expected format and the state_dict load options. The caller
// sets device, input_shape and optimize.
absl::StatusOr<BackboneSpec> ReadBackboneSpec(const std::filesystem::path& model_dir,
                                              const v1::BackboneConfig& config);

// The TorchScript module `spec` names with its weights loaded, not optimized, on
// spec.device: a fresh copy, e.g. to fine-tune. Errors as Backbone::Load's.
absl::StatusOr<torch::jit::Module> LoadBackboneModule(const BackboneSpec& spec);

class Backbone {
 public:
  // INVALID_ARGUMENT naming the problem: an unreadable checkpoint, a missing or wrong
  // architecture, a strict load that does not match, or a module that fails on, or
  // does not return one feature row per item of, an input of spec.input_shape.
  static absl::StatusOr<std::unique_ptr<Backbone>> Load(const BackboneSpec& spec);

  // batch: float [N, C, H, W] on device(). Returns features [N, feature_dim()] on
  // device(). Must run under c10::InferenceMode. A module that fails, or does not
  // return one feature row per item, is INTERNAL (the server's fault: inputs were
  // checked before); memory that runs out is RESOURCE_EXHAUSTED.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& batch) const;

  // The fastest of `passes` passes over one zero input (after one not counted) with
  // the calling thread's intra-op threads set to `threads`; it keeps that count. For
  // the serving plan at load. On the CPU with one thread, the pass's time is the
  // thread's CPU time, so that a load at low priority beside busy workers (or beside
  // other loads) measures the model, not its share of the CPUs.
  absl::StatusOr<absl::Duration> TimeSingleInputPass(int threads, int passes) const;

  int64_t feature_dim() const { return feature_dim_; }
  c10::Device device() const { return device_; }
  const BackboneLoadInfo& load_info() const { return load_info_; }

 private:
  Backbone(torch::jit::Module module, c10::Device device, BackboneLoadInfo load_info);

  mutable torch::jit::Module module_;  // forward() is not const but is thread-safe
  c10::Device device_;
  at::ScalarType dtype_ = at::kFloat;  // of the module's weights and inputs
  BackboneLoadInfo load_info_;
  int64_t feature_dim_ = 0;
  std::vector<int64_t> single_input_shape_;  // {1, C, H, W}
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_BACKBONE_H_
