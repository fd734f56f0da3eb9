#include "model_store/checkpoint.h"

#include <ATen/Parallel.h>
#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "model_store/status_macros.h"
#include "model_store/store/content_digest.h"
#include "model_store/torch_errors.h"

namespace headway {
namespace {

using Kind = PickleValue::Kind;

constexpr const char* kWeightsKeys[] = {"model_state_dict", "state_dict", "model",
                                        "model_state",      "net",        "weights"};

// A dict whose keys are strings and values tensors, as a StateDict.
std::optional<StateDict> AsStateDict(const PickleValuePtr& value) {
  if (value == nullptr || value->kind != Kind::kDict || value->entries.empty()) {
    return std::nullopt;
  }
  StateDict state_dict;
  for (const auto& [key, tensor] : value->entries) {
    if (key->kind != Kind::kString || tensor->kind != Kind::kTensor) return std::nullopt;
    state_dict.emplace_back(key->text, tensor->tensor);
  }
  return state_dict;
}

bool IsPickledModule(const PickleValuePtr& value) {
  return value != nullptr && value->kind == Kind::kObject;
}

// Labels from 'class_to_idx' ({name: index}) or a list under 'labels' / 'classes'.
absl::StatusOr<std::vector<std::string>> LabelsOf(const PickleValue& root) {
  std::vector<std::string> labels;
  if (const PickleValuePtr class_to_idx = root.Find("class_to_idx");
      class_to_idx != nullptr && class_to_idx->kind == Kind::kDict) {
    std::map<int64_t, std::string> by_index;
    for (const auto& [name, index] : class_to_idx->entries) {
      if (name->kind != Kind::kString || index->kind != Kind::kInt) {
        return absl::InvalidArgumentError("class_to_idx must map names to integers");
      }
      by_index[index->integer] = name->text;
    }
    int64_t expected = 0;
    for (auto& [index, name] : by_index) {
      if (index != expected++) {
        return absl::InvalidArgumentError("class_to_idx indices must be 0..N-1");
      }
      labels.push_back(std::move(name));
    }
    return labels;
  }
  for (const char* key : {"labels", "classes", "class_names"}) {
    const PickleValuePtr list = root.Find(key);
    if (list == nullptr || (list->kind != Kind::kList && list->kind != Kind::kTuple))
      continue;
    for (const PickleValuePtr& item : list->items) {
      if (item->kind != Kind::kString) {
        return absl::InvalidArgumentError(absl::StrCat("'", key, "' must hold strings"));
      }
      labels.push_back(item->text);
    }
    return labels;
  }
  return labels;
}

absl::StatusOr<Checkpoint> FromTorchSave(TorchSaveContents contents) {
  Checkpoint checkpoint;
  checkpoint.saved_locations = std::move(contents.saved_locations);
  const PickleValuePtr& root = contents.root;
  if (IsPickledModule(root)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the checkpoint is a pickled ", root->text,
        " object (torch.save(model)); save model.state_dict() or use torch.jit.save"));
  }
  if (std::optional<StateDict> state_dict = AsStateDict(root)) {
    checkpoint.contents = Checkpoint::Contents::kStateDict;
    checkpoint.state_dict = *std::move(state_dict);
    return checkpoint;
  }
  if (root->kind != Kind::kDict) {
    return absl::InvalidArgumentError("the checkpoint holds no dict of weights");
  }
  for (const char* key : kWeightsKeys) {
    const PickleValuePtr weights = root->Find(key);
    if (weights == nullptr) continue;
    if (IsPickledModule(weights)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint's '", key, "' is a pickled ", weights->text,
                       " object; save model.state_dict() under it instead"));
    }
    std::optional<StateDict> state_dict = AsStateDict(weights);
    if (!state_dict) continue;
    checkpoint.contents = Checkpoint::Contents::kTrainingCheckpoint;
    checkpoint.state_dict = *std::move(state_dict);
    checkpoint.weights_key = key;
    if (const PickleValuePtr epoch = root->Find("epoch");
        epoch != nullptr && epoch->kind == Kind::kInt) {
      checkpoint.epoch = epoch->integer;
    }
    HEADWAY_ASSIGN_OR_RETURN(checkpoint.labels, LabelsOf(*root));
    return checkpoint;
  }
  std::vector<std::string> keys;
  for (const auto& [key, value] : root->entries) {
    if (key->kind == Kind::kString) keys.push_back(key->text);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the checkpoint holds no state_dict: expected a dict of tensors, or one under ",
      absl::StrJoin(kWeightsKeys, ", "), "; its keys: ", absl::StrJoin(keys, ", ")));
}

std::string ShapeOf(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

std::string Listed(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::vector<std::string> shown(names.begin(),
                                 names.begin() + std::min(kShown, names.size()));
  return absl::StrCat(
      absl::StrJoin(shown, ", "),
      names.size() > kShown ? absl::StrCat(" and ", names.size() - kShown, " more") : "");
}

// How long a probe may take before it is given up (its archive then loads unprobed):
// long enough for a large backbone, short enough that a child stuck on a lock that
// some thread held at the fork costs a swap seconds, not its client's deadline.
constexpr absl::Duration kProbeTimeout = absl::Seconds(10);

}  // namespace

absl::Mutex& TorchScriptForkGate() {
  static absl::Mutex* gate = new absl::Mutex();
  return *gate;
}

namespace {

// Serialises TorchScript loads: a probe forks while no other thread is inside
// LibTorch's loader (whose locks the child would find held forever).
absl::Mutex& TorchScriptLoadMutex() {
  static absl::Mutex* mutex = new absl::Mutex();
  return *mutex;
}

// The archives that have loaded in this process, by content digest: a probe proves an
// archive once, and loading the same bytes again (a model unloaded and loaded back,
// a reload whose backbone did not change) costs no fork. The most recent kRemembered
// digests; guarded by TorchScriptLoadMutex.
class ProvenArchives {
 public:
  bool Contains(const std::string& digest) const {
    return std::find(digests_.begin(), digests_.end(), digest) != digests_.end();
  }

  void Add(const std::string& digest) {
    if (Contains(digest)) return;
    digests_.push_back(digest);
    if (digests_.size() > kRemembered) digests_.pop_front();
  }

 private:
  static constexpr size_t kRemembered = 256;
  std::deque<std::string> digests_;  // oldest first; a load looks through 256 at most
};

ProvenArchives& ProvenTorchScriptArchives() {
  static ProvenArchives* proven = new ProvenArchives();
  return *proven;
}

std::atomic<int64_t> torch_script_probes{0};

// LibTorch 1.13's TorchScript parser dies of SIGSEGV on some malformed archives
// (found by fuzz_checkpoint: a class body whose `__buffers__` is misspelt, once a
// module with the same class names was loaded), which no exception handler can
// catch. So an archive is loaded first in a forked child, on the CPU, with one
// thread; a child that does not exit normally refuses the archive here, and anything
// else (success, an exception, a probe that could not run or took too long) lets the
// load proceed in this process, where exceptions become errors as usual. An archive
// that has loaded here before is not probed again (ProvenArchives): the crash is a
// malformed archive's, and those bytes parsed.
absl::Status ProbeTorchScriptLoad(const std::string& bytes) {
  // No other thread runs TorchScript code while the process forks. The child never
  // touches the gate (its waiters are threads it does not have): only the parent
  // unlocks it.
  torch_script_probes.fetch_add(1, std::memory_order_relaxed);
  TorchScriptForkGate().WriterLock();
  const pid_t child = fork();
  if (child != 0) TorchScriptForkGate().WriterUnlock();
  if (child < 0) return absl::OkStatus();
  if (child == 0) {
    // A crash ends the child quietly, whatever handlers the process installed (a
    // sanitizer's, a fuzzer's): the parent reads the signal from its status.
    for (int crash : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(crash, SIG_DFL);
    // One thread, set in OpenMP alone: at::set_num_threads takes LibTorch locks that
    // another thread may have held at the fork.
    omp_set_num_threads(1);
    try {
      std::istringstream archive(bytes);
      torch::jit::load(archive, c10::Device(c10::kCPU));
    } catch (...) {
    }
    _exit(0);
  }
  const absl::Time deadline = absl::Now() + kProbeTimeout;
  absl::Duration pause = absl::Microseconds(200);
  int status = 0;
  pid_t waited = 0;
  while ((waited = waitpid(child, &status, WNOHANG)) == 0 ||
         (waited < 0 && errno == EINTR)) {
    if (absl::Now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return absl::OkStatus();
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
  // The child exits 0 whether the archive loaded or threw; anything else (a signal,
  // or a sanitizer's exit code for one) is the loader dying.
  if (waited == child && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
    const std::string how = WIFSIGNALED(status)
                                ? std::string(strsignal(WTERMSIG(status)))
                                : absl::StrCat("exit status ", WEXITSTATUS(status));
    return absl::InvalidArgumentError(
        absl::StrCat("the TorchScript archive is malformed: LibTorch's loader crashed on "
                     "it (",
                     how, ", in a probe process); refused"));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t TorchScriptProbesRun() {
  return torch_script_probes.load(std::memory_order_relaxed);
}

const char* ContentsName(Checkpoint::Contents contents) {
  switch (contents) {
    case Checkpoint::Contents::kTorchScriptModule:
      return "TorchScript module";
    case Checkpoint::Contents::kStateDict:
      return "state_dict";
    case Checkpoint::Contents::kTrainingCheckpoint:
      return "training checkpoint";
  }
  return "checkpoint";
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& bytes, c10::Device device) {
  switch (DetectArchiveFormat(bytes)) {
    case ArchiveFormat::kTorchScript: {
      Checkpoint checkpoint;
      checkpoint.contents = Checkpoint::Contents::kTorchScriptModule;
      absl::MutexLock one_load(&TorchScriptLoadMutex());
      const std::string digest = ContentDigest({bytes});
      const bool proven = ProvenTorchScriptArchives().Contains(digest);
      if (!proven) HEADWAY_RETURN_IF_ERROR(ProbeTorchScriptLoad(bytes));
      HEADWAY_ASSIGN_OR_RETURN(
          checkpoint.module,
          CallTorch("loading TorchScript archive", absl::StatusCode::kInvalidArgument,
                    [&] {
                      std::istringstream archive(bytes);
                      torch::jit::Module module = torch::jit::load(archive, device);
                      module.eval();
                      return std::optional<torch::jit::Module>(std::move(module));
                    }));
      if (!proven) ProvenTorchScriptArchives().Add(digest);
      // Where its weights were saved from, for ListModels (map_location reports);
      // an archive whose pickle this reader does not follow just reports none.
      checkpoint.saved_locations =
          ReadSavedLocations(bytes).value_or(std::set<std::string>());
      return checkpoint;
    }
    case ArchiveFormat::kTorchSave:
    case ArchiveFormat::kLegacyTorchSave: {
      HEADWAY_ASSIGN_OR_RETURN(TorchSaveContents contents, ReadTorchSave(bytes, device));
      return FromTorchSave(std::move(contents));
    }
    case ArchiveFormat::kUnknown:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "not a checkpoint (", bytes.size(),
      " bytes): expected a torch.jit.save archive or a torch.save zip archive"));
}

std::string StateDictReport::Summary() const {
  std::string summary = absl::StrCat("loaded ", loaded, " tensors");
  if (!missing.empty()) absl::StrAppend(&summary, "; missing: ", Listed(missing));
  if (!unexpected.empty())
    absl::StrAppend(&summary, "; unexpected: ", Listed(unexpected));
  if (!mismatched.empty())
    absl::StrAppend(&summary, "; shape mismatch: ", Listed(mismatched));
  return summary;
}

StateDict SelectKeys(const StateDict& state_dict, absl::string_view prefix) {
  bool all_data_parallel = !state_dict.empty();
  for (const auto& [name, tensor] : state_dict) {
    all_data_parallel = all_data_parallel && absl::StartsWith(name, "module.");
  }
  // A DataParallel state_dict's "module." goes, unless the prefix names it itself
  // (both "fc." and "module.fc." select a DataParallel model's head).
  const bool strip = all_data_parallel && !absl::StartsWith(prefix, "module.");
  StateDict selected;
  for (const auto& [name, tensor] : state_dict) {
    absl::string_view key = name;
    if (strip) absl::ConsumePrefix(&key, "module.");
    if (absl::ConsumePrefix(&key, prefix))
      selected.emplace_back(std::string(key), tensor);
  }
  return selected;
}

absl::StatusOr<StateDictReport> LoadStateDict(torch::jit::Module& module,
                                              const StateDict& state_dict,
                                              const StateDictOptions& options) {
  const StateDict selected = SelectKeys(state_dict, options.key_prefix);
  std::map<std::string, at::Tensor> targets;
  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
    targets.emplace(parameter.name, parameter.value);
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) {
    targets.emplace(buffer.name, buffer.value);
  }

  StateDictReport report;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (target, source)
  std::set<std::string> seen;
  for (const auto& [name, source] : selected) {
    auto it = targets.find(name);
    if (it == targets.end()) {
      // "module.fc." ignores a DataParallel model's fc. as "fc." does.
      const bool ignored = std::any_of(
          options.ignore_prefixes.begin(), options.ignore_prefixes.end(),
          [&key = name](absl::string_view p) {
            return absl::StartsWith(key, p) ||
                   (absl::ConsumePrefix(&p, "module.") && absl::StartsWith(key, p));
          });
      if (!ignored) report.unexpected.push_back(name);
      continue;
    }
    seen.insert(name);
    if (it->second.sizes() != source.sizes()) {
      report.mismatched.push_back(absl::StrCat(name, ": saved ", ShapeOf(source),
                                               " vs module ", ShapeOf(it->second)));
      continue;
    }
    copies.emplace_back(it->second, source);
  }
  for (const auto& [name, target] : targets) {
    if (seen.count(name) == 0) report.missing.push_back(name);
  }
  if (options.mode == LoadMode::kStrict && !report.complete()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "state_dict does not match the architecture (strict load): ", report.Summary()));
  }
  HEADWAY_RETURN_IF_ERROR(
      CallTorch("copying state_dict", absl::StatusCode::kInvalidArgument, [&] {
        torch::NoGradGuard no_grad;
        for (auto& [target, source] : copies) target.copy_(source);
      }));
  report.loaded = static_cast<int64_t>(copies.size());
  return report;
}

}  // namespace headway
