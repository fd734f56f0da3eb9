// ModelRegistry: the served models by name, loaded from a model store (a folder with
// one sub-folder per model, each holding a config.pbtxt). It is the only place
// requests look models up.
//
// Thread-safe. Models are shared: a request keeps its shared_ptr<Model> until it
// answers.
#ifndef HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_
#define HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "model_store/model.h"

namespace headway {

class ModelRegistry {
 public:
  struct Options {
    std::filesystem::path model_store;
  };

  // Loads every model of the store. Fails when the store is missing, holds no model,
  // or any model fails to load: a server should not start half-configured.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(const Options& options);

  // NOT_FOUND, listing the loaded models, when `name` is not one of them.
  absl::StatusOr<std::shared_ptr<Model>> Find(absl::string_view name) const;

  // Every model, by name.
  std::vector<std::shared_ptr<Model>> List() const;

 private:
  ModelRegistry() = default;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Model>, std::less<>> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_
