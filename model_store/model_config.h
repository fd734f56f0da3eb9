// Reading and checking a model's configuration: <model folder>/config.pbtxt holds a
// headway.v1.ModelConfig in protobuf text format (as Triton's config.pbtxt), and
// <model folder>/persisted/heads.pbtxt the head changes persisted since (see
// store/persisted_heads.h). Stateless functions; thread-safe.
#ifndef HEADWAY_MODEL_STORE_MODEL_CONFIG_H_
#define HEADWAY_MODEL_STORE_MODEL_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "headway/v1/model_config.pb.h"

namespace headway {

inline constexpr char kModelConfigFileName[] = "config.pbtxt";
inline constexpr int kDefaultMaxInputsPerRequest = 64;

// Parses text-format `text`; errors name the line and column. Does not validate.
absl::StatusOr<v1::ModelConfig> ParseModelConfig(absl::string_view text);

// Parses protobuf text format into `message`; INVALID_ARGUMENT ("malformed <what>: ")
// names the line and column of each error.
absl::Status ParseTextFormat(absl::string_view text, absl::string_view what,
                             google::protobuf::Message& message);

// Checks what the schema cannot: required fields, value ranges, unique head names, a
// default head that exists, relative file paths inside the model's folder.
absl::Status ValidateModelConfig(const v1::ModelConfig& config);

// Reads, parses and validates <model_dir>/config.pbtxt, fills defaults (strict loads,
// RGB, STRETCH, mean 0 / std 1, default head = first head, input limit), and checks
// that the config's name matches the folder's.
absl::StatusOr<v1::ModelConfig> ReadModelConfig(const std::filesystem::path& model_dir);

// A model as the store describes it now.
struct StoredModel {
  // config.pbtxt with the persisted head changes applied, validated, defaults filled.
  v1::ModelConfig config;
  // The store's version of each head (1 unless a persisted change set another).
  std::map<std::string, int64_t, std::less<>> head_versions;
};

// ReadModelConfig with the persisted head changes and the heads' versions.
absl::StatusOr<StoredModel> ReadStoredModel(const std::filesystem::path& model_dir);

// Changes whenever the model's entry in the store does: config.pbtxt, heads.pbtxt,
// and the size and modification time of every file they name. Cheap (two small reads
// and a few stats), for polling. NOT_FOUND when the folder has no config.pbtxt.
absl::StatusOr<std::string> StoreFingerprint(const std::filesystem::path& model_dir);

// The part of a config that needs the backbone reloaded when it changes: all but the
// heads. Equal for two configs that differ only in their heads.
std::string BackboneFingerprint(const v1::ModelConfig& config,
                                const std::filesystem::path& model_dir);

// Model and head names become file and folder names: letters, digits, '_', '-' and
// '.', not starting with '.', at most 128 bytes. INVALID_ARGUMENT, naming `what`
// ("model" or "head") and showing the name as EchoName does, otherwise.
absl::Status ValidateName(absl::string_view what, absl::string_view name);
inline absl::Status ValidateHeadName(absl::string_view head) {
  return ValidateName("head", head);
}

// A string from a request as messages and logs show it: C-escaped, at most its first
// 128 bytes, with its length after it when longer ("abc...  (1048576 bytes)"), so that
// no request can make an answer or a log line long.
std::string EchoName(absl::string_view text);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_MODEL_CONFIG_H_
