#include "server/http_json.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/json_output.h"
#include "model_store/model_config.h"
#include "server/raw_bytes_elements.h"

namespace headway {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// Error messages quote at most this much of what they refuse.
constexpr size_t kMaxQuoted = 200;

// 2^53: integers beyond it are not exact in a JSON number.
constexpr double kMaxExactInteger = 9007199254740992.0;

absl::Status JsonError(absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed JSON: ", problem.substr(0, kMaxQuoted)));
}

Value Number(double number) {
  Value value;
  value.set_number_value(number);
  return value;
}

Value Text(const std::string& text) {
  Value value;
  value.set_string_value(text);
  return value;
}

absl::StatusOr<Struct> ParseObject(absl::string_view body) {
  Struct root;
  google::protobuf::util::JsonParseOptions options;
  const auto status =
      google::protobuf::util::JsonStringToMessage(std::string(body), &root, options);
  if (!status.ok()) return JsonError(status.ToString());
  return root;
}

bool IsInteger(const Value& value) {
  return value.kind_case() == Value::kNumberValue &&
         std::isfinite(value.number_value()) &&
         std::trunc(value.number_value()) == value.number_value() &&
         std::abs(value.number_value()) <= kMaxExactInteger;
}

absl::Status ToParameter(const std::string& key, const Value& value,
                         inference::InferParameter& parameter) {
  switch (value.kind_case()) {
    case Value::kBoolValue:
      parameter.set_bool_param(value.bool_value());
      return absl::OkStatus();
    case Value::kStringValue:
      parameter.set_string_param(value.string_value());
      return absl::OkStatus();
    case Value::kNumberValue:
      if (IsInteger(value)) {
        parameter.set_int64_param(static_cast<int64_t>(value.number_value()));
      } else {
        parameter.set_double_param(value.number_value());
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter \"", EchoName(key), "\" must be a bool, a number or a string"));
  }
}

template <typename Map>
absl::Status ToParameters(const Value& value, Map& parameters) {
  if (value.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("\"parameters\" must be an object");
  }
  for (const auto& [key, entry] : value.struct_value().fields()) {
    if (absl::Status status = ToParameter(key, entry, parameters[key]); !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

// Appends the leaves of `data` (nested arrays, row-major) to `leaves`.
void Flatten(const Value& data, std::vector<const Value*>& leaves) {
  if (data.kind_case() != Value::kListValue) {
    leaves.push_back(&data);
    return;
  }
  for (const Value& item : data.list_value().values()) Flatten(item, leaves);
}

absl::Status ToContents(const std::string& name, const std::string& datatype,
                        const Value& data, inference::InferTensorContents& contents) {
  std::vector<const Value*> leaves;
  Flatten(data, leaves);
  const auto refuse = [&](size_t i, absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("input \"", EchoName(name), "\": data element ", i, " ", what));
  };
  for (size_t i = 0; i < leaves.size(); ++i) {
    const Value& leaf = *leaves[i];
    if (datatype == "BYTES") {
      const Value* text = &leaf;
      if (leaf.kind_case() == Value::kStructValue) {
        auto b64 = leaf.struct_value().fields().find("b64");
        if (b64 == leaf.struct_value().fields().end()) {
          return refuse(i, "is an object without \"b64\"");
        }
        text = &b64->second;
      }
      std::string bytes;
      if (text->kind_case() != Value::kStringValue ||
          !absl::Base64Unescape(text->string_value(), &bytes)) {
        return refuse(i, "is not a base64 string (BYTES elements are base64)");
      }
      contents.add_bytes_contents(std::move(bytes));
    } else if (datatype == "UINT8") {
      if (!IsInteger(leaf) || leaf.number_value() < 0 || leaf.number_value() > 255) {
        return refuse(i, "is not an integer 0..255 (UINT8)");
      }
      contents.add_uint_contents(static_cast<uint32_t>(leaf.number_value()));
    } else if (datatype == "FP32") {
      if (leaf.kind_case() != Value::kNumberValue) return refuse(i, "is not a number");
      contents.add_fp32_contents(static_cast<float>(leaf.number_value()));
    } else {
      // Other datatypes are refused by the model's input mapping, which names them.
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

// The binary part of a request body (binary tensor data extension), handed to the
// inputs that claim it, in order.
class BinarySection {
 public:
  explicit BinarySection(std::optional<absl::string_view> data) : data_(data) {}

  // The next `size` bytes, for input `name`.
  absl::StatusOr<absl::string_view> Take(const std::string& name, int64_t size) {
    if (!data_.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input \"", EchoName(name),
          "\" gives binary_data_size, but the request has no "
          "Inference-Header-Content-Length header saying where its JSON ends"));
    }
    if (static_cast<uint64_t>(size) > data_->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input \"", EchoName(name), "\": binary_data_size ", size, " is more than the ",
          data_->size(), " bytes of binary data left in the body"));
    }
    absl::string_view taken = data_->substr(0, static_cast<size_t>(size));
    data_->remove_prefix(static_cast<size_t>(size));
    return taken;
  }

  size_t left() const { return data_.has_value() ? data_->size() : 0; }

 private:
  std::optional<absl::string_view> data_;
};

// An input tensor from JSON; `raw` gets its binary data when it names some.
absl::Status ToInput(const Value& value, BinarySection& binary,
                     inference::ModelInferRequest::InferInputTensor& input,
                     std::optional<std::string>& raw) {
  if (value.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("each of \"inputs\" must be an object");
  }
  const auto& fields = value.struct_value().fields();
  for (const char* required : {"name", "shape", "datatype"}) {
    if (fields.find(required) == fields.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("an input has no \"", required, "\""));
    }
  }
  const Value& name = fields.at("name");
  const Value& datatype = fields.at("datatype");
  const Value& shape = fields.at("shape");
  if (name.kind_case() != Value::kStringValue ||
      datatype.kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError("an input's \"name\" and \"datatype\" are strings");
  }
  input.set_name(name.string_value());
  input.set_datatype(datatype.string_value());
  if (shape.kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError(absl::StrCat("input \"", EchoName(input.name()),
                                                   "\": \"shape\" must be an array"));
  }
  for (const Value& dim : shape.list_value().values()) {
    if (!IsInteger(dim)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input \"", EchoName(input.name()), "\": \"shape\" holds a non-integer"));
    }
    input.add_shape(static_cast<int64_t>(dim.number_value()));
  }
  if (auto parameters = fields.find("parameters"); parameters != fields.end()) {
    if (absl::Status status =
            ToParameters(parameters->second, *input.mutable_parameters());
        !status.ok()) {
      return status;
    }
  }
  const bool has_data = fields.find("data") != fields.end();
  auto binary_size = input.parameters().find("binary_data_size");
  if (binary_size == input.parameters().end()) {
    if (!has_data) return absl::InvalidArgumentError("an input has no \"data\"");
    return ToContents(input.name(), input.datatype(), fields.at("data"),
                      *input.mutable_contents());
  }
  const inference::InferParameter& size = binary_size->second;
  if (size.parameter_choice_case() != inference::InferParameter::kInt64Param ||
      size.int64_param() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input \"", EchoName(input.name()),
                     "\": parameter \"binary_data_size\" must be a byte count"));
  }
  if (has_data) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input \"", EchoName(input.name()), "\" has both \"data\" and binary_data_size"));
  }
  absl::StatusOr<absl::string_view> bytes = binary.Take(input.name(), size.int64_param());
  if (!bytes.ok()) return bytes.status();
  raw.emplace(*bytes);
  input.mutable_parameters()->erase("binary_data_size");
  return absl::OkStatus();
}

// Refuses a "binary_data" or "binary_data_output" parameter that is not a bool.
template <typename Map>
absl::Status CheckBinaryFlag(const Map& parameters, const char* key,
                             absl::string_view owner) {
  auto flag = parameters.find(key);
  if (flag == parameters.end() ||
      flag->second.parameter_choice_case() == inference::InferParameter::kBoolParam) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(owner, "parameter \"", key, "\" must be a bool"));
}

// Whether the response sends `output` as binary data: its own "binary_data", else the
// request's "binary_data_output", else not.
bool WantsBinary(const inference::ModelInferRequest& request, const std::string& output) {
  for (const auto& requested : request.outputs()) {
    if (requested.name() != output) continue;
    auto flag = requested.parameters().find("binary_data");
    if (flag != requested.parameters().end()) return flag->second.bool_param();
    break;
  }
  auto all = request.parameters().find("binary_data_output");
  return all != request.parameters().end() && all->second.bool_param();
}

// Appends output `index`'s data in the binary form (what gRPC's raw_output_contents
// hold) to `binary`; returns how many bytes that is.
size_t AppendRawOutput(const inference::ModelInferResponse& response, int index,
                       std::string& binary) {
  const size_t before = binary.size();
  if (index < response.raw_output_contents_size()) {
    binary += response.raw_output_contents(index);
    return binary.size() - before;
  }
  const inference::InferTensorContents& contents = response.outputs(index).contents();
  binary.append(reinterpret_cast<const char*>(contents.fp32_contents().data()),
                contents.fp32_contents_size() * sizeof(float));
  for (const std::string& element : contents.bytes_contents()) {
    AppendRawBytesElement(element, binary);
  }
  return binary.size() - before;
}

// Appends an output's data, given in the binary form, to a JSON list.
void AppendRawAsJson(const std::string& datatype, absl::string_view raw,
                     ListValue& data) {
  if (datatype == "FP32") {
    for (size_t at = 0; at + sizeof(float) <= raw.size(); at += sizeof(float)) {
      float value;
      std::memcpy(&value, raw.data() + at, sizeof(float));
      *data.add_values() = Number(value);
    }
    return;
  }
  // BYTES: the server's own raw contents, so well formed.
  const absl::StatusOr<std::vector<absl::string_view>> elements =
      SplitRawBytesElements(raw, raw.size());
  for (absl::string_view element : elements.value_or(std::vector<absl::string_view>())) {
    *data.add_values() = Text(std::string(element));
  }
}

absl::Status ToOutput(const Value& value,
                      inference::ModelInferRequest::InferRequestedOutputTensor& output) {
  if (value.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("each of \"outputs\" must be an object");
  }
  const auto& fields = value.struct_value().fields();
  auto name = fields.find("name");
  if (name == fields.end() || name->second.kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError("an output has no \"name\" string");
  }
  output.set_name(name->second.string_value());
  if (auto parameters = fields.find("parameters"); parameters != fields.end()) {
    return ToParameters(parameters->second, *output.mutable_parameters());
  }
  return absl::OkStatus();
}

Value Shape(const google::protobuf::RepeatedField<int64_t>& shape) {
  Value value;
  for (int64_t dim : shape) {
    *value.mutable_list_value()->add_values() = Number(static_cast<double>(dim));
  }
  return value;
}

template <typename Map>
Value Parameters(const Map& parameters) {
  Value value;
  auto& fields = *value.mutable_struct_value()->mutable_fields();
  for (const auto& [key, parameter] : parameters) {
    switch (parameter.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam:
        fields[key].set_bool_value(parameter.bool_param());
        break;
      case inference::InferParameter::kInt64Param:
        fields[key] = Number(static_cast<double>(parameter.int64_param()));
        break;
      case inference::InferParameter::kStringParam:
        fields[key] = Text(parameter.string_param());
        break;
      case inference::InferParameter::kDoubleParam:
        fields[key] = Number(parameter.double_param());
        break;
      case inference::InferParameter::kUint64Param:
        fields[key] = Number(static_cast<double>(parameter.uint64_param()));
        break;
      default:
        break;
    }
  }
  return value;
}

std::string StructJson(const Struct& root) {
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(root, &json);
  if (!status.ok()) {
    return ErrorJson(absl::InternalError(
        absl::StrCat("the response cannot be written as JSON: ", status.ToString())));
  }
  return json;
}

}  // namespace

absl::Status ParseMessageJson(absl::string_view body,
                              google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  const auto status =
      google::protobuf::util::JsonStringToMessage(std::string(body), &message, options);
  if (!status.ok()) return JsonError(status.ToString());
  return absl::OkStatus();
}

std::string MessageJson(const google::protobuf::Message& message) {
  return MessageToJson(message, JsonLayout::kCompact);
}

absl::StatusOr<inference::ModelInferRequest> ParseInferRequestJson(
    absl::string_view body, std::optional<size_t> json_length) {
  std::optional<absl::string_view> binary_data;
  if (json_length.has_value()) {
    if (*json_length > body.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Inference-Header-Content-Length is ", *json_length,
                       " but the body has ", body.size(), " bytes"));
    }
    binary_data = body.substr(*json_length);
    body = body.substr(0, *json_length);
  }
  BinarySection binary(binary_data);
  absl::StatusOr<Struct> root = ParseObject(body);
  if (!root.ok()) return root.status();
  inference::ModelInferRequest request;
  const auto& fields = root->fields();
  if (auto id = fields.find("id"); id != fields.end()) {
    if (id->second.kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError("\"id\" must be a string");
    }
    request.set_id(id->second.string_value());
  }
  if (auto parameters = fields.find("parameters"); parameters != fields.end()) {
    if (absl::Status status =
            ToParameters(parameters->second, *request.mutable_parameters());
        !status.ok()) {
      return status;
    }
  }
  auto inputs = fields.find("inputs");
  if (inputs == fields.end() || inputs->second.kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError("the request has no \"inputs\" array");
  }
  std::vector<std::string> raw_inputs;
  for (const Value& input : inputs->second.list_value().values()) {
    std::optional<std::string> raw;
    if (absl::Status status = ToInput(input, binary, *request.add_inputs(), raw);
        !status.ok()) {
      return status;
    }
    if (raw.has_value()) raw_inputs.push_back(std::move(*raw));
  }
  if (!raw_inputs.empty()) {
    if (static_cast<int>(raw_inputs.size()) != request.inputs_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(raw_inputs.size(), " of the ", request.inputs_size(),
                       " inputs give binary_data_size; give every input in binary or "
                       "every input in JSON"));
    }
    for (std::string& raw : raw_inputs) request.add_raw_input_contents(std::move(raw));
  }
  if (binary.left() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body has ", binary.left(),
                     " bytes after its JSON that no input's binary_data_size claims"));
  }
  if (absl::Status status =
          CheckBinaryFlag(request.parameters(), "binary_data_output", "");
      !status.ok()) {
    return status;
  }
  if (auto outputs = fields.find("outputs"); outputs != fields.end()) {
    if (outputs->second.kind_case() != Value::kListValue) {
      return absl::InvalidArgumentError("\"outputs\" must be an array");
    }
    for (const Value& output : outputs->second.list_value().values()) {
      auto& requested = *request.add_outputs();
      if (absl::Status status = ToOutput(output, requested); !status.ok()) {
        return status;
      }
      if (absl::Status status = CheckBinaryFlag(
              requested.parameters(), "binary_data",
              absl::StrCat("output \"", EchoName(requested.name()), "\": "));
          !status.ok()) {
        return status;
      }
    }
  }
  return request;
}

InferResponseBody InferResponseHttp(const inference::ModelInferResponse& response,
                                    const inference::ModelInferRequest& request) {
  Struct root;
  auto& fields = *root.mutable_fields();
  fields["model_name"] = Text(response.model_name());
  fields["model_version"] = Text(response.model_version());
  if (!response.id().empty()) fields["id"] = Text(response.id());
  if (!response.parameters().empty())
    fields["parameters"] = Parameters(response.parameters());
  ListValue& outputs = *fields["outputs"].mutable_list_value();
  std::string binary;
  bool any_binary = false;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    Value& entry = *outputs.add_values();
    auto& out = *entry.mutable_struct_value()->mutable_fields();
    out["name"] = Text(output.name());
    out["datatype"] = Text(output.datatype());
    out["shape"] = Shape(output.shape());
    if (WantsBinary(request, output.name())) {
      const size_t size = AppendRawOutput(response, i, binary);
      (*out["parameters"].mutable_struct_value()->mutable_fields())["binary_data_size"] =
          Number(static_cast<double>(size));
      any_binary = true;
      continue;
    }
    ListValue& data = *out["data"].mutable_list_value();
    if (i < response.raw_output_contents_size()) {
      AppendRawAsJson(output.datatype(), response.raw_output_contents(i), data);
      continue;
    }
    for (float value : output.contents().fp32_contents())
      *data.add_values() = Number(value);
    for (const std::string& bytes : output.contents().bytes_contents()) {
      *data.add_values() = Text(bytes);
    }
  }
  InferResponseBody body{StructJson(root), std::nullopt};
  if (any_binary) {
    body.json_length = body.body.size();
    body.body += binary;
  }
  return body;
}

std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata) {
  Struct root;
  auto& fields = *root.mutable_fields();
  fields["name"] = Text(metadata.name());
  fields["platform"] = Text(metadata.platform());
  ListValue& versions = *fields["versions"].mutable_list_value();
  for (const std::string& version : metadata.versions())
    *versions.add_values() = Text(version);
  for (const auto* tensors : {&metadata.inputs(), &metadata.outputs()}) {
    ListValue& list = *fields[tensors == &metadata.inputs() ? "inputs" : "outputs"]
                           .mutable_list_value();
    for (const auto& tensor : *tensors) {
      auto& entry = *list.add_values()->mutable_struct_value()->mutable_fields();
      entry["name"] = Text(tensor.name());
      entry["datatype"] = Text(tensor.datatype());
      entry["shape"] = Shape(tensor.shape());
    }
  }
  return StructJson(root);
}

std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata) {
  Struct root;
  auto& fields = *root.mutable_fields();
  fields["name"] = Text(metadata.name());
  fields["version"] = Text(metadata.version());
  ListValue& extensions = *fields["extensions"].mutable_list_value();
  for (const std::string& extension : metadata.extensions()) {
    *extensions.add_values() = Text(extension);
  }
  return StructJson(root);
}

std::string RepositoryIndexJson(const inference::RepositoryIndexResponse& index) {
  Value list;
  for (const auto& model : index.models()) {
    auto& entry = *list.mutable_list_value()
                       ->add_values()
                       ->mutable_struct_value()
                       ->mutable_fields();
    entry["name"] = Text(model.name());
    entry["version"] = Text(model.version());
    entry["state"] = Text(model.state());
    entry["reason"] = Text(model.reason());
  }
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(list, &json);
  return status.ok() ? json : "[]";
}

std::string ErrorJson(const absl::Status& status) {
  Struct root;
  auto& fields = *root.mutable_fields();
  fields["error"] = Text(std::string(status.message()));
  fields["code"] = Text(absl::StatusCodeToString(status.code()));
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(root, &json).ok()) {
    // A message that is not UTF-8: its code still says what happened.
    return absl::StrCat("{\"error\":\"(not UTF-8)\",\"code\":\"",
                        absl::StatusCodeToString(status.code()), "\"}");
  }
  return json;
}

}  // namespace headway
