// Persisted head changes: what HotSwapHead and RemoveHead with `persist` write into a
// model's folder, and how the store's head table is read back from it.
//
// Layout (config.pbtxt is the user's and is never written):
//   <model>/persisted/heads.pbtxt            headway.v1.PersistedHeads: the changes
//   <model>/persisted/<head>-<digest>.pt     a head's checkpoint, named by content
//   <model>/persisted/<head>-<digest>.labels its labels
//   <model>/persisted/lock                   serialises writers (flock)
// Content files are never overwritten (a new content is a new name), so no head ever
// sees another's bytes change under it. A change is committed by one rename, of
// heads.pbtxt, after every file it names is written and synced; files no longer named
// are removed after that. A crash at any moment leaves the old table or the new one;
// the temporaries and unnamed files it may leave are removed by the next writer or by
// CleanPersistedFolder.
//
// Thread-safe: writers serialise on the lock, readers see heads.pbtxt whole.
#ifndef HEADWAY_MODEL_STORE_STORE_PERSISTED_HEADS_H_
#define HEADWAY_MODEL_STORE_STORE_PERSISTED_HEADS_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "headway/v1/model_config.pb.h"
#include "model_store/store/durable_file.h"

namespace headway {

inline constexpr char kPersistedFolderName[] = "persisted";
inline constexpr char kPersistedHeadsFileName[] = "heads.pbtxt";

// <model_dir>/persisted/heads.pbtxt as text; empty when the model has none.
absl::StatusOr<std::string> ReadPersistedHeadsText(
    const std::filesystem::path& model_dir);

// Parses heads.pbtxt's text (empty text: no changes).
absl::StatusOr<v1::PersistedHeads> ParsePersistedHeads(absl::string_view text);

// Applies `persisted` to `config`'s heads: removed ones go, persisted ones replace
// those of their name or are appended. Returns each resulting head's store version (1
// for a head config.pbtxt names and no change touched).
std::map<std::string, int64_t, std::less<>> ApplyPersistedHeads(
    const v1::PersistedHeads& persisted, v1::ModelConfig& config);

// A head's content, read and checked (loaded) by the caller, to be persisted.
struct HeadContent {
  std::string name;
  std::string checkpoint;
  std::vector<std::string> labels;  // empty: no labels file
  std::string key_prefix;
  int64_t version = 1;
  std::string digest;  // HeadDigest of the above
  std::string source;  // where it came from (HeadConfig.source); not in the digest
};

// Called after each step of a write with its name; a test seam (it may stop the
// process there to show that every crash point leaves a consistent store).
using StoreStepHook = std::function<void(absl::string_view step)>;

// One change to a model's persisted heads, under the model's store lock from Begin to
// destruction (other writers, in this process or another, wait).
class PersistedHeadsTransaction {
 public:
  // Takes the lock (creating persisted/ when missing) and reads the current changes.
  // FAILED_PRECONDITION, naming the path, when the store cannot be written.
  static absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>> Begin(
      const std::filesystem::path& model_dir, StoreStepHook after_step = nullptr);

  // The version heads.pbtxt gives `head`; 0 when it names none.
  int64_t StoredVersion(absl::string_view head) const;

  // Writes `head`'s files, then commits a heads.pbtxt that adds or replaces it.
  absl::Status CommitSwap(const HeadContent& head);
  // Commits a heads.pbtxt without `head`; `in_config` says config.pbtxt names it (so it
  // is recorded as removed).
  absl::Status CommitRemoval(absl::string_view head, bool in_config);

  // The text of heads.pbtxt after a commit (before: as read by Begin).
  const std::string& text() const { return text_; }

 private:
  PersistedHeadsTransaction(std::filesystem::path model_dir, StoreLock lock,
                            StoreStepHook after_step);
  absl::Status WriteContentFile(const std::string& name, absl::string_view contents,
                                absl::string_view step);
  absl::Status Commit(v1::PersistedHeads next);
  void Step(absl::string_view name) const;

  const std::filesystem::path model_dir_;
  const std::filesystem::path folder_;
  StoreLock lock_;
  const StoreStepHook after_step_;
  v1::PersistedHeads current_;
  std::string text_;
};

// Removes temporaries and files heads.pbtxt does not name from <model_dir>/persisted,
// when no writer holds the lock. Returns the files removed; does nothing (OK) where
// the store cannot be written or another writer is busy.
std::vector<std::string> CleanPersistedFolder(const std::filesystem::path& model_dir);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_PERSISTED_HEADS_H_
