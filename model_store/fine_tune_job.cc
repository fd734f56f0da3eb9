#include "model_store/fine_tune_job.h"

#include <google/protobuf/text_format.h>
#include <torch/torch.h>

#include <algorithm>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model_store/backbone.h"
#include "model_store/example_split.h"
#include "model_store/fine_tuning.h"
#include "model_store/model_config.h"
#include "model_store/preprocessor.h"
#include "model_store/status_macros.h"
#include "model_store/store/durable_file.h"
#include "model_store/store/model_files.h"
#include "model_store/torch_errors.h"

namespace headway {
namespace {

constexpr char kArchitectureFile[] = "architecture.pt";
constexpr char kCheckpointFile[] = "finetuned.pt";
// Temporary job folders: ".<output>.<job>.finetune.tmp".
constexpr char kLeftoverSuffix[] = ".finetune.tmp";

// Files of an ImageFolder, read; each example's label is its sub-folder's name.
struct ReadExamples {
  std::vector<std::string> bytes;
  std::vector<std::string> labels;
  std::vector<std::string> classes;  // the sub-folders, sorted
};

absl::StatusOr<ReadExamples> ReadImageFolder(const std::filesystem::path& model_store,
                                             const std::string& relative,
                                             int64_t max_examples,
                                             int64_t max_image_bytes) {
  HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path dir,
                           ResolveModelFile(model_store, relative));
  std::error_code error;
  std::vector<std::filesystem::path> folders;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.is_directory() && entry.path().filename().string()[0] != '.') {
      folders.push_back(entry.path());
    }
  }
  if (error) {
    return absl::NotFoundError(absl::StrCat("examples_dir \"", EchoName(relative),
                                            "\" cannot be read: ", error.message()));
  }
  std::sort(folders.begin(), folders.end());
  ReadExamples read;
  for (const std::filesystem::path& folder : folders) {
    read.classes.push_back(folder.filename().string());
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const std::filesystem::path& file : files) {
      if (static_cast<int64_t>(read.bytes.size()) >= max_examples) {
        return absl::InvalidArgumentError(
            absl::StrCat("examples_dir \"", EchoName(relative), "\" holds more than ",
                         max_examples, " images, the limit (--max_fit_examples)"));
      }
      const std::uintmax_t size = std::filesystem::file_size(file, error);
      if (!error && static_cast<int64_t>(size) > max_image_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(file.lexically_relative(model_store).string(), " is ", size,
                         " bytes; the limit is ", max_image_bytes, " (max_image_bytes)"));
      }
      HEADWAY_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(file));
      read.bytes.push_back(std::move(bytes));
      read.labels.push_back(folder.filename().string());
    }
  }
  if (folders.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "examples_dir \"", EchoName(relative),
        "\" has no class folders (ImageFolder layout: DIR/<class>/<image>)"));
  }
  return read;
}

// The examples, preprocessed batch by batch as training asks for them (a job holds
// them encoded: a float32 tensor of every example would be far larger). Each is
// preprocessed once here first, so a bad one fails the job before training starts.
absl::StatusOr<ExampleSource> Preprocessed(const v1::InputSpec& spec,
                                           const InputLimits& limits,
                                           const std::vector<InputView>& inputs) {
  HEADWAY_ASSIGN_OR_RETURN(std::shared_ptr<const Preprocessor> preprocessor,
                           Preprocessor::Create(spec, limits));
  const auto rows =
      [preprocessor,
       &inputs](const std::vector<int64_t>& indices) -> absl::StatusOr<at::Tensor> {
    std::vector<at::Tensor> batch;
    batch.reserve(indices.size());
    for (const int64_t i : indices) {
      absl::StatusOr<at::Tensor> row = preprocessor->Process(inputs[i]);
      if (!row.ok()) {
        return absl::Status(row.status().code(),
                            absl::StrCat("example ", i, ": ", row.status().message()));
      }
      batch.push_back(*std::move(row));
    }
    return CallTorch("stacking the examples", absl::StatusCode::kInternal,
                     [&] { return torch::stack(batch); });
  };
  for (int64_t i = 0; i < static_cast<int64_t>(inputs.size()); ++i) {
    HEADWAY_RETURN_IF_ERROR(rows({i}).status());
  }
  ExampleSource examples;
  examples.count = static_cast<int64_t>(inputs.size());
  examples.batch = rows;
  return examples;
}

v1::ModelConfig FineTunedConfig(const v1::ModelConfig& source,
                                const FineTuneJobSpec& spec,
                                const FineTuneResult& result) {
  v1::ModelConfig config = source;
  config.set_name(spec.output_model);
  config.set_version(1);
  config.clear_heads();
  v1::BackboneConfig& backbone = *config.mutable_backbone();
  backbone.Clear();
  backbone.set_file(kCheckpointFile);
  backbone.set_format(v1::BackboneConfig::TRAINING_CHECKPOINT);
  backbone.set_architecture(kArchitectureFile);
  backbone.set_load_mode(v1::BackboneConfig::STRICT);
  backbone.add_ignore_prefixes(kFineTunedHeadPrefix);
  v1::HeadConfig& head = *config.add_heads();
  head.set_name(spec.head);
  head.set_file(kCheckpointFile);
  head.set_key_prefix(kFineTunedHeadPrefix);
  head.set_labels_file(absl::StrCat("heads/", spec.head, ".labels"));
  head.set_source(absl::StrFormat(
      "fine-tuning job %s of model %s: %d epochs, validation accuracy %s", spec.job_id,
      spec.source_model, result.epochs,
      result.validation_accuracy < 0
          ? std::string("none")
          : absl::StrFormat("%.4f on %d held out", result.validation_accuracy,
                            result.validation_examples)));
  config.set_default_head(spec.head);
  return config;
}

std::string ConfigText(const v1::ModelConfig& config, const FineTuneJobSpec& spec,
                       const FineTuneResult& result) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return absl::StrCat(
      "# Headway model configuration (headway.v1.ModelConfig in text format).\n",
      "# Written by fine-tuning job ", spec.job_id, " from model \"", spec.source_model,
      "\": ", result.epochs, " epochs, train accuracy ", result.train_accuracy,
      ", validation accuracy ", result.validation_accuracy, ".\n", text);
}

absl::Status WriteFolder(const std::filesystem::path& folder,
                         const std::vector<std::pair<std::string, std::string>>& files) {
  HEADWAY_RETURN_IF_ERROR(CreateFolderDurably(folder));
  HEADWAY_RETURN_IF_ERROR(CreateFolderDurably(folder / "heads"));
  for (const auto& [relative, contents] : files) {
    HEADWAY_RETURN_IF_ERROR(WriteFileDurably(folder / relative, contents));
  }
  HEADWAY_RETURN_IF_ERROR(SyncFolder(folder / "heads"));
  return SyncFolder(folder);
}

}  // namespace

absl::Status CheckFineTuneJob(const FineTuneJobSpec& spec) {
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", spec.source_model));
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", spec.output_model));
  HEADWAY_RETURN_IF_ERROR(ValidateHeadName(spec.head));
  std::error_code error;
  if (!std::filesystem::exists(
          spec.model_store / spec.source_model / kModelConfigFileName, error)) {
    return absl::NotFoundError(absl::StrCat("the model store has no model \"",
                                            EchoName(spec.source_model), "\""));
  }
  if (std::filesystem::exists(spec.model_store / spec.output_model, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("the model store has a folder \"", spec.output_model,
                     "\" already; choose another output_model"));
  }
  const bool uploaded = !spec.inputs.empty() || !spec.labels.empty();
  if (uploaded == !spec.examples_dir.empty()) {
    return absl::InvalidArgumentError(
        "give the examples either as inputs with labels or as examples_dir, not both "
        "or neither");
  }
  if (uploaded && spec.inputs.size() != spec.labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat(spec.inputs.size(), " examples but ",
                                                   spec.labels.size(), " labels"));
  }
  if (static_cast<int64_t>(spec.inputs.size()) > spec.max_examples) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.inputs.size(), " examples; the limit is ", spec.max_examples,
                     " (--max_fit_examples)"));
  }
  if (!spec.examples_dir.empty()) {
    HEADWAY_RETURN_IF_ERROR(ValidateRelativePath(spec.examples_dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<FineTuneJobOutput> RunFineTuneJob(
    const FineTuneJobSpec& spec,
    const std::function<bool(const FineTuneProgress&)>& on_progress) {
  HEADWAY_RETURN_IF_ERROR(CheckFineTuneJob(spec));
  const std::filesystem::path source_dir = spec.model_store / spec.source_model;
  HEADWAY_ASSIGN_OR_RETURN(const v1::ModelConfig source, ReadModelConfig(source_dir));

  // 1. The examples.
  std::vector<InputView> inputs = spec.inputs;
  std::vector<std::string> labels = spec.labels;
  FineTuneJobOutput output;
  output.classes = spec.classes;
  ReadExamples read;
  if (!spec.examples_dir.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(
        read, ReadImageFolder(spec.model_store, spec.examples_dir, spec.max_examples,
                              spec.limits.max_image_bytes));
    for (const std::string& bytes : read.bytes) {
      InputView view;
      view.data = bytes;
      inputs.push_back(view);
    }
    labels = read.labels;
    if (output.classes.empty()) output.classes = read.classes;
  }
  std::vector<int> indices;
  HEADWAY_RETURN_IF_ERROR(IndexLabels(labels, output.classes, indices));
  HEADWAY_ASSIGN_OR_RETURN(const ExampleSource examples,
                           Preprocessed(source.input(), spec.limits, inputs));

  // 2. A fresh backbone, fine-tuned.
  HEADWAY_ASSIGN_OR_RETURN(BackboneSpec backbone,
                           ReadBackboneSpec(source_dir, source.backbone()));
  backbone.input_shape = {source.input().channels(), source.input().height(),
                          source.input().width()};
  const std::string architecture =
      backbone.architecture.empty() ? backbone.weights : backbone.architecture;
  HEADWAY_ASSIGN_OR_RETURN(torch::jit::Module module, LoadBackboneModule(backbone));
  HEADWAY_ASSIGN_OR_RETURN(output.training,
                           FineTuneBackbone(module, examples, indices, output.classes,
                                            spec.options, on_progress));

  // 3. The new folder, complete, then renamed into place.
  std::string labels_text;
  for (const std::string& name : output.classes)
    absl::StrAppend(&labels_text, name, "\n");
  const std::filesystem::path temporary =
      spec.model_store /
      absl::StrCat(".", spec.output_model, ".", spec.job_id, kLeftoverSuffix);
  std::error_code ignored;
  std::filesystem::remove_all(temporary, ignored);
  absl::Status written = WriteFolder(
      temporary,
      {{kArchitectureFile, architecture},
       {kCheckpointFile, output.training.checkpoint},
       {absl::StrCat("heads/", spec.head, ".labels"), labels_text},
       {kModelConfigFileName, ConfigText(FineTunedConfig(source, spec, output.training),
                                         spec, output.training)}});
  const std::filesystem::path target = spec.model_store / spec.output_model;
  if (written.ok() && std::filesystem::exists(target, ignored)) {
    written = absl::AlreadyExistsError(absl::StrCat(
        "the model store gained a folder \"", spec.output_model, "\" during the job"));
  }
  if (written.ok()) {
    std::error_code renamed;
    std::filesystem::rename(temporary, target, renamed);
    written = renamed ? StoreWriteError("rename into", target, renamed.value())
                      : SyncFolder(spec.model_store);
  }
  if (!written.ok()) {
    std::filesystem::remove_all(temporary, ignored);
    return written;
  }
  output.training.checkpoint.clear();
  output.checkpoint = absl::StrCat(spec.output_model, "/", kCheckpointFile);
  return output;
}

int CleanFineTuneLeftovers(const std::filesystem::path& model_store,
                           std::filesystem::file_time_type::duration age) {
  int removed = 0;
  std::error_code error;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(model_store, error)) {
    const std::string name = entry.path().filename().string();
    std::error_code unknown;
    const auto modified = entry.last_write_time(unknown);
    if (name[0] == '.' && absl::EndsWith(name, kLeftoverSuffix) && !unknown &&
        now - modified > age) {
      std::error_code ignored;
      if (std::filesystem::remove_all(entry.path(), ignored) > 0) ++removed;
    }
  }
  return removed;
}

}  // namespace headway
