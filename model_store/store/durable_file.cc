#include "model_store/store/durable_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace headway {
namespace {

// Writes all of `contents` to `fd`, retrying short writes and interrupts.
bool WriteAll(int fd, absl::string_view contents) {
  while (!contents.empty()) {
    const ssize_t written = write(fd, contents.data(), contents.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    contents.remove_prefix(static_cast<size_t>(written));
  }
  return true;
}

}  // namespace

absl::Status StoreWriteError(absl::string_view action, const std::filesystem::path& path,
                             int error) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", action, " ", path.string(), ": ", std::strerror(error)));
}

absl::StatusOr<std::filesystem::path> WriteTemporary(const std::filesystem::path& path,
                                                     absl::string_view contents) {
  const std::filesystem::path temporary = path.string() + kTemporarySuffix;
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return StoreWriteError("write", temporary, errno);
  const bool written = WriteAll(fd, contents) && fsync(fd) == 0;
  const int write_error = errno;
  close(fd);
  if (!written) {
    unlink(temporary.c_str());
    return StoreWriteError("write", temporary, write_error);
  }
  return temporary;
}

absl::Status ReplaceWith(const std::filesystem::path& temporary,
                         const std::filesystem::path& path) {
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    unlink(temporary.c_str());
    return StoreWriteError("replace", path, error);
  }
  return absl::OkStatus();
}

absl::Status WriteFileDurably(const std::filesystem::path& path,
                              absl::string_view contents) {
  absl::StatusOr<std::filesystem::path> temporary = WriteTemporary(path, contents);
  if (!temporary.ok()) return temporary.status();
  return ReplaceWith(*temporary, path);
}

absl::Status SyncFolder(const std::filesystem::path& folder) {
  const int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return StoreWriteError("open", folder, errno);
  const bool synced = fsync(fd) == 0;
  const int error = errno;
  close(fd);
  if (!synced) return StoreWriteError("sync", folder, error);
  return absl::OkStatus();
}

absl::Status CreateFolderDurably(const std::filesystem::path& folder) {
  if (mkdir(folder.c_str(), 0755) == 0) return SyncFolder(folder.parent_path());
  if (errno == EEXIST) return absl::OkStatus();
  return StoreWriteError("create", folder, errno);
}

absl::StatusOr<StoreLock> StoreLock::Lock(const std::filesystem::path& lock_file,
                                          bool wait) {
  const int fd = open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return StoreWriteError("create the lock", lock_file, errno);
  int locked;
  do {
    locked = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) {
    const int error = errno;
    close(fd);
    if (error == EWOULDBLOCK) {
      return absl::UnavailableError(
          absl::StrCat(lock_file.string(), " is held by another writer"));
    }
    return StoreWriteError("lock", lock_file, error);
  }
  return StoreLock(fd);
}

absl::StatusOr<StoreLock> StoreLock::Acquire(const std::filesystem::path& lock_file) {
  return Lock(lock_file, /*wait=*/true);
}

absl::StatusOr<StoreLock> StoreLock::TryAcquire(const std::filesystem::path& lock_file) {
  return Lock(lock_file, /*wait=*/false);
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace headway
