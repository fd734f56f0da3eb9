#include "model_store/fine_tuning.h"

#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "model_store/checkpoint.h"
#include "model_store/example_split.h"
#include "model_store/status_macros.h"
#include "model_store/torch_errors.h"
#include "model_store/torch_runtime.h"

namespace headway {
namespace {

bool NamedBy(const std::string& name, const std::string& prefix) {
  if (absl::EndsWith(prefix, ".")) return absl::StartsWith(name, prefix);
  return name == prefix || absl::StartsWith(name, absl::StrCat(prefix, "."));
}

bool Trains(const std::string& name, const FineTuneOptions& options) {
  if (options.train_all) return true;
  return std::any_of(options.train_prefixes.begin(), options.train_prefixes.end(),
                     [&](const std::string& prefix) { return NamedBy(name, prefix); });
}

absl::Status CheckOptions(const FineTuneOptions& options) {
  const auto out_of_range = [](absl::string_view what, auto value,
                               absl::string_view range) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", value, "; it must be ", range));
  };
  if (options.epochs < 1 || options.epochs > 1000) {
    return out_of_range("epochs", options.epochs, "in [1, 1000]");
  }
  if (options.batch_size < 1 || options.batch_size > 4096) {
    return out_of_range("batch_size", options.batch_size, "in [1, 4096]");
  }
  if (!(options.learning_rate > 0 && options.learning_rate <= 10)) {
    return out_of_range("learning_rate", options.learning_rate, "in (0, 10]");
  }
  if (!(options.momentum >= 0 && options.momentum < 1)) {
    return out_of_range("momentum", options.momentum, "in [0, 1)");
  }
  if (!(options.weight_decay >= 0 && options.weight_decay <= 1)) {
    return out_of_range("weight_decay", options.weight_decay, "in [0, 1]");
  }
  if (!(options.validation_fraction < 1)) {
    return out_of_range("validation_fraction", options.validation_fraction, "under 1");
  }
  if (options.threads < 1) return out_of_range("threads", options.threads, "1 or more");
  return absl::OkStatus();
}

absl::Status CheckExamples(const ExampleSource& examples, const std::vector<int>& labels,
                           int num_classes, std::vector<int64_t>& per_class) {
  if (examples.count != static_cast<int64_t>(labels.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(examples.count, " examples but ", labels.size(), " labels"));
  }
  if (num_classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fine-tuning needs at least two classes; the examples have ", num_classes));
  }
  HEADWAY_ASSIGN_OR_RETURN(per_class, ExamplesPerClass(labels, num_classes));
  return absl::OkStatus();
}

// train() for the layers that train, eval() for the frozen ones (their BatchNorm
// keeps its statistics); everything eval() when !training.
void SetModes(torch::jit::Module& module, const FineTuneOptions& options, bool training) {
  module.eval();
  if (!training) return;
  if (options.train_all) {
    module.train();
    return;
  }
  for (const torch::jit::NameModule& named : module.named_modules()) {
    if (named.name.empty() || !Trains(named.name, options)) continue;
    torch::jit::Module submodule = named.value;
    submodule.train();
  }
}

at::Tensor Features(torch::jit::Module& module, const at::Tensor& batch) {
  absl::ReaderMutexLock running(&TorchScriptForkGate());
  c10::IValue output = module.forward({batch});
  if (!output.isTensor()) {
    throw std::runtime_error(
        absl::StrCat("the backbone returned a ", output.tagKind(), ", not a tensor"));
  }
  return output.toTensor().flatten(1);
}

struct OutputLayer {
  at::Tensor weight;  // [classes, features]
  at::Tensor bias;    // [classes]
};

// A batch of the examples at `rows`, checked to be float [B, C, H, W].
absl::StatusOr<at::Tensor> Batch(const ExampleSource& examples,
                                 const std::vector<int64_t>& rows) {
  absl::StatusOr<at::Tensor> batch = examples.batch(rows);
  if (!batch.ok()) return batch.status();
  if (batch->dim() != 4 || batch->scalar_type() != at::kFloat ||
      batch->size(0) != static_cast<int64_t>(rows.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the examples must come as float [B, C, H, W]; a batch of ", rows.size(),
        " came as ", c10::str(batch->scalar_type()), " ", c10::str(batch->sizes())));
  }
  return batch;
}

absl::StatusOr<double> Accuracy(torch::jit::Module& module, const OutputLayer& head,
                                const ExampleSource& examples, const at::Tensor& labels,
                                const std::vector<int64_t>& rows, int batch_size) {
  if (rows.empty()) return -1;
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  for (size_t start = 0; start < rows.size(); start += batch_size) {
    const size_t end = std::min(rows.size(), start + batch_size);
    const std::vector<int64_t> chunk(rows.begin() + start, rows.begin() + end);
    HEADWAY_ASSIGN_OR_RETURN(const at::Tensor batch, Batch(examples, chunk));
    const at::Tensor logits =
        torch::nn::functional::linear(Features(module, batch), head.weight, head.bias);
    correct += logits.argmax(1)
                   .eq(labels.index_select(0, torch::tensor(chunk)))
                   .sum()
                   .item<int64_t>();
  }
  return static_cast<double>(correct) / rows.size();
}

c10::impl::GenericDict StringKeyed() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

// optimizer.state_dict() as PyTorch writes it, parameters numbered in `params`' order.
c10::impl::GenericDict OptimizerStateDict(const torch::optim::Optimizer& optimizer,
                                          const FineTuneOptions& options,
                                          const std::vector<at::Tensor>& params,
                                          const std::vector<std::string>& names) {
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto found =
        optimizer.state().find(c10::guts::to_string(params[i].unsafeGetTensorImpl()));
    if (found == optimizer.state().end()) continue;
    c10::impl::GenericDict entry = StringKeyed();
    if (options.optimizer == FineTuneOptions::Optimizer::kSgd) {
      const auto& sgd = static_cast<const torch::optim::SGDParamState&>(*found->second);
      entry.insert("momentum_buffer", sgd.momentum_buffer().detach().clone());
    } else {
      const auto& adam = static_cast<const torch::optim::AdamParamState&>(*found->second);
      entry.insert("step", torch::tensor(static_cast<float>(adam.step())));
      entry.insert("exp_avg", adam.exp_avg().detach().clone());
      entry.insert("exp_avg_sq", adam.exp_avg_sq().detach().clone());
    }
    state.insert(static_cast<int64_t>(i), entry);
  }
  c10::impl::GenericDict group = StringKeyed();
  group.insert("lr", options.learning_rate);
  group.insert("weight_decay", options.weight_decay);
  group.insert("maximize", false);
  if (options.optimizer == FineTuneOptions::Optimizer::kSgd) {
    group.insert("momentum", options.momentum);
    group.insert("dampening", 0.0);
    group.insert("nesterov", false);
  } else {
    group.insert("betas", c10::ivalue::Tuple::create({0.9, 0.999}));
    group.insert("eps", 1e-8);
    group.insert("amsgrad", false);
  }
  std::vector<int64_t> numbers(params.size());
  std::iota(numbers.begin(), numbers.end(), 0);
  group.insert("params", c10::List<int64_t>(numbers));
  group.insert("param_names", c10::List<std::string>(names));
  c10::impl::GenericList groups(c10::AnyType::get());
  groups.push_back(group);
  c10::impl::GenericDict state_dict = StringKeyed();
  state_dict.insert("state", state);
  state_dict.insert("param_groups", groups);
  return state_dict;
}

}  // namespace

ExampleSource ExamplesFromTensor(at::Tensor inputs) {
  ExampleSource examples;
  examples.count = inputs.dim() > 0 ? inputs.size(0) : 0;
  examples.batch =
      [inputs](const std::vector<int64_t>& indices) -> absl::StatusOr<at::Tensor> {
    return CallTorch("selecting examples", absl::StatusCode::kInvalidArgument,
                     [&] { return inputs.index_select(0, torch::tensor(indices)); });
  };
  return examples;
}

absl::StatusOr<FineTuneResult> FineTuneBackbone(
    torch::jit::Module module, const ExampleSource& examples,
    const std::vector<int>& labels, const std::vector<std::string>& classes,
    const FineTuneOptions& options,
    const std::function<bool(const FineTuneProgress&)>& on_progress) {
  HEADWAY_RETURN_IF_ERROR(CheckOptions(options));
  FineTuneResult result;
  const int num_classes = static_cast<int>(classes.size());
  HEADWAY_RETURN_IF_ERROR(
      CheckExamples(examples, labels, num_classes, result.examples_per_class));
  SetThreadsOfThisThread(options.threads);

  // Which parameters train; every prefix must name at least one.
  std::vector<at::Tensor> params;
  std::vector<std::string> param_names;
  std::vector<std::string> unused_prefixes = options.train_prefixes;
  for (const torch::jit::NameTensor& named : module.named_parameters()) {
    unused_prefixes.erase(
        std::remove_if(unused_prefixes.begin(), unused_prefixes.end(),
                       [&](const std::string& p) { return NamedBy(named.name, p); }),
        unused_prefixes.end());
    if (absl::StartsWith(named.name, kFineTunedHeadPrefix)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the backbone has a parameter \"", named.name,
                       "\", a name the new output layer takes"));
    }
    const bool trains = Trains(named.name, options);
    named.value.requires_grad_(trains);
    if (trains) {
      params.push_back(named.value);
      param_names.push_back(named.name);
      result.trained_values += named.value.numel();
    }
  }
  if (!options.train_all && !unused_prefixes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no backbone parameter is named by \"", unused_prefixes.front(),
        "\" (train_layers takes parameter-name prefixes such as \"layer4\" or "
        "\"features.7\")"));
  }
  result.trained_tensors = static_cast<int64_t>(params.size());

  return CallTorch(
      "fine-tuning", absl::StatusCode::kInvalidArgument,
      [&]() -> absl::StatusOr<FineTuneResult> {
        const at::Tensor targets =
            torch::tensor(std::vector<int64_t>(labels.begin(), labels.end()));
        SetModes(module, options, /*training=*/false);
        int64_t feature_dim = 0;
        {
          torch::NoGradGuard no_grad;
          HEADWAY_ASSIGN_OR_RETURN(const at::Tensor first, Batch(examples, {0}));
          feature_dim = Features(module, first).size(1);
        }
        // nn.Linear's initialisation, seeded.
        at::Generator generator = at::detail::createCPUGenerator(options.seed);
        const double bound = 1.0 / std::sqrt(static_cast<double>(feature_dim));
        OutputLayer head{
            torch::empty({num_classes, feature_dim}).uniform_(-bound, bound, generator),
            torch::empty({num_classes}).uniform_(-bound, bound, generator)};
        head.weight.requires_grad_(true);
        head.bias.requires_grad_(true);
        params.push_back(head.weight);
        params.push_back(head.bias);
        param_names.push_back(absl::StrCat(kFineTunedHeadPrefix, "weight"));
        param_names.push_back(absl::StrCat(kFineTunedHeadPrefix, "bias"));
        result.trained_values += head.weight.numel() + head.bias.numel();

        std::unique_ptr<torch::optim::Optimizer> optimizer;
        if (options.optimizer == FineTuneOptions::Optimizer::kSgd) {
          optimizer = std::make_unique<torch::optim::SGD>(
              params, torch::optim::SGDOptions(options.learning_rate)
                          .momentum(options.momentum)
                          .weight_decay(options.weight_decay));
        } else {
          optimizer = std::make_unique<torch::optim::Adam>(
              params, torch::optim::AdamOptions(options.learning_rate)
                          .weight_decay(options.weight_decay));
        }

        const ExampleSplit split = StratifiedSplit(
            labels, num_classes, options.validation_fraction, options.seed);
        result.validation_examples = static_cast<int64_t>(split.validation.size());
        std::vector<int64_t> order = split.train;
        std::mt19937_64 shuffle(options.seed);
        const int64_t steps_per_epoch =
            (static_cast<int64_t>(order.size()) + options.batch_size - 1) /
            options.batch_size;
        const int64_t total_examples =
            static_cast<int64_t>(order.size()) * options.epochs;
        int64_t examples_done = 0;
        const absl::Time start = absl::Now();
        FineTuneProgress progress;
        progress.epochs = options.epochs;
        progress.steps_per_epoch = steps_per_epoch;
        for (int epoch = 1; epoch <= options.epochs; ++epoch) {
          std::shuffle(order.begin(), order.end(), shuffle);
          SetModes(module, options, /*training=*/true);
          double loss_sum = 0;
          for (int64_t step = 0; step < steps_per_epoch; ++step) {
            const auto first = order.begin() + step * options.batch_size;
            const auto last =
                order.begin() +
                std::min<int64_t>(order.size(), (step + 1) * options.batch_size);
            const std::vector<int64_t> rows(first, last);
            const at::Tensor index = torch::tensor(rows);
            HEADWAY_ASSIGN_OR_RETURN(at::Tensor batch, Batch(examples, rows));
            if (options.horizontal_flip) {
              const at::Tensor flip =
                  torch::rand({batch.size(0)}, generator).lt(0.5).view({-1, 1, 1, 1});
              batch = torch::where(flip, batch.flip({3}), batch);
            }
            const at::Tensor logits = torch::nn::functional::linear(
                Features(module, batch), head.weight, head.bias);
            const at::Tensor loss = torch::nn::functional::cross_entropy(
                logits, targets.index_select(0, index));
            const double loss_value = loss.item<double>();
            if (!std::isfinite(loss_value)) {
              return absl::InvalidArgumentError(
                  absl::StrCat("the training loss became ", loss_value, " at epoch ",
                               epoch, ", step ", step + 1, "; lower learning_rate"));
            }
            optimizer->zero_grad();
            {
              absl::ReaderMutexLock running(&TorchScriptForkGate());
              loss.backward();
            }
            optimizer->step();
            loss_sum += loss_value;
            examples_done += index.size(0);
            const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
            progress.epoch = epoch;
            progress.step = step + 1;
            progress.loss = loss_sum / (step + 1);
            progress.epoch_done = false;
            progress.train_accuracy = -1;
            progress.validation_accuracy = -1;
            progress.examples_per_second = seconds > 0 ? examples_done / seconds : 0;
            progress.remaining = progress.examples_per_second > 0
                                     ? absl::Seconds((total_examples - examples_done) /
                                                     progress.examples_per_second)
                                     : absl::ZeroDuration();
            if (on_progress && !on_progress(progress)) {
              return absl::CancelledError(absl::StrCat("fine-tuning cancelled at epoch ",
                                                       epoch, ", step ", step + 1));
            }
          }
          SetModes(module, options, /*training=*/false);
          result.final_loss = loss_sum / steps_per_epoch;
          HEADWAY_ASSIGN_OR_RETURN(
              result.train_accuracy,
              Accuracy(module, head, examples, targets, split.train, options.batch_size));
          HEADWAY_ASSIGN_OR_RETURN(result.validation_accuracy,
                                   Accuracy(module, head, examples, targets,
                                            split.validation, options.batch_size));
          result.epochs = epoch;
          progress.epoch_done = true;
          progress.train_accuracy = result.train_accuracy;
          progress.validation_accuracy = result.validation_accuracy;
          if (on_progress && !on_progress(progress)) {
            return absl::CancelledError(
                absl::StrCat("fine-tuning cancelled after epoch ", epoch));
          }
        }

        c10::impl::GenericDict model_state = StringKeyed();
        for (const torch::jit::NameTensor& named : module.named_parameters()) {
          model_state.insert(named.name, named.value.detach().contiguous().clone());
        }
        for (const torch::jit::NameTensor& named : module.named_buffers()) {
          model_state.insert(named.name, named.value.detach().contiguous().clone());
        }
        model_state.insert(absl::StrCat(kFineTunedHeadPrefix, "weight"),
                           head.weight.detach().contiguous().clone());
        model_state.insert(absl::StrCat(kFineTunedHeadPrefix, "bias"),
                           head.bias.detach().contiguous().clone());
        c10::impl::GenericDict class_to_idx(c10::StringType::get(), c10::IntType::get());
        for (int c = 0; c < num_classes; ++c) {
          class_to_idx.insert(classes[c], static_cast<int64_t>(c));
        }
        c10::impl::GenericDict checkpoint = StringKeyed();
        checkpoint.insert("epoch", static_cast<int64_t>(result.epochs));
        checkpoint.insert("model_state_dict", model_state);
        checkpoint.insert("optimizer_state_dict",
                          OptimizerStateDict(*optimizer, options, params, param_names));
        checkpoint.insert("class_to_idx", class_to_idx);
        const std::vector<char> bytes = torch::pickle_save(checkpoint);
        result.checkpoint.assign(bytes.begin(), bytes.end());
        return result;
      });
}

}  // namespace headway
