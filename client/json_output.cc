#include "client/json_output.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/numbers.h"

namespace headway {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Value;

constexpr double kLargestExactDouble = 9007199254740992.0;  // 2^53

bool Is64BitInteger(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

// A 64-bit integer's string as a number when a double holds it exactly.
void ToNumber(Value& value) {
  if (value.kind_case() != Value::kStringValue) return;
  double number = 0;
  if (absl::SimpleAtod(value.string_value(), &number) &&
      std::fabs(number) <= kLargestExactDouble && std::trunc(number) == number) {
    value.set_number_value(number);
  }
}

void Rewrite(const Descriptor& descriptor, Value& value);

// One field's JSON value (a list for a repeated field, an object for a map).
void RewriteField(const FieldDescriptor& field, Value& value) {
  const bool message = field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  if (field.is_map()) {
    const FieldDescriptor& mapped = *field.message_type()->map_value();
    if (value.kind_case() != Value::kStructValue) return;
    for (auto& [key, entry] : *value.mutable_struct_value()->mutable_fields()) {
      RewriteField(mapped, entry);
    }
    return;
  }
  if (field.is_repeated()) {
    if (value.kind_case() != Value::kListValue) return;
    for (Value& item : *value.mutable_list_value()->mutable_values()) {
      if (message) Rewrite(*field.message_type(), item);
      if (Is64BitInteger(field)) ToNumber(item);
    }
    return;
  }
  if (message) Rewrite(*field.message_type(), value);
  if (Is64BitInteger(field)) ToNumber(value);
}

void Rewrite(const Descriptor& descriptor, Value& value) {
  // Well-known types have JSON forms of their own; leave them as the mapping wrote.
  if (descriptor.file()->package() == "google.protobuf") return;
  if (value.kind_case() != Value::kStructValue) return;
  auto& fields = *value.mutable_struct_value()->mutable_fields();
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    auto found = fields.find(field.name());
    if (found != fields.end()) RewriteField(field, found->second);
  }
}

}  // namespace

std::string MessageToJson(const google::protobuf::Message& message, JsonLayout layout) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string mapped;
  (void)google::protobuf::util::MessageToJsonString(message, &mapped, options);
  Value value;
  if (!google::protobuf::util::JsonStringToMessage(mapped, &value).ok()) return mapped;
  Rewrite(*message.GetDescriptor(), value);
  options.add_whitespace = layout == JsonLayout::kIndented;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(value, &json, options);
  return json;
}

}  // namespace headway
