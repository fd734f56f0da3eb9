// Checkpoints as PyTorch users save them, read onto a chosen device:
// - TorchScript archives (torch.jit.save of traced or scripted modules);
// - weights-only state_dicts (torch.save(model.state_dict(), path)), including those
//   saved from nn.DataParallel (keys prefixed "module.");
// - training checkpoints: a dict holding the weights under 'model_state_dict',
//   'state_dict', 'model', ... beside optimizer state (ignored), 'epoch' and labels
//   ('class_to_idx', 'labels' or 'classes').
// Every tensor lands on the requested device whatever device it was saved from
// (map_location), and state_dicts load into a TorchScript architecture strictly or
// partly, with a report of the missing, unexpected and shape-mismatched keys.
//
// Thread-safe functions. Their one piece of state is the digests of the TorchScript
// archives that have loaded in this process, which are not probed again (below).
#ifndef HEADWAY_MODEL_STORE_CHECKPOINT_H_
#define HEADWAY_MODEL_STORE_CHECKPOINT_H_

#include <torch/script.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "model_store/torch_pickle.h"

namespace headway {

// Parameter and buffer names to tensors, in saved order.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

struct Checkpoint {
  enum class Contents { kTorchScriptModule, kStateDict, kTrainingCheckpoint };

  Contents contents = Contents::kStateDict;
  std::optional<torch::jit::Module> module;  // kTorchScriptModule
  StateDict state_dict;                      // kStateDict, kTrainingCheckpoint
  // kTrainingCheckpoint: the key holding the weights, the epoch, the labels.
  std::string weights_key;
  std::optional<int64_t> epoch;
  std::vector<std::string> labels;
  // Where torch.save's storages came from ("cpu", "cuda:0", ...).
  std::set<std::string> saved_locations;
};

// Held shared around every run of a TorchScript module's code (forward passes,
// freezing, optimizing), and exclusively while a load's probe forks: a child forked
// while another thread holds one of LibTorch's JIT locks (its operator registry's,
// which running a graph takes) would wait for it forever. Not re-entrant: a holder
// must not take it again, nor load a TorchScript archive.
absl::Mutex& TorchScriptForkGate();

// How many TorchScript archives this process has probed in a forked child before
// loading them. An archive is probed until it has loaded once (its content digest is
// remembered, the most recent 256), so this counts forks, for tests and benchmarks.
int64_t TorchScriptProbesRun();

// "TorchScript module", "state_dict" or "training checkpoint".
const char* ContentsName(Checkpoint::Contents contents);

// Reads a checkpoint of any supported kind onto `device`. INVALID_ARGUMENT, naming the
// problem, for anything else (a legacy archive, a pickled nn.Module, no weights).
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& bytes, c10::Device device);

enum class LoadMode {
  // Every parameter and buffer must be present with the right shape, and every key used.
  kStrict,
  // Load the keys whose names and shapes match; report the rest.
  kPartial,
};

struct StateDictOptions {
  LoadMode mode = LoadMode::kStrict;
  // Only keys under this prefix, with the prefix removed ("fc." for a ResNet's head).
  std::string key_prefix;
  // Keys under these prefixes belong elsewhere (the head's) and are not unexpected.
  std::vector<std::string> ignore_prefixes;
};

struct StateDictReport {
  int64_t loaded = 0;
  std::vector<std::string> missing;     // in the module, not in the state_dict
  std::vector<std::string> unexpected;  // in the state_dict, not in the module
  std::vector<std::string> mismatched;  // "name: saved [a, b] vs module [c, d]"

  bool complete() const {
    return missing.empty() && unexpected.empty() && mismatched.empty();
  }
  // "loaded N tensors; missing: ...; unexpected: ...; shape mismatch: ..." (lists cut
  // after a few names).
  std::string Summary() const;
};

// The keys under `prefix`, prefix removed; the "module." that nn.DataParallel adds is
// removed first.
StateDict SelectKeys(const StateDict& state_dict, absl::string_view prefix);

// Copies `state_dict` into the parameters and buffers of `module` (on its device).
// Strict mode fails with INVALID_ARGUMENT listing every problem and changes nothing.
absl::StatusOr<StateDictReport> LoadStateDict(torch::jit::Module& module,
                                              const StateDict& state_dict,
                                              const StateDictOptions& options);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_CHECKPOINT_H_
