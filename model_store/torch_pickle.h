// Reading what torch.save writes, without Python: the zip archive (PyTorch >= 1.6)
// holding data.pkl, a pickle, and data/<key>, the raw bytes of each tensor storage.
//
// LibTorch's own unpickler turns collections.OrderedDict into None and refuses BUILD,
// so it cannot read a state_dict as torch.save writes it. PickleReader here handles
// every opcode torch.save's pickler (protocols 2 to 4) emits and builds a plain value
// tree; it never runs code: classes it does not know become opaque objects. The pickle
// is untrusted: a value that contains itself, or values nested over 1000 deep, are
// refused, and whatever it built is freed (cycles broken, without recursion). Tensors are
// rebuilt from their storages (shared storages stay shared) on the requested device,
// whatever device they were saved from (map_location).
//
// Stateless functions; thread-safe.
#ifndef HEADWAY_MODEL_STORE_TORCH_PICKLE_H_
#define HEADWAY_MODEL_STORE_TORCH_PICKLE_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

struct PickleValue;
using PickleValuePtr = std::shared_ptr<PickleValue>;

// One unpickled value. Lists, dicts and objects are shared (pickle memoises them).
struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,  // str
    kBytes,
    kTuple,
    kList,
    kSet,
    kDict,  // dict and collections.OrderedDict, in insertion order
    kTensor,
    kGlobal,  // a class or function reference: `text` is "module.name"
    kObject,  // an instance of a class we do not rebuild: `text` is its class
  };

  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;                   // kString, kBytes, kGlobal, kObject
  std::vector<PickleValuePtr> items;  // kTuple, kList, kSet; kObject: its arguments
  std::vector<std::pair<PickleValuePtr, PickleValuePtr>> entries;  // kDict
  PickleValuePtr state;  // set by BUILD (an OrderedDict's _metadata, ...)
  at::Tensor tensor;     // kTensor

  // Frees what it holds without recursing, whatever the nesting.
  ~PickleValue();

  // The value under string key `key` of a dict, or nullptr.
  PickleValuePtr Find(absl::string_view key) const;
};

enum class ArchiveFormat {
  kUnknown,
  kTorchScript,      // torch.jit.save: zip with code/ and constants.pkl
  kTorchSave,        // torch.save, zip format
  kLegacyTorchSave,  // torch.save with _use_new_zipfile_serialization=False (< 1.6)
};

// Tells the formats apart from the bytes (zip records, pickle header).
ArchiveFormat DetectArchiveFormat(const std::string& bytes);

struct TorchSaveContents {
  PickleValuePtr root;
  // The devices the storages were saved from, as torch.save tagged them ("cpu",
  // "cuda:0", ...).
  std::set<std::string> saved_locations;
};

// Reads a torch.save zip archive, mapping every storage onto `device`.
// INVALID_ARGUMENT names what is wrong: not a zip, a legacy archive, a malformed
// pickle, a missing or short storage record, an unsupported storage type.
absl::StatusOr<TorchSaveContents> ReadTorchSave(const std::string& bytes,
                                                c10::Device device);

// The devices the tensor storages of the zip archive `bytes` (torch.save's or
// torch.jit.save's) were saved from, read from its data.pkl without reading the
// storages themselves.
absl::StatusOr<std::set<std::string>> ReadSavedLocations(const std::string& bytes);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_TORCH_PICKLE_H_
