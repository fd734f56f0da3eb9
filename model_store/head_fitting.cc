#include "model_store/head_fitting.h"

#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "model_store/example_split.h"
#include "model_store/status_macros.h"
#include "model_store/torch_errors.h"

namespace headway {
namespace {

// Penalties tried when none is given, on standardised features: strongest first, each
// fit starting from the previous one's solution (a regularisation path), which
// converges in a fraction of the evaluations of a cold start.
constexpr double kL2Candidates[] = {1.0, 1e-1, 1e-2, 1e-3};
// Iterations of each held-out fit while choosing: warm-started, they need few, and the
// choice is by accuracy, which settles long before the loss does.
constexpr int kChoosingIterations = 60;

struct LinearFit {
  at::Tensor weight;  // [D, C]
  at::Tensor bias;    // [C]
  double loss = 0;
  int64_t evaluations = 0;
};

// Minimises mean cross-entropy + l2 / 2 * |W|^2 over x [N, D] (float64), from `start`
// (zeros when it has no weight).
LinearFit Fit(const at::Tensor& x, const at::Tensor& y, int num_classes, double l2,
              int max_iterations, const LinearFit& start) {
  torch::NoGradGuard outside;
  at::Tensor weight =
      (start.weight.defined() ? start.weight.clone()
                              : torch::zeros({x.size(1), num_classes}, x.options()))
          .set_requires_grad(true);
  at::Tensor bias = (start.bias.defined() ? start.bias.clone()
                                          : torch::zeros({num_classes}, x.options()))
                        .set_requires_grad(true);
  torch::optim::LBFGS optimizer(std::vector<at::Tensor>{weight, bias},
                                torch::optim::LBFGSOptions(1.0)
                                    .max_iter(max_iterations)
                                    .max_eval(max_iterations * 5 / 4)
                                    .tolerance_grad(1e-6)
                                    .tolerance_change(1e-9)
                                    .history_size(20)
                                    .line_search_fn("strong_wolfe"));
  LinearFit fit;
  auto closure = [&] {
    torch::AutoGradMode enabled(true);
    optimizer.zero_grad();
    at::Tensor loss =
        torch::nn::functional::cross_entropy(torch::addmm(bias, x, weight), y) +
        0.5 * l2 * weight.pow(2).sum();
    loss.backward();
    ++fit.evaluations;
    return loss;
  };
  optimizer.step(closure);
  {
    torch::AutoGradMode enabled(true);
    fit.loss = closure().item<double>();
  }
  fit.weight = weight.detach();
  fit.bias = bias.detach();
  return fit;
}

double Accuracy(const LinearFit& fit, const at::Tensor& x, const at::Tensor& y) {
  if (x.size(0) == 0) return -1;
  const at::Tensor predicted = torch::addmm(fit.bias, x, fit.weight).argmax(1);
  return predicted.eq(y).to(torch::kFloat64).mean().item<double>();
}

absl::Status CheckExamples(const std::vector<std::vector<float>>& features,
                           const std::vector<int>& labels, int num_classes,
                           std::vector<int64_t>& per_class) {
  if (features.size() != labels.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(features.size(), " examples but ", labels.size(), " labels"));
  }
  if (num_classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a head needs at least two classes; the examples have ", num_classes));
  }
  if (features.empty() || features[0].empty()) {
    return absl::InvalidArgumentError("no examples");
  }
  for (size_t i = 0; i < features.size(); ++i) {
    if (features[i].size() != features[0].size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("example ", i, " has ", features[i].size(),
                       " features; example 0 has ", features[0].size()));
    }
    for (float value : features[i]) {
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("example ", i, " has a NaN or infinite feature"));
      }
    }
  }
  HEADWAY_ASSIGN_OR_RETURN(per_class, ExamplesPerClass(labels, num_classes));
  return absl::OkStatus();
}

at::Tensor Rows(const at::Tensor& x, const std::vector<int64_t>& rows) {
  return x.index_select(0, torch::tensor(rows, torch::kLong));
}

}  // namespace

absl::StatusOr<HeadFit> FitLinearHead(const std::vector<std::vector<float>>& features,
                                      const std::vector<int>& labels, int num_classes,
                                      const HeadFitOptions& options) {
  HeadFit result;
  HEADWAY_RETURN_IF_ERROR(
      CheckExamples(features, labels, num_classes, result.examples_per_class));
  if (options.l2 < 0 || !std::isfinite(options.l2)) {
    return absl::InvalidArgumentError("l2 must be 0 (chosen) or positive");
  }
  if (options.validation_fraction < 0 || options.validation_fraction >= 1) {
    return absl::InvalidArgumentError("validation_fraction must be in [0, 1)");
  }
  const int max_iterations = options.max_iterations > 0 ? options.max_iterations : 500;
  return CallTorch(
      "fitting the head", absl::StatusCode::kInternal, [&]() -> absl::StatusOr<HeadFit> {
        const int64_t n = static_cast<int64_t>(features.size());
        const int64_t d = static_cast<int64_t>(features[0].size());
        at::Tensor raw = torch::empty({n, d}, torch::kFloat64);
        for (int64_t i = 0; i < n; ++i) {
          raw[i] = torch::tensor(features[i], torch::kFloat64);
        }
        const at::Tensor y = torch::tensor(
            std::vector<int64_t>(labels.begin(), labels.end()), torch::kLong);
        const at::Tensor mean = raw.mean(0);
        const at::Tensor scale = raw.std(0, /*unbiased=*/false).clamp_min(1e-6);
        const at::Tensor x = (raw - mean) / scale;

        const ExampleSplit split = StratifiedSplit(
            labels, num_classes, options.validation_fraction, options.seed);
        const std::vector<int64_t>& train = split.train;
        const std::vector<int64_t>& validation = split.validation;
        result.validation_examples = static_cast<int64_t>(validation.size());
        std::vector<double> candidates(std::begin(kL2Candidates),
                                       std::end(kL2Candidates));
        if (options.l2 > 0) candidates = {options.l2};
        result.l2 = candidates.front();
        LinearFit
            chosen;  // the held-out fit of the chosen penalty: the final fit's start
        if (!validation.empty()) {
          const at::Tensor x_train = Rows(x, train), y_train = Rows(y, train);
          const at::Tensor x_valid = Rows(x, validation), y_valid = Rows(y, validation);
          double best = -1;
          LinearFit previous;
          for (double l2 : candidates) {
            previous = Fit(x_train, y_train, num_classes, l2,
                           std::min(max_iterations, kChoosingIterations), previous);
            const double accuracy = Accuracy(previous, x_valid, y_valid);
            // Ties go to the larger penalty (tried first): the simpler head.
            if (accuracy > best) {
              best = accuracy;
              result.l2 = l2;
              chosen = previous;
            }
          }
          result.validation_accuracy = best;
        } else if (options.l2 == 0) {
          result.l2 = 1e-2;  // nothing held out to choose with
        }
        const LinearFit fit = Fit(x, y, num_classes, result.l2, max_iterations, chosen);
        result.train_accuracy = Accuracy(fit, x, y);
        result.final_loss = fit.loss;
        result.iterations = fit.evaluations;
        if (!std::isfinite(result.final_loss)) {
          return absl::InvalidArgumentError("the fit diverged (non-finite loss)");
        }
        // Fold the standardisation in: logits = raw (W / scale) + (b - (mean / scale) W).
        const at::Tensor weight = fit.weight / scale.unsqueeze(1);
        const at::Tensor bias = fit.bias - (mean / scale).matmul(fit.weight);
        c10::Dict<std::string, at::Tensor> state_dict;
        state_dict.insert("weight", weight.t().contiguous().to(torch::kFloat32));
        state_dict.insert("bias", bias.contiguous().to(torch::kFloat32));
        const std::vector<char> bytes = torch::pickle_save(state_dict);
        result.checkpoint.assign(bytes.begin(), bytes.end());
        return result;
      });
}

}  // namespace headway
