#include "model_store/store/model_files.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "model_store/status_macros.h"

namespace headway {

absl::Status ValidateRelativePath(absl::string_view relative) {
  if (relative.empty()) return absl::InvalidArgumentError("empty file path");
  const std::filesystem::path path{std::string(relative)};
  if (path.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file path \"", relative, "\" must be relative to the model's folder"));
  }
  for (const std::filesystem::path& part : path) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("file path \"", relative, "\" must not contain \"..\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::filesystem::path> ResolveModelFile(
    const std::filesystem::path& model_dir, absl::string_view relative) {
  HEADWAY_RETURN_IF_ERROR(ValidateRelativePath(relative));
  const std::filesystem::path path = model_dir / std::string(relative);
  // Symbolic links are followed only while they stay inside the model's folder.
  std::error_code error;
  const std::filesystem::path root = std::filesystem::weakly_canonical(model_dir, error);
  const std::filesystem::path target =
      error ? path : std::filesystem::weakly_canonical(path, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("cannot resolve \"", relative, "\": ", error.message()));
  }
  if (std::mismatch(root.begin(), root.end(), target.begin(), target.end()).first !=
      root.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "file path \"", relative, "\" leads outside the model's folder (symbolic link)"));
  }
  return path;
}

absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path.string()));
  return contents.str();
}

}  // namespace headway
