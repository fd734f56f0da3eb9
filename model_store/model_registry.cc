#include "model_store/model_registry.h"

#include <algorithm>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "model_store/store/model_files.h"

namespace headway {
namespace {

std::string InstanceNames(const std::vector<std::shared_ptr<Model>>& instances) {
  std::vector<std::string> devices;
  for (const auto& instance : instances) devices.push_back(instance->device());
  return absl::StrJoin(devices, ", ");
}

absl::Status OnDevice(const absl::Status& status, const Model& instance) {
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), " (on ", instance.device(), ")"));
}

// Whether the user's config.pbtxt (not the persisted changes) names `head`.
bool ConfigNamesHead(const std::filesystem::path& model_dir, absl::string_view head) {
  absl::StatusOr<std::string> text = ReadFileToString(model_dir / kModelConfigFileName);
  if (!text.ok()) return false;
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(*text);
  if (!config.ok()) return false;
  return std::any_of(config->heads().begin(), config->heads().end(),
                     [&](const v1::HeadConfig& h) { return h.name() == head; });
}

// The store's whole head table as a change.
HeadChange StoreHeads(const StoredModel& stored) {
  HeadChange change;
  change.complete = true;
  change.default_head = stored.config.default_head();
  for (const v1::HeadConfig& head : stored.config.heads()) {
    auto version = stored.head_versions.find(head.name());
    change.swaps.push_back(HeadSwapFromConfig(
        head, version == stored.head_versions.end() ? 1 : version->second));
  }
  return change;
}

}  // namespace

absl::StatusOr<std::vector<HeadInfo>> ApplyHeadChange(
    const std::vector<std::shared_ptr<Model>>& instances, const HeadChange& change,
    const std::function<absl::Status(const PreparedHeadChange&)>& commit) {
  if (instances.empty()) return absl::InternalError("a head change without instances");
  std::vector<std::unique_ptr<PreparedHeadChange>> prepared;
  for (const std::shared_ptr<Model>& instance : instances) {
    absl::StatusOr<std::unique_ptr<PreparedHeadChange>> one =
        instance->PrepareHeadChange(change);
    if (!one.ok()) {
      return instances.size() == 1 ? one.status() : OnDevice(one.status(), *instance);
    }
    prepared.push_back(*std::move(one));
  }
  if (commit) HEADWAY_RETURN_IF_ERROR(commit(*prepared.front()));
  std::vector<HeadInfo> heads = prepared.front()->heads();
  for (size_t i = 0; i < instances.size(); ++i) {
    instances[i]->PublishHeadChange(std::move(prepared[i]));
  }
  return heads;
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
  return std::unique_ptr<ModelRegistry>(new ModelRegistry(options));
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(
    const Options& options) {
  HEADWAY_ASSIGN_OR_RETURN(std::unique_ptr<ModelRegistry> registry, Open(options));
  HEADWAY_RETURN_IF_ERROR(registry->LoadAll());
  return registry;
}

std::vector<std::string> ModelRegistry::StoreModels() const {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(options_.model_store, error)) {
    std::error_code ignored;
    if (entry.is_directory(ignored) &&
        std::filesystem::exists(entry.path() / kModelConfigFileName, ignored) &&
        ValidateName("model", entry.path().filename().string()).ok()) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status ModelRegistry::LoadAll() {
  absl::Status first_error;
  for (const std::string& name : StoreModels()) {
    absl::Status loaded = LoadModel(name, "").status();
    if (first_error.ok()) first_error = loaded;
  }
  return first_error;
}

std::filesystem::path ModelRegistry::ModelDir(absl::string_view name) const {
  return options_.model_store / std::string(name);
}

absl::Mutex& ModelRegistry::ChangeLock(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = change_locks_.find(name);
  if (it == change_locks_.end()) {
    it = change_locks_.emplace(std::string(name), std::make_unique<absl::Mutex>()).first;
  }
  return *it->second;
}

void ModelRegistry::SetEntry(absl::string_view name,
                             const std::function<void(Entry&)>& update) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) it = models_.emplace(std::string(name), Entry()).first;
  update(it->second);
}

void ModelRegistry::MarkLoading(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    SetEntry(name, [](Entry& entry) {
      if (entry.instances.empty()) entry.state = "LOADING";
    });
  }
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::LoadInstance(
    absl::string_view name, absl::string_view device, const StoredModel& stored) {
  Model::Options model_options;
  model_options.model_dir = ModelDir(name);
  model_options.config = stored.config;
  model_options.head_versions = stored.head_versions;
  model_options.device = std::string(device);
  model_options.retirer = &retirer_;
  model_options.limits = options_.input_limits;
  model_options.max_head_bytes = options_.max_head_bytes;
  model_options.max_backbone_bytes = options_.max_backbone_bytes;
  model_options.on_batch = options_.on_batch;
  if (options_.before_head_load) {
    model_options.before_head_load =
        [hook = options_.before_head_load, model = std::string(name),
         device = std::string(device)](absl::string_view head) {
          return hook(model, device, head);
        };
  }
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(model_options);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("model \"", name, "\": ", model.status().message()));
  }
  return std::shared_ptr<Model>(*std::move(model));
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::LoadModel(
    absl::string_view name, absl::string_view device) {
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", name));
  absl::MutexLock change_lock(&ChangeLock(name));
  return LoadLocked(name, device);
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::LoadLocked(
    absl::string_view name, absl::string_view device) {
  const std::filesystem::path model_dir = ModelDir(name);
  // Read before the config, so that a change made during the load is seen later.
  absl::StatusOr<std::string> fingerprint = StoreFingerprint(model_dir);
  if (!fingerprint.ok()) {
    return absl::NotFoundError(
        absl::StrCat("the model store has no model \"", name, "\""));
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) {
      for (const auto& instance : it->second.instances) {
        if (instance->device() == device ||
            (device.empty() && instance->device() == instance->config().device())) {
          return absl::AlreadyExistsError(absl::StrCat(
              "model \"", name, "\" is already loaded on ", instance->device()));
        }
      }
    }
  }
  CleanPersistedFolder(model_dir);  // what a writer that stopped midway left
  absl::StatusOr<std::shared_ptr<Model>> model = absl::UnknownError("not loaded");
  absl::StatusOr<StoredModel> stored = ReadStoredModel(model_dir);
  model = stored.ok()
              ? LoadInstance(name, device, *stored)
              : absl::StatusOr<std::shared_ptr<Model>>(absl::Status(
                    stored.status().code(),
                    absl::StrCat("model \"", name, "\": ", stored.status().message())));
  absl::MutexLock lock(&mu_);
  Entry& entry = models_[std::string(name)];
  if (!model.ok()) {
    if (entry.instances.empty()) {
      entry.state = "FAILED";
      entry.error = std::string(model.status().message());
      entry.refused_fingerprint = *fingerprint;
    }
    return model.status();
  }
  for (const auto& instance : entry.instances) {
    if (instance->device() == (*model)->device()) {
      return absl::AlreadyExistsError(
          absl::StrCat("model \"", name, "\" is already loaded on ", (*model)->device()));
    }
  }
  entry.instances.push_back(*model);
  entry.state = "READY";
  entry.error.clear();
  entry.applied_fingerprint = *fingerprint;
  entry.refused_fingerprint.clear();
  entry.backbone_fingerprint = BackboneFingerprint(stored->config, model_dir);
  return model;
}

absl::StatusOr<std::vector<std::string>> ModelRegistry::UnloadModel(
    absl::string_view name, absl::string_view device) {
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", name));
  absl::MutexLock change_lock(&ChangeLock(name));
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.instances.empty()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not loaded"));
  }
  std::vector<std::shared_ptr<Model>>& instances = it->second.instances;
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
  if (instances.empty()) it->second.state = "UNLOADED";
  return devices;
}

absl::StatusOr<std::shared_ptr<Model>> ModelRegistry::Find(
    absl::string_view name, absl::string_view device) const {
  // A name no model can have is refused before the lookup, and never echoed whole.
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", name));
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.instances.empty()) {
    if (it != models_.end() && it->second.state == "LOADING") {
      return absl::UnavailableError(absl::StrCat("model \"", name, "\" is loading"));
    }
    if (it != models_.end() && it->second.state == "FAILED") {
      return absl::FailedPreconditionError(
          absl::StrCat("model \"", name, "\" failed to load: ", it->second.error));
    }
    std::vector<std::string> names;
    for (const auto& [model_name, entry] : models_) {
      if (!entry.instances.empty()) names.push_back(model_name);
    }
    return absl::NotFoundError(absl::StrCat(
        "model \"", name, "\" is not loaded; models: ", absl::StrJoin(names, ", ")));
  }
  const std::vector<std::shared_ptr<Model>>& instances = it->second.instances;
  if (device.empty()) return instances[next_instance_++ % instances.size()];
  for (const auto& instance : instances) {
    if (instance->device() == device) return instance;
  }
  return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not loaded on ",
                                          EchoName(device),
                                          "; its devices: ", InstanceNames(instances)));
}

std::vector<std::shared_ptr<Model>> ModelRegistry::List(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Model>> models;
  for (const auto& [model_name, entry] : models_) {
    if (!name.empty() && model_name != name) continue;
    models.insert(models.end(), entry.instances.begin(), entry.instances.end());
  }
  return models;
}

std::vector<ModelRecord> ModelRegistry::Records() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelRecord> records;
  for (const auto& [name, entry] : models_) {
    records.push_back(
        {name, entry.state, entry.error, static_cast<int>(entry.instances.size())});
  }
  return records;
}

absl::StatusOr<std::vector<std::shared_ptr<Model>>> ModelRegistry::Targets(
    absl::string_view model, absl::string_view device) const {
  if (!device.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(std::shared_ptr<Model> instance, Find(model, device));
    return std::vector<std::shared_ptr<Model>>{std::move(instance)};
  }
  std::vector<std::shared_ptr<Model>> targets = List(model);
  if (targets.empty()) return Find(model).status();
  return targets;
}

absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>> ModelRegistry::BeginStoreWrite(
    absl::string_view model, bool persist) const {
  if (!persist) return std::unique_ptr<PersistedHeadsTransaction>();
  return PersistedHeadsTransaction::Begin(ModelDir(model), options_.after_store_step);
}

void ModelRegistry::MarkStoreEntryServed(absl::string_view model) {
  // Called under the store lock: no other writer's change is in this fingerprint.
  absl::StatusOr<std::string> fingerprint = StoreFingerprint(ModelDir(model));
  SetEntry(model, [&](Entry& entry) {
    if (fingerprint.ok()) entry.applied_fingerprint = *fingerprint;
  });
}

absl::StatusOr<SwapResult> ModelRegistry::SwapHead(absl::string_view model_name,
                                                   const HeadSwap& swap, bool persist,
                                                   absl::string_view device) {
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", model_name));
  HEADWAY_RETURN_IF_ERROR(ValidateHeadName(swap.head));
  if (persist && !device.empty()) {
    return absl::InvalidArgumentError(
        "a persisted swap changes the store, which every instance serves: leave the "
        "device empty");
  }
  absl::MutexLock change_lock(&ChangeLock(model_name));
  HEADWAY_ASSIGN_OR_RETURN(const std::vector<std::shared_ptr<Model>> targets,
                           Targets(model_name, device));
  HeadChange change;
  change.swaps.push_back(swap);
  HEADWAY_ASSIGN_OR_RETURN(std::unique_ptr<PersistedHeadsTransaction> transaction,
                           BeginStoreWrite(model_name, persist));
  if (transaction != nullptr) {
    // One version for the content, from the store: every replica reports it.
    int64_t version = transaction->StoredVersion(swap.head);
    for (const std::shared_ptr<Model>& instance : targets) {
      for (const HeadInfo& head : instance->Info().heads) {
        if (head.name == swap.head) version = std::max(version, head.version);
      }
    }
    change.swaps.front().version = version + 1;
  }
  HEADWAY_ASSIGN_OR_RETURN(
      const std::vector<HeadInfo> heads,
      ApplyHeadChange(targets, change, [&](const PreparedHeadChange& prepared) {
        if (transaction == nullptr) return absl::OkStatus();
        return transaction->CommitSwap(prepared.swapped().front());
      }));
  if (transaction != nullptr) MarkStoreEntryServed(model_name);
  SwapResult result;
  for (const HeadInfo& head : heads) {
    if (head.name == swap.head) result.head = head;
  }
  for (const std::shared_ptr<Model>& instance : targets) {
    result.devices.push_back(instance->device());
  }
  return result;
}

absl::Status ModelRegistry::RemoveHead(absl::string_view model_name,
                                       absl::string_view head, bool persist) {
  HEADWAY_RETURN_IF_ERROR(ValidateName("model", model_name));
  HEADWAY_RETURN_IF_ERROR(ValidateHeadName(head));
  absl::MutexLock change_lock(&ChangeLock(model_name));
  HEADWAY_ASSIGN_OR_RETURN(const std::vector<std::shared_ptr<Model>> targets,
                           Targets(model_name, ""));
  HeadChange change;
  change.removals.emplace_back(head);
  HEADWAY_ASSIGN_OR_RETURN(std::unique_ptr<PersistedHeadsTransaction> transaction,
                           BeginStoreWrite(model_name, persist));
  HEADWAY_RETURN_IF_ERROR(
      ApplyHeadChange(targets, change, [&](const PreparedHeadChange&) {
        if (transaction == nullptr) return absl::OkStatus();
        return transaction->CommitRemoval(head,
                                          ConfigNamesHead(ModelDir(model_name), head));
      }).status());
  if (transaction != nullptr) MarkStoreEntryServed(model_name);
  return absl::OkStatus();
}

absl::Status ModelRegistry::ReloadInstances(
    absl::string_view name, const StoredModel& stored,
    const std::vector<std::shared_ptr<Model>>& instances) {
  std::vector<std::shared_ptr<Model>> replacements;
  for (const std::shared_ptr<Model>& instance : instances) {
    absl::StatusOr<std::shared_ptr<Model>> replacement =
        LoadInstance(name, instance->device(), stored);
    if (!replacement.ok()) return OnDevice(replacement.status(), *instance);
    replacements.push_back(*std::move(replacement));
  }
  absl::MutexLock lock(&mu_);
  Entry& entry = models_[std::string(name)];
  for (std::shared_ptr<Model>& old : entry.instances) retirer_.Retire(std::move(old));
  entry.instances = std::move(replacements);
  entry.backbone_fingerprint = BackboneFingerprint(stored.config, ModelDir(name));
  return absl::OkStatus();
}

StoreSync ModelRegistry::SyncFromStore(absl::string_view name) {
  StoreSync sync;
  sync.model = std::string(name);
  if (!ValidateName("model", name).ok()) return sync;
  absl::MutexLock change_lock(&ChangeLock(name));
  const std::filesystem::path model_dir = ModelDir(name);
  const absl::StatusOr<std::string> fingerprint = StoreFingerprint(model_dir);
  Entry entry;
  bool known = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) {
      known = true;
      entry = it->second;
    }
  }
  if (!fingerprint.ok()) {  // the folder or its config is gone
    if (!known) return sync;
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    for (std::shared_ptr<Model>& old : it->second.instances) {
      retirer_.Retire(std::move(old));
    }
    models_.erase(it);
    sync.action = StoreSync::Action::kRemoved;
    return sync;
  }
  if (known && (*fingerprint == entry.applied_fingerprint ||
                *fingerprint == entry.refused_fingerprint)) {
    return sync;
  }

  absl::Status status;
  if (entry.instances.empty()) {
    status = LoadLocked(name, "").status();
    sync.action = StoreSync::Action::kLoaded;
  } else {
    absl::StatusOr<StoredModel> stored = ReadStoredModel(model_dir);
    if (!stored.ok()) {
      status = stored.status();
    } else if (BackboneFingerprint(stored->config, model_dir) !=
               entry.backbone_fingerprint) {
      status = ReloadInstances(name, *stored, entry.instances);
      sync.action = StoreSync::Action::kReloaded;
    } else {
      status = ApplyHeadChange(entry.instances, StoreHeads(*stored), nullptr).status();
      sync.action = StoreSync::Action::kHeadsChanged;
    }
  }
  if (status.ok()) {
    SetEntry(name, [&](Entry& updated) {
      updated.state = "READY";
      updated.error.clear();
      updated.applied_fingerprint = *fingerprint;
      updated.refused_fingerprint.clear();
    });
    return sync;
  }
  // A writer may have changed the entry while it was read (and removed files the
  // older entry named): that is not a refusal; the next poll sees the new entry.
  const absl::StatusOr<std::string> now = StoreFingerprint(model_dir);
  if (!now.ok() || *now != *fingerprint) {
    sync.action = StoreSync::Action::kNone;
    return sync;
  }
  sync.action = StoreSync::Action::kRefused;
  sync.message = std::string(status.message());
  SetEntry(name, [&](Entry& updated) {
    updated.error = sync.message;
    updated.refused_fingerprint = *fingerprint;
  });
  return sync;
}

}  // namespace headway
