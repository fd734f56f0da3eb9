#include "server/protobuf_log.h"

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/client_error_log.h"
#include "server/event_log.h"

namespace headway {
namespace {

constexpr size_t kMaxMessageBytes = 1024;

void LogProtobufMessage(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  // Lives as long as the process: protobuf may log from any thread until exit.
  static auto* const rate = new ClientErrorLog();
  const std::string source = absl::StrCat(filename, ":", line);
  int64_t suppressed = 0;
  if (!rate->ShouldLog(source, absl::StatusCode::kUnknown, absl::Now(), suppressed)) {
    return;
  }
  // Protobuf's errors are about the bytes it was given (a client's, as a rule): a
  // warning here. Only a fatal one (protobuf aborts after it) is the server's error.
  const LogLevel ours = level <= google::protobuf::LOGLEVEL_INFO   ? LogLevel::kInfo
                        : level < google::protobuf::LOGLEVEL_FATAL ? LogLevel::kWarning
                                                                   : LogLevel::kError;
  LogEvent(ours, "protobuf_log",
           {{"source", source},
            {"suppressed", absl::StrCat(suppressed)},
            {"message", message.substr(0, kMaxMessageBytes)}});
}

}  // namespace

void RouteProtobufLogs() { google::protobuf::SetLogHandler(&LogProtobufMessage); }

}  // namespace headway
