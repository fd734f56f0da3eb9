// FineTuneBackbone: the "more data" steps of transfer learning. Trains chosen layers of
// a TorchScript backbone together with a new output layer on labelled examples, through
// LibTorch autograd, the way PyTorch users fine-tune: the layers named by a
// parameter-name prefix ("layer4", "features.7") or all of them train (train() mode);
// the rest stay frozen with their BatchNorm statistics (eval() mode). The new output
// layer starts as nn.Linear does (uniform in +-1/sqrt(features), seeded).
//
// The result is a PyTorch training checkpoint, torch.save bytes of
//   {"epoch": int, "model_state_dict": {backbone keys..., "head.weight", "head.bias"},
//    "optimizer_state_dict": {"state": {...}, "param_groups": [...]},
//    "class_to_idx": {class name: index}}
// which Headway loads (backbone: TRAINING_CHECKPOINT into the same architecture with
// ignore_prefixes "head."; head: key_prefix "head.") and Python's torch.load reads.
//
// Runs on the calling thread with its intra-op threads set to `threads`. Thread-safe
// for distinct modules; the module passed is trained in place (give it a fresh copy).
#ifndef HEADWAY_MODEL_STORE_FINE_TUNING_H_
#define HEADWAY_MODEL_STORE_FINE_TUNING_H_

#include <torch/script.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model_store/fine_tune_options.h"

namespace headway {

// Where the examples come from: `count` of them, and any of them by index as a batch,
// float [B, C, H, W] on the CPU as the backbone takes them. FineTuneBackbone asks for
// each batch as it runs, so a job holds its examples encoded rather than as tensors.
struct ExampleSource {
  int64_t count = 0;
  std::function<absl::StatusOr<at::Tensor>(const std::vector<int64_t>& indices)> batch;
};

// The examples of a tensor [N, C, H, W].
ExampleSource ExamplesFromTensor(at::Tensor inputs);

// `labels`: each example's class index into `classes`. `on_progress` returning false
// stops the run (CANCELLED). INVALID_ARGUMENT for fewer than two classes, a class without
// an example, counts that differ, a prefix that names no parameter, settings out of
// range, or a loss that stops being finite.
absl::StatusOr<FineTuneResult> FineTuneBackbone(
    torch::jit::Module module, const ExampleSource& examples,
    const std::vector<int>& labels, const std::vector<std::string>& classes,
    const FineTuneOptions& options,
    const std::function<bool(const FineTuneProgress&)>& on_progress);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_FINE_TUNING_H_
