// The files of a model's folder, as configs and requests name them: paths that stay
// inside the folder (symbolic links included), and whole-file reads. Thread-safe.
#ifndef HEADWAY_MODEL_STORE_STORE_MODEL_FILES_H_
#define HEADWAY_MODEL_STORE_STORE_MODEL_FILES_H_

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// Refuses empty, absolute and `..` paths with INVALID_ARGUMENT: a file named by a
// config or a request is relative to its model's folder and stays inside it.
absl::Status ValidateRelativePath(absl::string_view relative);

// Resolves `relative` (from a config or a request) inside `model_dir`: checks it with
// ValidateRelativePath, then follows symbolic links and refuses, PERMISSION_DENIED, a
// path that leads outside the folder. No name reaches outside the model's folder.
absl::StatusOr<std::filesystem::path> ResolveModelFile(
    const std::filesystem::path& model_dir, absl::string_view relative);

// Reads a whole file; NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_MODEL_FILES_H_
