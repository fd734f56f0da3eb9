#include "model_store/model_registry.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"

namespace headway {
namespace {

std::string InstanceNames(const std::vector<std::shared_ptr<Model>>& instances) {
  std::vector<std::string> devices;
  for (const auto& instance : instances) devices.push_back(instance->device());
  return absl::StrJoin(devices, ", ");
}

// Writes `contents` to `path` through a temporary file and a rename, so that readers
// and restarts see the old file or the new one, never a part.
absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 absl::string_view contents) {
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      return absl::UnavailableError(absl::StrCat("cannot write ", temporary.string()));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    return absl::UnavailableError(absl::StrCat("cannot replace ", path.string()));
  }
  return absl::OkStatus();
}

// The model's config as written (no defaults filled), for editing.
absl::StatusOr<v1::ModelConfig> ReadStoredConfig(const std::filesystem::path& model_dir) {
  HEADWAY_ASSIGN_OR_RETURN(const std::string text,
                           ReadFileToString(model_dir / kModelConfigFileName));
  return ParseModelConfig(text);
}

absl::Status WriteStoredConfig(const std::filesystem::path& model_dir,
                               const v1::ModelConfig& config) {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(config, &text)) {
    return absl::InternalError("cannot print the model config");
  }
  return WriteFileAtomically(
      model_dir / kModelConfigFileName,
      absl::StrCat(
          "# Headway model configuration (headway.v1.ModelConfig, text format).\n",
          "# Rewritten by a persisted head swap.\n", text));
}

}  // namespace

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  const bool valid = !name.empty() && name.size() <= 128 && name[0] != '.' &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
                     });
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name \"", absl::CHexEscape(name.substr(0, 128)),
        "\" must be 1 to 128 letters, digits, '_', '-' or '.', not starting with '.'"));
  }
  return absl::OkStatus();
}

ModelRegistry::~ModelRegistry() {
  absl::MutexLock lock(&mu_);
  models_.clear();
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(
    const Options& options) {
  std::error_code error;
  if (!std::filesystem::is_directory(options.model_store, error)) {
    return absl::NotFoundError(
        absl::StrCat("model store ", options.model_store.string(), " is not a folder"));
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(options));
  std::vector<std::string>& names = registry->store_models_;
  for (const auto& entry :
       std::filesystem::directory_iterator(options.model_store, error)) {
    if (entry.is_directory() &&
        std::filesystem::exists(entry.path() / kModelConfigFileName)) {
      names.push_back(entry.path().filename().string());
    }
  }
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "cannot list ", options.model_store.string(), ": ", error.message()));
  }
  if (names.empty()) {
    return absl::NotFoundError(absl::StrCat("model store ", options.model_store.string(),
                                            " holds no model folder with a ",
                                            kModelConfigFileName));
  }
  std::sort(names.begin(), names.end());
  return registry;
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(
    const Options& options) {
  HEADWAY_ASSIGN_OR_RETURN(std::unique_ptr<ModelRegistry> registry, Open(options));
  HEADWAY_RETURN_IF_ERROR(registry->LoadAll());
  return registry;
}

absl::Status ModelRegistry::LoadAll(const std::function<void(const Model&)>& on_loaded) {
  for (const std::string& name : store_models_) {
    HEADWAY_ASSIGN_OR_RETURN(const std::shared_ptr<Model> model, LoadModel(name, ""));
    on_loaded(*model);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::LoadInstance(
    absl::string_view name, absl::string_view device) {
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", name));
  const std::filesystem::path model_dir = options_.model_store / std::string(name);
  if (!std::filesystem::exists(model_dir / kModelConfigFileName)) {
    return absl::NotFoundError(
        absl::StrCat("the model store has no model \"", name, "\""));
  }
  Model::Options model_options;
  model_options.model_dir = model_dir;
  HEADWAY_ASSIGN_OR_RETURN(model_options.config, ReadModelConfig(model_dir));
  model_options.device = std::string(device);
  model_options.retirer = &retirer_;
  model_options.limits = options_.input_limits;
  model_options.max_head_bytes = options_.max_head_bytes;
  model_options.on_batch = options_.on_batch;
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(model_options);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("model \"", name, "\": ", model.status().message()));
  }
  return std::shared_ptr<Model>(*std::move(model));
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::LoadModel(
    absl::string_view name, absl::string_view device) {
  // Loading takes seconds: do it outside the lock, then check for a twin.
  HEADWAY_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, LoadInstance(name, device));
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Model>>& instances = models_[std::string(name)];
  for (const auto& instance : instances) {
    if (instance->device() == model->device()) {
      return absl::AlreadyExistsError(
          absl::StrCat("model \"", name, "\" is already loaded on ", model->device()));
    }
  }
  instances.push_back(model);
  return model;
}

absl::StatusOr<std::vector<std::string>> ModelRegistry::UnloadModel(
    absl::string_view name, absl::string_view device) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not loaded"));
  }
  std::vector<std::shared_ptr<Model>>& instances = it->second;
  auto keep = std::stable_partition(
      instances.begin(), instances.end(),
      [&](const auto& m) { return !device.empty() && m->device() != device; });
  if (keep == instances.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not loaded on ",
                                            device,
                                            "; its devices: ", InstanceNames(instances)));
  }
  std::vector<std::string> devices;
  for (auto i = keep; i != instances.end(); ++i) devices.push_back((*i)->device());
  // The retirer destroys them once their last request is done, off this thread.
  for (auto i = keep; i != instances.end(); ++i) retirer_.Retire(std::move(*i));
  instances.erase(keep, instances.end());
  if (instances.empty()) models_.erase(it);
  return devices;
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::Find(
    absl::string_view name, absl::string_view device) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::vector<std::string> names;
    for (const auto& [model_name, instances] : models_) names.push_back(model_name);
    return absl::NotFoundError(absl::StrCat(
        "model \"", name, "\" is not loaded; models: ", absl::StrJoin(names, ", ")));
  }
  const std::vector<std::shared_ptr<Model>>& instances = it->second;
  if (device.empty()) return instances[next_instance_++ % instances.size()];
  for (const auto& instance : instances) {
    if (instance->device() == device) return instance;
  }
  return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not loaded on ",
                                          device,
                                          "; its devices: ", InstanceNames(instances)));
}

std::vector<std::shared_ptr<Model>> ModelRegistry::List(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Model>> models;
  for (const auto& [model_name, instances] : models_) {
    if (!name.empty() && model_name != name) continue;
    models.insert(models.end(), instances.begin(), instances.end());
  }
  return models;
}

absl::StatusOr<SwapResult> ModelRegistry::SwapHead(absl::string_view model_name,
                                                   const HeadSwap& swap, bool persist,
                                                   absl::string_view device) {
  HEADWAY_RETURN_IF_ERROR(ValidateHeadName(swap.head));
  std::vector<std::shared_ptr<Model>> targets;
  if (device.empty()) {
    targets = List(model_name);
    if (targets.empty()) HEADWAY_RETURN_IF_ERROR(Find(model_name).status());
  } else {
    HEADWAY_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, Find(model_name, device));
    targets.push_back(std::move(model));
  }
  absl::MutexLock store_lock(&store_mu_);
  SwapResult result;
  for (const std::shared_ptr<Model>& model : targets) {
    absl::StatusOr<HeadInfo> head = model->SwapHead(swap);
    if (!head.ok()) {
      return absl::Status(
          head.status().code(),
          absl::StrCat(head.status().message(),
                       result.devices.empty()
                           ? ""
                           : absl::StrCat(" (already swapped on ",
                                          absl::StrJoin(result.devices, ", "), ")")));
    }
    result.head = *head;
    result.devices.push_back(model->device());
  }
  if (persist) HEADWAY_RETURN_IF_ERROR(PersistSwap(*targets.front(), swap));
  return result;
}

absl::Status ModelRegistry::RemoveHead(absl::string_view model_name,
                                       absl::string_view head, bool persist) {
  std::vector<std::shared_ptr<Model>> targets = List(model_name);
  if (targets.empty()) return Find(model_name).status();
  absl::MutexLock store_lock(&store_mu_);
  for (const std::shared_ptr<Model>& model : targets) {
    HEADWAY_RETURN_IF_ERROR(model->RemoveHead(head));
  }
  if (persist) HEADWAY_RETURN_IF_ERROR(PersistRemoval(*targets.front(), head));
  return absl::OkStatus();
}

absl::Status ModelRegistry::PersistSwap(const Model& model, const HeadSwap& swap) {
  const std::filesystem::path& model_dir = model.model_dir();
  HEADWAY_ASSIGN_OR_RETURN(v1::ModelConfig config, ReadStoredConfig(model_dir));
  v1::HeadConfig entry;
  entry.set_name(swap.head);
  entry.set_key_prefix(swap.key_prefix);
  if (!swap.checkpoint.empty()) {
    std::error_code ignored;
    std::filesystem::create_directories(model_dir / "heads", ignored);
    const std::string file = absl::StrCat("heads/", swap.head, ".pt");
    HEADWAY_RETURN_IF_ERROR(WriteFileAtomically(model_dir / file, swap.checkpoint));
    entry.set_file(file);
  } else {
    entry.set_file(swap.file);
  }
  if (!swap.labels.empty()) {
    const std::string labels_file = absl::StrCat("heads/", swap.head, ".labels");
    HEADWAY_RETURN_IF_ERROR(WriteFileAtomically(
        model_dir / labels_file, absl::StrCat(absl::StrJoin(swap.labels, "\n"), "\n")));
    entry.set_labels_file(labels_file);
  } else {
    entry.set_labels_file(swap.labels_file);
  }
  bool replaced = false;
  for (v1::HeadConfig& head : *config.mutable_heads()) {
    if (head.name() == swap.head) {
      head = entry;
      replaced = true;
    }
  }
  if (!replaced) *config.add_heads() = entry;
  return WriteStoredConfig(model_dir, config);
}

absl::Status ModelRegistry::PersistRemoval(const Model& model, absl::string_view head) {
  HEADWAY_ASSIGN_OR_RETURN(v1::ModelConfig config, ReadStoredConfig(model.model_dir()));
  auto* heads = config.mutable_heads();
  heads->erase(std::remove_if(heads->begin(), heads->end(),
                              [&](const v1::HeadConfig& h) { return h.name() == head; }),
               heads->end());
  return WriteStoredConfig(model.model_dir(), config);
}

}  // namespace headway
