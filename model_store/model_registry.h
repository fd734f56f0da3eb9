// ModelRegistry: every served model instance, by model name and device. Models come
// from a model store (a folder with one sub-folder per model, each holding a
// config.pbtxt); a model may be loaded on several devices at once. It is the only
// place requests look models up, and the only writer of the model store (persisted
// head swaps).
//
// Thread-safe. Instances are shared: a request keeps its shared_ptr<Model> until it
// answers, so unloading never fails a request in flight.
#ifndef HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_
#define HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "model_store/model.h"
#include "model_store/retirer.h"

namespace headway {

struct SwapResult {
  HeadInfo head;
  std::vector<std::string> devices;  // the instances now serving it
};

class ModelRegistry {
 public:
  struct Options {
    std::filesystem::path model_store;
    // Passed to every model instance (see Model::Options).
    InputLimits input_limits;
    int64_t max_head_bytes = int64_t{256} << 20;
    BatchObserver on_batch;
  };

  // An empty registry over the store. NOT_FOUND when the store is not a folder or holds
  // no model folder.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Open(const Options& options);

  // Open, then LoadAll.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(const Options& options);

  // The store's model folders (those with a config), by name.
  const std::vector<std::string>& store_models() const { return store_models_; }

  // Loads every store model on its configured device, calling `on_loaded` after each.
  // Fails on the first model that does not load: a server should not serve
  // half-configured.
  absl::Status LoadAll(const std::function<void(const Model&)>& on_loaded =
                           [](const Model&) {});
  ~ModelRegistry();

  // The instance of `name` on `device`; with an empty device, one of its instances
  // (round robin). NOT_FOUND names what is loaded.
  absl::StatusOr<std::shared_ptr<Model>> Find(absl::string_view name,
                                              absl::string_view device = "") const;

  // Every instance, by name then device; only `name`'s when set.
  std::vector<std::shared_ptr<Model>> List(absl::string_view name = "") const;

  // Loads store folder `name` on `device` (its config's device when empty).
  // ALREADY_EXISTS when that instance is loaded; NOT_FOUND when the store has no such
  // model; FAILED_PRECONDITION for a device this machine lacks.
  absl::StatusOr<std::shared_ptr<Model>> LoadModel(absl::string_view name,
                                                   absl::string_view device);

  // Unloads the instance on `device`, or every instance when empty; returns their
  // devices. Requests in flight on them still finish.
  absl::StatusOr<std::vector<std::string>> UnloadModel(absl::string_view name,
                                                       absl::string_view device);

  // Swaps (or adds) a head on every instance of `model` (or the one on `device`).
  // With `persist`, then writes the head and the config into the store atomically.
  absl::StatusOr<SwapResult> SwapHead(absl::string_view model, const HeadSwap& swap,
                                      bool persist, absl::string_view device = "");

  // Removes a head from every instance; with `persist` from the config too.
  absl::Status RemoveHead(absl::string_view model, absl::string_view head, bool persist);

 private:
  explicit ModelRegistry(const Options& options) : options_(options) {}

  absl::StatusOr<std::shared_ptr<Model>> LoadInstance(absl::string_view name,
                                                      absl::string_view device);
  absl::Status PersistSwap(const Model& model, const HeadSwap& swap);
  absl::Status PersistRemoval(const Model& model, absl::string_view head);

  const Options options_;
  std::vector<std::string> store_models_;
  // Declared first so that it outlives the models whose heads it releases.
  Retirer retirer_;
  absl::Mutex store_mu_;  // serialises writes to the model store
  mutable absl::Mutex mu_;
  // name -> instances, one per device.
  std::map<std::string, std::vector<std::shared_ptr<Model>>, std::less<>> models_
      ABSL_GUARDED_BY(mu_);
  mutable std::atomic<uint64_t> next_instance_{0};
};

// Model and head names become file and folder names: letters, digits, '_', '-' and
// '.', not starting with '.', at most 128 bytes. INVALID_ARGUMENT, naming `what`
// ("model" or "head"), otherwise.
absl::Status ValidateName(absl::string_view what, absl::string_view name);
inline absl::Status ValidateHeadName(absl::string_view head) {
  return ValidateName("head", head);
}

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_
