// FitLinearHead: the "little data" step of transfer learning. Given backbone
// features and their classes, fits a new output layer: multinomial logistic
// regression with an L2 penalty, by L-BFGS in LibTorch (float64, to convergence), on
// standardised features whose scaling is then folded into the layer. When the
// penalty is not given it is chosen from a grid by accuracy on a held-out split
// (stratified, seeded), and the head is then refitted on every example.
//
// The result is a linear head as PyTorch saves one: torch.save bytes of
// {"weight": [classes, D], "bias": [classes]} (float32), which Headway's head loader
// and Python's torch.load both read.
//
// Pure function of its inputs; thread-safe. Runs on the calling thread.
#ifndef HEADWAY_MODEL_STORE_HEAD_FITTING_H_
#define HEADWAY_MODEL_STORE_HEAD_FITTING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace headway {

struct HeadFitOptions {
  // The L2 penalty on the weights (mean cross-entropy + l2 / 2 * |W|^2, on
  // standardised features); 0 chooses it on the held-out split.
  double l2 = 0;
  // Share of each class held out to choose l2 and report validation accuracy (a class
  // keeps at least one training example).
  double validation_fraction = 0.2;
  int max_iterations = 500;
  uint64_t seed = 1;
};

struct HeadFit {
  std::string checkpoint;  // torch.save bytes of the linear layer
  std::vector<int64_t> examples_per_class;
  double train_accuracy = 0;        // of the final head on every example
  double validation_accuracy = -1;  // on the held-out split; -1 when nothing was held out
  int64_t validation_examples = 0;
  double final_loss = 0;   // of the final fit, penalty included
  int64_t iterations = 0;  // L-BFGS function evaluations of the final fit
  double l2 = 0;           // the penalty used
};

// `features`: one row per example, all of one length; `labels`: each example's class
// index in [0, num_classes). INVALID_ARGUMENT for fewer than two classes, a class
// without an example, rows of different lengths, a label out of range, counts that
// differ, or non-finite features.
absl::StatusOr<HeadFit> FitLinearHead(const std::vector<std::vector<float>>& features,
                                      const std::vector<int>& labels, int num_classes,
                                      const HeadFitOptions& options);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_HEAD_FITTING_H_
