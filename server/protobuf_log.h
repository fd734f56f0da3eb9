// RouteProtobufLogs: protobuf's own log messages (for example "String field ...
// contains invalid UTF-8 data when parsing a protocol buffer", written for every such
// request a client sends) become event log lines (`event=protobuf_log`) instead of
// free-form stderr, at most one per source line of protobuf every 10 s; the next says
// how many were left out (`suppressed`). Messages are cut to 1 KB. Protobuf's ERROR
// level (data it cannot parse or write) is logged as a warning, FATAL as an error.
//
// Call once, early in main, before other threads use protobuf (protobuf's
// SetLogHandler is not thread-safe). The handler itself is.
#ifndef HEADWAY_SERVER_PROTOBUF_LOG_H_
#define HEADWAY_SERVER_PROTOBUF_LOG_H_

namespace headway {

void RouteProtobufLogs();

}  // namespace headway

#endif  // HEADWAY_SERVER_PROTOBUF_LOG_H_
