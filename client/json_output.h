// MessageToCliJson: a message as the CLI's --json prints it: protobuf's JSON mapping
// (proto field names, every field even when default, enums by name), except that
// 64-bit integers are numbers, not the mapping's strings, wherever a double holds them
// exactly (|v| <= 2^53), so that jq and scripts compare them as numbers.
//
// Pure function; thread-safe.
#ifndef HEADWAY_CLIENT_JSON_OUTPUT_H_
#define HEADWAY_CLIENT_JSON_OUTPUT_H_

#include <google/protobuf/message.h>

#include <string>

namespace headway {

std::string MessageToCliJson(const google::protobuf::Message& message);

}  // namespace headway

#endif  // HEADWAY_CLIENT_JSON_OUTPUT_H_
