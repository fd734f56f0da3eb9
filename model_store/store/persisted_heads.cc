#include "model_store/store/persisted_heads.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <set>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/model_config.h"
#include "model_store/status_macros.h"
#include "model_store/store/content_digest.h"
#include "model_store/store/model_files.h"

namespace headway {
namespace {

constexpr char kLockFileName[] = "lock";
constexpr int kDigestCharsInFileNames = 16;

std::filesystem::path PersistedFolder(const std::filesystem::path& model_dir) {
  return model_dir / kPersistedFolderName;
}

// The files of persisted/ that `persisted` names, by file name.
std::set<std::string> NamedFiles(const v1::PersistedHeads& persisted) {
  std::set<std::string> names = {kPersistedHeadsFileName, kLockFileName};
  for (const v1::PersistedHead& head : persisted.heads()) {
    for (const std::string& file : {head.head().file(), head.head().labels_file()}) {
      if (!file.empty()) names.insert(std::filesystem::path(file).filename().string());
    }
  }
  return names;
}

// Removes what `persisted` does not name from `folder`; returns the removed names.
std::vector<std::string> RemoveUnnamedFiles(const std::filesystem::path& folder,
                                            const v1::PersistedHeads& persisted) {
  const std::set<std::string> named = NamedFiles(persisted);
  std::vector<std::string> removed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    const std::string name = entry.path().filename().string();
    if (named.count(name) > 0 || !entry.is_regular_file(error)) continue;
    if (std::filesystem::remove(entry.path(), error)) removed.push_back(name);
  }
  return removed;
}

std::string PrintPersistedHeads(const v1::PersistedHeads& persisted) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(persisted, &text);
  return absl::StrCat(
      "# Written by Headway: the persisted head changes of this model (see the "
      "README,\n# Model store). Edit config.pbtxt instead; this file is replaced "
      "whole.\n",
      text);
}

}  // namespace

absl::StatusOr<std::string> ReadPersistedHeadsText(
    const std::filesystem::path& model_dir) {
  const std::filesystem::path path = PersistedFolder(model_dir) / kPersistedHeadsFileName;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return std::string();
  return ReadFileToString(path);
}

absl::StatusOr<v1::PersistedHeads> ParsePersistedHeads(absl::string_view text) {
  v1::PersistedHeads persisted;
  HEADWAY_RETURN_IF_ERROR(ParseTextFormat(text, "persisted heads", persisted));
  return persisted;
}

std::map<std::string, int64_t, std::less<>> ApplyPersistedHeads(
    const v1::PersistedHeads& persisted, v1::ModelConfig& config) {
  std::map<std::string, const v1::PersistedHead*> changed;
  for (const v1::PersistedHead& head : persisted.heads()) {
    changed[head.head().name()] = &head;
  }
  const std::set<std::string> removed(persisted.removed().begin(),
                                      persisted.removed().end());
  std::map<std::string, int64_t, std::less<>> versions;
  google::protobuf::RepeatedPtrField<v1::HeadConfig> heads;
  for (const v1::HeadConfig& head : config.heads()) {
    if (removed.count(head.name()) > 0) continue;
    auto it = changed.find(head.name());
    if (it == changed.end()) {
      *heads.Add() = head;
      versions[head.name()] = 1;
    } else {
      *heads.Add() = it->second->head();
      versions[head.name()] = it->second->version();
      changed.erase(it);
    }
  }
  for (const v1::PersistedHead& head : persisted.heads()) {
    if (changed.count(head.head().name()) == 0) continue;  // replaced one above
    *heads.Add() = head.head();
    versions[head.head().name()] = head.version();
  }
  *config.mutable_heads() = std::move(heads);
  return versions;
}

PersistedHeadsTransaction::PersistedHeadsTransaction(std::filesystem::path model_dir,
                                                     StoreLock lock,
                                                     StoreStepHook after_step)
    : model_dir_(std::move(model_dir)),
      folder_(PersistedFolder(model_dir_)),
      lock_(std::move(lock)),
      after_step_(std::move(after_step)) {}

absl::StatusOr<std::unique_ptr<PersistedHeadsTransaction>>
PersistedHeadsTransaction::Begin(const std::filesystem::path& model_dir,
                                 StoreStepHook after_step) {
  const std::filesystem::path folder = PersistedFolder(model_dir);
  HEADWAY_RETURN_IF_ERROR(CreateFolderDurably(folder));
  HEADWAY_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Acquire(folder / kLockFileName));
  std::unique_ptr<PersistedHeadsTransaction> transaction(
      new PersistedHeadsTransaction(model_dir, std::move(lock), std::move(after_step)));
  transaction->Step("locked");
  HEADWAY_ASSIGN_OR_RETURN(transaction->text_, ReadPersistedHeadsText(model_dir));
  absl::StatusOr<v1::PersistedHeads> current = ParsePersistedHeads(transaction->text_);
  if (!current.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        folder.string(), "/", kPersistedHeadsFileName, ": ", current.status().message()));
  }
  transaction->current_ = *std::move(current);
  // What an earlier writer left when it stopped midway.
  RemoveUnnamedFiles(folder, transaction->current_);
  return transaction;
}

void PersistedHeadsTransaction::Step(absl::string_view name) const {
  if (after_step_) after_step_(name);
}

int64_t PersistedHeadsTransaction::StoredVersion(absl::string_view head) const {
  for (const v1::PersistedHead& persisted : current_.heads()) {
    if (persisted.head().name() == head) return persisted.version();
  }
  return 0;
}

absl::Status PersistedHeadsTransaction::WriteContentFile(const std::string& name,
                                                         absl::string_view contents,
                                                         absl::string_view step) {
  const std::filesystem::path path = folder_ / name;
  std::error_code error;
  // Named by content: a file that exists already holds these bytes.
  if (std::filesystem::exists(path, error)) return absl::OkStatus();
  HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path temporary,
                           WriteTemporary(path, contents));
  Step(absl::StrCat(step, " written"));
  HEADWAY_RETURN_IF_ERROR(ReplaceWith(temporary, path));
  Step(absl::StrCat(step, " renamed"));
  return absl::OkStatus();
}

absl::Status PersistedHeadsTransaction::CommitSwap(const HeadContent& head) {
  const std::string stem =
      absl::StrCat(head.name, "-", head.digest.substr(0, kDigestCharsInFileNames));
  v1::PersistedHead entry;
  entry.set_version(head.version);
  entry.set_digest(head.digest);
  v1::HeadConfig& config = *entry.mutable_head();
  config.set_name(head.name);
  config.set_key_prefix(head.key_prefix);
  config.set_source(head.source);
  config.set_file(absl::StrCat(kPersistedFolderName, "/", stem, ".pt"));
  HEADWAY_RETURN_IF_ERROR(
      WriteContentFile(absl::StrCat(stem, ".pt"), head.checkpoint, "checkpoint"));
  if (!head.labels.empty()) {
    config.set_labels_file(absl::StrCat(kPersistedFolderName, "/", stem, ".labels"));
    HEADWAY_RETURN_IF_ERROR(
        WriteContentFile(absl::StrCat(stem, ".labels"),
                         absl::StrCat(absl::StrJoin(head.labels, "\n"), "\n"), "labels"));
  }
  HEADWAY_RETURN_IF_ERROR(SyncFolder(folder_));
  Step("content synced");

  v1::PersistedHeads next = current_;
  auto* heads = next.mutable_heads();
  auto same = std::find_if(heads->begin(), heads->end(), [&](const auto& persisted) {
    return persisted.head().name() == head.name;
  });
  if (same != heads->end()) {
    *same = entry;
  } else {
    *next.add_heads() = entry;
  }
  auto* removed = next.mutable_removed();
  removed->erase(std::remove(removed->begin(), removed->end(), head.name),
                 removed->end());
  return Commit(std::move(next));
}

absl::Status PersistedHeadsTransaction::CommitRemoval(absl::string_view head,
                                                      bool in_config) {
  v1::PersistedHeads next = current_;
  auto* heads = next.mutable_heads();
  heads->erase(std::remove_if(heads->begin(), heads->end(),
                              [&](const auto& persisted) {
                                return persisted.head().name() == head;
                              }),
               heads->end());
  if (in_config && std::find(next.removed().begin(), next.removed().end(), head) ==
                       next.removed().end()) {
    next.add_removed(std::string(head));
  }
  return Commit(std::move(next));
}

absl::Status PersistedHeadsTransaction::Commit(v1::PersistedHeads next) {
  next.set_generation(current_.generation() + 1);
  const std::string text = PrintPersistedHeads(next);
  const std::filesystem::path path = folder_ / kPersistedHeadsFileName;
  HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path temporary,
                           WriteTemporary(path, text));
  Step("heads.pbtxt written");
  HEADWAY_RETURN_IF_ERROR(ReplaceWith(temporary, path));  // the commit
  Step("heads.pbtxt renamed");
  HEADWAY_RETURN_IF_ERROR(SyncFolder(folder_));
  Step("committed");
  current_ = std::move(next);
  text_ = text;
  RemoveUnnamedFiles(folder_, current_);
  Step("unnamed files removed");
  return absl::OkStatus();
}

std::vector<std::string> CleanPersistedFolder(const std::filesystem::path& model_dir) {
  const std::filesystem::path folder = PersistedFolder(model_dir);
  std::error_code error;
  if (!std::filesystem::is_directory(folder, error)) return {};
  absl::StatusOr<StoreLock> lock = StoreLock::TryAcquire(folder / kLockFileName);
  if (!lock.ok()) return {};
  absl::StatusOr<std::string> text = ReadPersistedHeadsText(model_dir);
  if (!text.ok()) return {};
  absl::StatusOr<v1::PersistedHeads> persisted = ParsePersistedHeads(*text);
  if (!persisted.ok()) return {};
  return RemoveUnnamedFiles(folder, *persisted);
}

}  // namespace headway
