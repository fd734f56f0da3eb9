// Reading and checking a model's configuration: <model folder>/config.pbtxt holds a
// headway.v1.ModelConfig in protobuf text format (as Triton's config.pbtxt).
// Stateless functions; thread-safe.
#ifndef HEADWAY_MODEL_STORE_MODEL_CONFIG_H_
#define HEADWAY_MODEL_STORE_MODEL_CONFIG_H_

#include <filesystem>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "headway/v1/model_config.pb.h"

namespace headway {

inline constexpr char kModelConfigFileName[] = "config.pbtxt";
inline constexpr int kDefaultMaxInputsPerRequest = 64;

// Parses text-format `text`; errors name the line and column. Does not validate.
absl::StatusOr<v1::ModelConfig> ParseModelConfig(absl::string_view text);

// Checks what the schema cannot: required fields, value ranges, unique head names, a
// default head that exists, relative file paths inside the model's folder.
absl::Status ValidateModelConfig(const v1::ModelConfig& config);

// Reads, parses and validates <model_dir>/config.pbtxt, fills defaults (strict loads,
// RGB, STRETCH, mean 0 / std 1, default head = first head, input limit), and checks
// that the config's name matches the folder's.
absl::StatusOr<v1::ModelConfig> ReadModelConfig(const std::filesystem::path& model_dir);

// Threads running backbone passes for each loaded instance of `config` (0 means 1).
int ModelWorkers(const v1::ModelConfig& config);

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

#endif  // HEADWAY_MODEL_STORE_MODEL_CONFIG_H_
