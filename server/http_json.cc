#include "server/http_json.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "model_store/model_config.h"

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

absl::Status ToInput(const Value& value,
                     inference::ModelInferRequest::InferInputTensor& input) {
  if (value.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("each of \"inputs\" must be an object");
  }
  const auto& fields = value.struct_value().fields();
  for (const char* required : {"name", "shape", "datatype", "data"}) {
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
  return ToContents(input.name(), input.datatype(), fields.at("data"),
                    *input.mutable_contents());
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
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return ErrorJson(absl::InternalError(
        absl::StrCat("the response cannot be written as JSON: ", status.ToString())));
  }
  return json;
}

absl::StatusOr<inference::ModelInferRequest> ParseInferRequestJson(
    absl::string_view body) {
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
  for (const Value& input : inputs->second.list_value().values()) {
    if (absl::Status status = ToInput(input, *request.add_inputs()); !status.ok()) {
      return status;
    }
  }
  if (auto outputs = fields.find("outputs"); outputs != fields.end()) {
    if (outputs->second.kind_case() != Value::kListValue) {
      return absl::InvalidArgumentError("\"outputs\" must be an array");
    }
    for (const Value& output : outputs->second.list_value().values()) {
      if (absl::Status status = ToOutput(output, *request.add_outputs()); !status.ok()) {
        return status;
      }
    }
  }
  return request;
}

std::string InferResponseJson(const inference::ModelInferResponse& response) {
  Struct root;
  auto& fields = *root.mutable_fields();
  fields["model_name"] = Text(response.model_name());
  fields["model_version"] = Text(response.model_version());
  if (!response.id().empty()) fields["id"] = Text(response.id());
  if (!response.parameters().empty())
    fields["parameters"] = Parameters(response.parameters());
  ListValue& outputs = *fields["outputs"].mutable_list_value();
  for (const auto& output : response.outputs()) {
    Value& entry = *outputs.add_values();
    auto& out = *entry.mutable_struct_value()->mutable_fields();
    out["name"] = Text(output.name());
    out["datatype"] = Text(output.datatype());
    out["shape"] = Shape(output.shape());
    ListValue& data = *out["data"].mutable_list_value();
    for (float value : output.contents().fp32_contents())
      *data.add_values() = Number(value);
    for (const std::string& bytes : output.contents().bytes_contents()) {
      *data.add_values() = Text(bytes);
    }
  }
  return StructJson(root);
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
