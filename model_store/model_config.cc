#include "model_store/model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/status_macros.h"
#include "model_store/store/content_digest.h"
#include "model_store/store/model_files.h"
#include "model_store/store/persisted_heads.h"

namespace headway {
namespace {

// Collects protobuf text-format errors as "line L, column C: message".
class TextFormatErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    errors_.push_back(
        absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message));
  }
  void AddWarning(int, int, const std::string&) override {}
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

absl::Status ValidateInputSpec(const v1::InputSpec& input) {
  if (input.channels() != 1 && input.channels() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("input.channels must be 1 or 3, got ", input.channels()));
  }
  if (input.height() <= 0 || input.width() <= 0 || input.height() > 8192 ||
      input.width() > 8192) {
    return absl::InvalidArgumentError(
        absl::StrCat("input.height and input.width must be in 1..8192, got ",
                     input.height(), "x", input.width()));
  }
  if (input.resize() == v1::InputSpec::SHORTER_SIDE_THEN_CENTER_CROP &&
      (input.resize_shorter_side() < input.height() ||
       input.resize_shorter_side() < input.width())) {
    return absl::InvalidArgumentError(
        "input.resize_shorter_side must be at least input.height and input.width");
  }
  for (const auto& [field, values] :
       {std::pair{"mean", &input.mean()}, std::pair{"std", &input.std()}}) {
    if (values->size() > 1 && values->size() != input.channels()) {
      return absl::InvalidArgumentError(absl::StrCat("input.", field, " needs 1 or ",
                                                     input.channels(), " values, got ",
                                                     values->size()));
    }
  }
  for (float s : input.std()) {
    if (!(s > 0)) return absl::InvalidArgumentError("input.std values must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseTextFormat(absl::string_view text, absl::string_view what,
                             google::protobuf::Message& message) {
  TextFormatErrors errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &message)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed ", what, ": ", errors.Joined()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelConfig> ParseModelConfig(absl::string_view text) {
  v1::ModelConfig config;
  HEADWAY_RETURN_IF_ERROR(ParseTextFormat(text, "model config", config));
  return config;
}

absl::Status ValidateModelConfig(const v1::ModelConfig& config) {
  if (config.name().empty())
    return absl::InvalidArgumentError("model config has no name");
  if (config.backbone().file().empty()) {
    return absl::InvalidArgumentError("model config has no backbone.file");
  }
  HEADWAY_RETURN_IF_ERROR(ValidateRelativePath(config.backbone().file()));
  const v1::BackboneConfig& backbone = config.backbone();
  if (!backbone.architecture().empty()) {
    HEADWAY_RETURN_IF_ERROR(ValidateRelativePath(backbone.architecture()));
    if (backbone.format() == v1::BackboneConfig::TORCHSCRIPT) {
      return absl::InvalidArgumentError(
          "backbone.architecture is for STATE_DICT and TRAINING_CHECKPOINT weights, not "
          "TORCHSCRIPT");
    }
  } else if (backbone.format() == v1::BackboneConfig::STATE_DICT ||
             backbone.format() == v1::BackboneConfig::TRAINING_CHECKPOINT) {
    return absl::InvalidArgumentError(
        "backbone.architecture is required for STATE_DICT and TRAINING_CHECKPOINT "
        "weights");
  }
  HEADWAY_RETURN_IF_ERROR(ValidateInputSpec(config.input()));
  std::set<std::string> names;
  for (const v1::HeadConfig& head : config.heads()) {
    if (head.name().empty()) return absl::InvalidArgumentError("a head has no name");
    if (!names.insert(head.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate head \"", head.name(), "\""));
    }
    if (head.file().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("head \"", head.name(), "\" has no file"));
    }
    HEADWAY_RETURN_IF_ERROR(ValidateRelativePath(head.file()));
    if (!head.labels_file().empty()) {
      HEADWAY_RETURN_IF_ERROR(ValidateRelativePath(head.labels_file()));
    }
  }
  if (!config.default_head().empty() && names.count(config.default_head()) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "default_head \"", config.default_head(), "\" is not one of the heads"));
  }
  const v1::BatchingConfig& batching = config.batching();
  if (batching.max_batch_size() < 0 || batching.max_queue_delay_us() < 0 ||
      batching.max_queue_size() < 0 || batching.max_queue_wait_us() < 0 ||
      config.model_workers() < 0) {
    return absl::InvalidArgumentError(
        "batching values and model_workers must not be negative");
  }
  if (config.limits().max_inputs_per_request() < 0) {
    return absl::InvalidArgumentError(
        "limits.max_inputs_per_request must not be negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelConfig> ReadModelConfig(const std::filesystem::path& model_dir) {
  HEADWAY_ASSIGN_OR_RETURN(StoredModel stored, ReadStoredModel(model_dir));
  return std::move(stored.config);
}

absl::StatusOr<StoredModel> ReadStoredModel(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / kModelConfigFileName;
  HEADWAY_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<v1::ModelConfig> parsed = ParseModelConfig(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": ", parsed.status().message()));
  }
  StoredModel stored;
  v1::ModelConfig& config = stored.config;
  config = *std::move(parsed);
  HEADWAY_ASSIGN_OR_RETURN(const std::string persisted_text,
                           ReadPersistedHeadsText(model_dir));
  absl::StatusOr<v1::PersistedHeads> persisted = ParsePersistedHeads(persisted_text);
  if (!persisted.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        (model_dir / kPersistedFolderName / kPersistedHeadsFileName).string(), ": ",
        persisted.status().message()));
  }
  stored.head_versions = ApplyPersistedHeads(*persisted, config);
  if (absl::Status valid = ValidateModelConfig(config); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", valid.message()));
  }
  const std::string folder = model_dir.filename().empty()
                                 ? model_dir.parent_path().filename().string()
                                 : model_dir.filename().string();
  if (config.name() != folder) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": model name \"", config.name(),
                     "\" differs from its folder's name \"", folder, "\""));
  }
  if (config.backbone().load_mode() == v1::BackboneConfig::LOAD_MODE_UNSPECIFIED) {
    config.mutable_backbone()->set_load_mode(v1::BackboneConfig::STRICT);
  }
  v1::InputSpec& input = *config.mutable_input();
  if (input.color_order() == v1::InputSpec::COLOR_ORDER_UNSPECIFIED) {
    input.set_color_order(v1::InputSpec::RGB);
  }
  if (input.resize() == v1::InputSpec::RESIZE_UNSPECIFIED) {
    input.set_resize(v1::InputSpec::STRETCH);
  }
  if (input.mean().empty()) input.add_mean(0.0f);
  if (input.std().empty()) input.add_std(1.0f);
  // A model without heads serves Embed only, until HotSwapHead adds its first head.
  if (config.default_head().empty() && !config.heads().empty()) {
    config.set_default_head(config.heads(0).name());
  }
  if (config.limits().max_inputs_per_request() == 0) {
    config.mutable_limits()->set_max_inputs_per_request(kDefaultMaxInputsPerRequest);
  }
  return stored;
}

namespace {

// "<relative>:<size>:<mtime ns>" of a file the config names ("<relative>:-" when it
// cannot be read), so that a file replaced in place changes the fingerprint.
std::string FileStamp(const std::filesystem::path& model_dir,
                      const std::string& relative) {
  std::error_code error;
  const std::filesystem::path path = model_dir / relative;
  const uintmax_t size = std::filesystem::file_size(path, error);
  if (error) return absl::StrCat(relative, ":-");
  const auto modified = std::filesystem::last_write_time(path, error);
  if (error) return absl::StrCat(relative, ":-");
  return absl::StrCat(relative, ":", size, ":",
                      static_cast<int64_t>(modified.time_since_epoch().count()));
}

}  // namespace

absl::StatusOr<std::string> StoreFingerprint(const std::filesystem::path& model_dir) {
  std::error_code error;
  if (!std::filesystem::exists(model_dir / kModelConfigFileName, error)) {
    return absl::NotFoundError(
        absl::StrCat(model_dir.string(), " has no ", kModelConfigFileName));
  }
  HEADWAY_ASSIGN_OR_RETURN(const std::string config_text,
                           ReadFileToString(model_dir / kModelConfigFileName));
  HEADWAY_ASSIGN_OR_RETURN(const std::string persisted_text,
                           ReadPersistedHeadsText(model_dir));
  std::vector<std::string> parts = {config_text, persisted_text};
  // The files named by the configuration as it reads now; an unreadable one only
  // makes the fingerprint what it is (the load that follows reports it).
  v1::ModelConfig config;
  v1::PersistedHeads persisted;
  if (ParseTextFormat(config_text, "model config", config).ok() &&
      ParseTextFormat(persisted_text, "persisted heads", persisted).ok()) {
    ApplyPersistedHeads(persisted, config);
    parts.push_back(BackboneFingerprint(config, model_dir));
    for (const v1::HeadConfig& head : config.heads()) {
      for (const std::string& file : {head.file(), head.labels_file()}) {
        if (!file.empty()) parts.push_back(FileStamp(model_dir, file));
      }
    }
  }
  return ContentDigest(std::vector<absl::string_view>(parts.begin(), parts.end()));
}

std::string BackboneFingerprint(const v1::ModelConfig& config,
                                const std::filesystem::path& model_dir) {
  v1::ModelConfig backbone_part = config;
  backbone_part.clear_heads();
  backbone_part.clear_default_head();
  std::string serialized;
  backbone_part.SerializeToString(&serialized);
  std::vector<std::string> parts = {serialized,
                                    FileStamp(model_dir, config.backbone().file())};
  if (!config.backbone().architecture().empty()) {
    parts.push_back(FileStamp(model_dir, config.backbone().architecture()));
  }
  return ContentDigest(std::vector<absl::string_view>(parts.begin(), parts.end()));
}

std::string EchoName(absl::string_view text) {
  constexpr size_t kShown = 128;
  if (text.size() <= kShown) return absl::CHexEscape(text);
  return absl::StrCat(absl::CHexEscape(text.substr(0, kShown)), "... (", text.size(),
                      " bytes)");
}

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  const bool valid = !name.empty() && name.size() <= 128 && name[0] != '.' &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
                     });
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name \"", EchoName(name),
        "\" must be 1 to 128 letters, digits, '_', '-' or '.', not starting with '.'"));
  }
  return absl::OkStatus();
}

}  // namespace headway
