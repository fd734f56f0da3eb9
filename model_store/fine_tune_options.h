// The settings, progress and outcome of fine-tuning (FineTuneBackbone in
// fine_tuning.h), without LibTorch, for the layers that drive jobs.
#ifndef HEADWAY_MODEL_STORE_FINE_TUNE_OPTIONS_H_
#define HEADWAY_MODEL_STORE_FINE_TUNE_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_FINE_TUNE_OPTIONS_H_
