#include "server/event_log.h"

#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace headway {
namespace {

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void AppendValue(std::string& line, absl::string_view value) {
  const bool plain =
      !value.empty() && value.find_first_of(" \"=\\\t\n") == absl::string_view::npos;
  if (plain) {
    absl::StrAppend(&line, value);
  } else {
    absl::StrAppend(&line, "\"", absl::CHexEscape(value), "\"");
  }
}

}  // namespace

std::string FormatEvent(LogLevel level, absl::string_view event,
                        std::initializer_list<LogField> fields) {
  std::string line = absl::StrCat("level=", LevelName(level), " event=", event);
  for (const LogField& field : fields) {
    absl::StrAppend(&line, " ", field.first, "=");
    AppendValue(line, field.second);
  }
  return line;
}

void LogEvent(LogLevel level, absl::string_view event,
              std::initializer_list<LogField> fields) {
  static absl::Mutex mu(absl::kConstInit);
  const std::string line = absl::StrCat(
      "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
      " ", FormatEvent(level, event, fields), "\n");
  absl::MutexLock lock(&mu);
  std::cerr << line << std::flush;
}

}  // namespace headway
