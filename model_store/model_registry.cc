#include "model_store/model_registry.h"

#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"

namespace headway {

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(
    const Options& options) {
  std::error_code error;
  if (!std::filesystem::is_directory(options.model_store, error)) {
    return absl::NotFoundError(
        absl::StrCat("model store ", options.model_store.string(), " is not a folder"));
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry());
  std::vector<std::filesystem::path> model_dirs;
  for (const auto& entry :
       std::filesystem::directory_iterator(options.model_store, error)) {
    if (entry.is_directory() &&
        std::filesystem::exists(entry.path() / kModelConfigFileName)) {
      model_dirs.push_back(entry.path());
    }
  }
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "cannot list ", options.model_store.string(), ": ", error.message()));
  }
  if (model_dirs.empty()) {
    return absl::NotFoundError(absl::StrCat("model store ", options.model_store.string(),
                                            " holds no model folder with a ",
                                            kModelConfigFileName));
  }
  for (const std::filesystem::path& dir : model_dirs) {
    HEADWAY_ASSIGN_OR_RETURN(const v1::ModelConfig config, ReadModelConfig(dir));
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir, config);
    if (!model.ok()) {
      return absl::Status(
          model.status().code(),
          absl::StrCat("model \"", config.name(), "\": ", model.status().message()));
    }
    absl::MutexLock lock(&registry->mu_);
    registry->models_[config.name()] = std::move(*model);
  }
  return registry;
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::Find(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::vector<std::string> names;
    for (const auto& [model_name, model] : models_) names.push_back(model_name);
    return absl::NotFoundError(absl::StrCat(
        "model \"", name, "\" is not loaded; models: ", absl::StrJoin(names, ", ")));
  }
  return it->second;
}

std::vector<std::shared_ptr<Model>> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Model>> models;
  for (const auto& [name, model] : models_) models.push_back(model);
  return models;
}

}  // namespace headway
