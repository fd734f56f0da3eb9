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
#include "absl/time/time.h"

namespace headway {

// The new output layer's keys in model_state_dict: <kFineTunedHeadPrefix>weight, bias.
inline constexpr char kFineTunedHeadPrefix[] = "head.";

struct FineTuneOptions {
  // Parameters whose names start with one of these train; the others are frozen.
  // Empty with train_all false: only the new output layer trains.
  std::vector<std::string> train_prefixes;
  bool train_all = false;
  enum class Optimizer { kSgd, kAdam };
  Optimizer optimizer = Optimizer::kSgd;
  double learning_rate = 0.01;
  double momentum = 0.9;  // SGD only
  double weight_decay = 0;
  int epochs = 5;
  int batch_size = 32;
  // Each training example mirrored left-right with probability 1/2 (seeded).
  bool horizontal_flip = false;
  uint64_t seed = 1;
  // Share of each class held out for validation accuracy; <= 0 holds nothing out.
  double validation_fraction = 0.2;
  int threads = 1;
};

// Reported after each step and at each epoch's end.
struct FineTuneProgress {
  int epoch = 0;  // 1-based
  int epochs = 0;
  int64_t step = 0;  // within the epoch, 1-based
  int64_t steps_per_epoch = 0;
  double loss = 0;  // mean training loss of the epoch so far
  bool epoch_done = false;
  // At an epoch's end only (else -1): of the model in eval() mode.
  double train_accuracy = -1;
  double validation_accuracy = -1;
  double examples_per_second = 0;
  absl::Duration remaining;  // estimated from the rate so far
};

struct FineTuneResult {
  std::string checkpoint;  // torch.save bytes, as above
  std::vector<int64_t> examples_per_class;
  int64_t validation_examples = 0;
  double train_accuracy = 0;        // after the last epoch, eval() mode
  double validation_accuracy = -1;  // -1 when nothing was held out
  double final_loss = 0;            // mean training loss of the last epoch
  int epochs = 0;
  int64_t trained_tensors = 0;  // backbone parameters trained
  int64_t trained_values = 0;   // their elements, the output layer's included
};

// `inputs`: float [N, C, H, W] on the CPU, as the backbone takes them; `labels`: each
// example's class index into `classes`. `on_progress` returning false stops the run
// (CANCELLED). INVALID_ARGUMENT for fewer than two classes, a class without an
// example, counts that differ, a prefix that names no parameter, settings out of
// range, or a loss that stops being finite.
absl::StatusOr<FineTuneResult> FineTuneBackbone(
    torch::jit::Module module, const at::Tensor& inputs, const std::vector<int>& labels,
    const std::vector<std::string>& classes, const FineTuneOptions& options,
    const std::function<bool(const FineTuneProgress&)>& on_progress);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_FINE_TUNING_H_
