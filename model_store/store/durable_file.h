// Durable, atomic writes into the model store, and the lock that serialises writers.
// A file is written to a temporary beside it, fsynced and renamed over the target, so
// readers (and a restart after a crash) see the old file or the new one, never a part;
// SyncFolder makes the renames in a folder durable. Failures are FAILED_PRECONDITION
// naming the path and the system's reason: a read-only or unwritable store is the
// operator's to fix, and retrying the same call cannot help.
//
// Stateless functions, thread-safe. StoreLock is an exclusive flock(2): it serialises
// writers across threads and processes (replicas on one host, or on a filesystem
// whose locks span hosts).
#ifndef HEADWAY_MODEL_STORE_STORE_DURABLE_FILE_H_
#define HEADWAY_MODEL_STORE_STORE_DURABLE_FILE_H_

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// The suffix of temporaries; a file ending in it is never part of the store's state.
inline constexpr char kTemporarySuffix[] = ".tmp";

// FAILED_PRECONDITION: "cannot <action> <path>: <strerror(error)>".
absl::Status StoreWriteError(absl::string_view action, const std::filesystem::path& path,
                             int error);

// Writes `contents` to `<path>.tmp` and fsyncs it; returns the temporary's path.
absl::StatusOr<std::filesystem::path> WriteTemporary(const std::filesystem::path& path,
                                                     absl::string_view contents);

// Renames `temporary` over `path` (removing the temporary when that fails).
absl::Status ReplaceWith(const std::filesystem::path& temporary,
                         const std::filesystem::path& path);

// WriteTemporary, then ReplaceWith. The caller syncs the folder (SyncFolder) once all
// its renames are done.
absl::Status WriteFileDurably(const std::filesystem::path& path,
                              absl::string_view contents);

// fsync of a folder: makes the creation, renaming and removal of its entries durable.
absl::Status SyncFolder(const std::filesystem::path& folder);

// Creates `folder` (not its parents) when missing and syncs its parent.
absl::Status CreateFolderDurably(const std::filesystem::path& folder);

class StoreLock {
 public:
  // Blocks until this process holds the exclusive lock on `lock_file` (created when
  // missing).
  static absl::StatusOr<StoreLock> Acquire(const std::filesystem::path& lock_file);
  // Takes the lock only when nobody holds it; UNAVAILABLE when another holds it.
  static absl::StatusOr<StoreLock> TryAcquire(const std::filesystem::path& lock_file);

  StoreLock(StoreLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StoreLock& operator=(StoreLock&&) = delete;
  StoreLock(const StoreLock&) = delete;
  ~StoreLock();

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  static absl::StatusOr<StoreLock> Lock(const std::filesystem::path& lock_file,
                                        bool wait);
  int fd_;
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_DURABLE_FILE_H_
