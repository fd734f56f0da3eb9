// ModelRegistry: every served model instance, by model name and device, over a model
// store (a folder with one sub-folder per model, each holding a config.pbtxt). A model
// may be loaded on several devices at once. It is the only place requests look models
// up, and the only writer of the model store.
//
// Changes are transactions: a head swap or removal, a load or an unload, and a change
// read from the store (SyncFromStore) is built and warmed up on every instance it
// targets first; with `persist` the store is then written durably (one atomic commit,
// see store/persisted_heads.h); only then do all instances publish it. A failure at any
// step leaves every instance, and the store, as they were.
//
// Thread-safe. Changes to one model are serialised by that model's change lock, held
// across its loads; requests never take it (Find and List take a short lock only), so
// a slow load never holds up inference, and changes to different models run in
// parallel. Instances are shared: a request keeps its shared_ptr<Model> until it
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
#include "model_store/model_config.h"
#include "model_store/retirer.h"
#include "model_store/store/persisted_heads.h"

namespace headway {

struct SwapResult {
  HeadInfo head;
  std::vector<std::string> devices;  // the instances now serving it
};

// What a model of the store is doing, beyond its loaded instances.
struct ModelRecord {
  std::string name;
  // LOADING, READY, FAILED (its load failed; nothing serves it) or UNLOADED.
  std::string state;
  // Why its last load, or the last change read from the store, was refused; empty
  // when the store's entry is served.
  std::string error;
  int instances = 0;
};

// What SyncFromStore did.
struct StoreSync {
  enum class Action {
    kNone,      // the store's entry is what is served (or was refused before)
    kLoaded,    // a model new to the store (or back) now serves
    kReloaded,  // its backbone or settings changed: new instances replaced the old
    kHeadsChanged,
    kRemoved,  // its folder left the store: unloaded
    kRefused,  // the change did not load; what served before still serves
  };
  Action action = Action::kNone;
  std::string model;
  std::string message;  // for kRefused: why
};

class ModelRegistry {
 public:
  struct Options {
    std::filesystem::path model_store;
    // Passed to every model instance (see Model::Options).
    InputLimits input_limits;
    int64_t max_head_bytes = int64_t{256} << 20;
    int64_t max_backbone_bytes = int64_t{16} << 30;
    BatchObserver on_batch;
    // Test seams. After each step of a persisted write (PersistedHeadsTransaction);
    // before each head load of an instance, with its model and device (an error fails
    // the load as a device fault would).
    StoreStepHook after_store_step;
    std::function<absl::Status(absl::string_view model, absl::string_view device,
                               absl::string_view head)>
        before_head_load;
  };

  // An empty registry over the store. NOT_FOUND when the store is not a folder; an
  // empty store is fine (models may arrive later, see SyncFromStore).
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Open(const Options& options);

  // Open, then LoadAll.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(const Options& options);
  ~ModelRegistry();

  const std::filesystem::path& model_store() const { return options_.model_store; }
  const InputLimits& input_limits() const { return options_.input_limits; }

  // The store's model folders (those with a config) now, by name.
  std::vector<std::string> StoreModels() const;

  // Loads every store model on its configured device, one after the other; returns
  // the first failure after trying them all.
  absl::Status LoadAll();

  // The instance of `name` on `device`; with an empty device, one of its instances
  // (round robin). NOT_FOUND names what is loaded; UNAVAILABLE while the model loads;
  // FAILED_PRECONDITION, with the reason, when its load failed.
  absl::StatusOr<std::shared_ptr<Model>> Find(absl::string_view name,
                                              absl::string_view device = "") const;

  // Every instance, by name then device; only `name`'s when set.
  std::vector<std::shared_ptr<Model>> List(absl::string_view name = "") const;

  // Every model the registry knows (loaded, loading, failed or unloaded), by name.
  std::vector<ModelRecord> Records() const;

  // Marks the store's models LOADING (before their loads are scheduled).
  void MarkLoading(const std::vector<std::string>& names);

  // Loads store folder `name` on `device` (its config's device when empty).
  // ALREADY_EXISTS when that instance is loaded; NOT_FOUND when the store has no such
  // model; FAILED_PRECONDITION for a device this machine lacks.
  absl::StatusOr<std::shared_ptr<Model>> LoadModel(absl::string_view name,
                                                   absl::string_view device);

  // Unloads the instance on `device`, or every instance when empty; returns their
  // devices. Requests in flight on them still finish. The store's later changes to the
  // model do load it again.
  absl::StatusOr<std::vector<std::string>> UnloadModel(absl::string_view name,
                                                       absl::string_view device);

  // Swaps (or adds) a head on every instance of `model` (or the one on `device`), all
  // or none. With `persist` (every instance only) the store is written before any
  // instance serves it; FAILED_PRECONDITION, naming the path, when it cannot be.
  absl::StatusOr<SwapResult> SwapHead(absl::string_view model, const HeadSwap& swap,
                                      bool persist, absl::string_view device = "");

  // Removes a head from every instance, all or none; with `persist` from the store too.
  absl::Status RemoveHead(absl::string_view model, absl::string_view head, bool persist);

  // Brings model `name` in line with its store entry when that changed since it was
  // last served or refused: loads a new model, reloads one whose backbone or settings
  // changed, changes heads, or unloads a model whose folder is gone. A change that does
  // not load is refused (once per store content) and the model serves on as it was.
  StoreSync SyncFromStore(absl::string_view name);

 private:
  // A model of the store: its instances and where it stands with its store entry.
  struct Entry {
    std::vector<std::shared_ptr<Model>> instances;
    std::string state = "LOADING";
    std::string error;
    // StoreFingerprint of the entry the instances serve (or were unloaded at), and of
    // the last entry that was refused.
    std::string applied_fingerprint;
    std::string refused_fingerprint;
    // BackboneFingerprint of the config the instances were loaded from.
    std::string backbone_fingerprint;
  };

  explicit ModelRegistry(const Options& options) : options_(options) {}

  std::filesystem::path ModelDir(absl::string_view name) const;
  // The lock serialising changes to `name` (created on first use; never freed).
  absl::Mutex& ChangeLock(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<Model>> LoadInstance(absl::string_view name,
                                                      absl::string_view device,
                                                      const StoredModel& stored);
  // LoadModel under the model's change lock.
  absl::StatusOr<std::shared_ptr<Model>> LoadLocked(absl::string_view name,
                                                    absl::string_view device);
  // The instances a change targets: every one of `model`'s, or the one on `device`.
  absl::StatusOr<std::vector<std::shared_ptr<Model>>> Targets(
      absl::string_view model, absl::string_view device) const;
  // A persisted change's transaction on `model`'s store entry; null without persist.
  absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>> BeginStoreWrite(
      absl::string_view model, bool persist) const;
  // After a persisted change, while its transaction still holds the store lock: the
  // store entry as written is what the instances serve (the follower skips it).
  void MarkStoreEntryServed(absl::string_view model) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ReloadInstances(absl::string_view name, const StoredModel& stored,
                               const std::vector<std::shared_ptr<Model>>& instances);
  void SetEntry(absl::string_view name, const std::function<void(Entry&)>& update)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  // Declared first so that it outlives the models whose heads it releases.
  Retirer retirer_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry, std::less<>> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<absl::Mutex>, std::less<>> change_locks_
      ABSL_GUARDED_BY(mu_);
  mutable std::atomic<uint64_t> next_instance_{0};
};

// Prepares `change` on every instance, then runs `commit` (the store write; may be
// empty), then publishes on every instance: all or nothing. An error from any instance
// names its device and leaves all of them serving what they served; so does an error
// from `commit`. The caller holds the model's change lock. Returns the first
// instance's prepared head table.
absl::StatusOr<std::vector<HeadInfo>> ApplyHeadChange(
    const std::vector<std::shared_ptr<Model>>& instances, const HeadChange& change,
    const std::function<absl::Status(const PreparedHeadChange&)>& commit);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_MODEL_REGISTRY_H_
