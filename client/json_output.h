// MessageToJson: a message as Headway prints JSON, in the CLI's --json and in the
// HTTP API's headway.v1 answers: protobuf's JSON mapping (proto field names, every
// field even when default, enums by name), except that 64-bit integers are numbers,
// not the mapping's strings, wherever a double holds them exactly (|v| <= 2^53), so
// that jq, scripts and JavaScript compare them as numbers. Protobuf's JSON parser
// reads either form back.
//
// Pure function; thread-safe.
#ifndef HEADWAY_CLIENT_JSON_OUTPUT_H_
#define HEADWAY_CLIENT_JSON_OUTPUT_H_

#include <google/protobuf/message.h>

#include <string>

namespace headway {

enum class JsonLayout { kCompact, kIndented };

std::string MessageToJson(const google::protobuf::Message& message, JsonLayout layout);

}  // namespace headway

#endif  // HEADWAY_CLIENT_JSON_OUTPUT_H_
