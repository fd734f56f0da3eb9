// Structured event log: one logfmt line per event on stderr, for example
//   ts=2026-11-28T10:00:00.123Z level=info event=model_loaded model=digits device=cpu
//   duration_ms=115
// Values with spaces, quotes or '=' are quoted. Headway logs loads, unloads, head swaps,
// failed requests and the server's lifecycle this way, so log pipelines can parse them.
//
// Thread-safe: each line is written whole.
#ifndef HEADWAY_SERVER_EVENT_LOG_H_
#define HEADWAY_SERVER_EVENT_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace headway {

enum class LogLevel { kInfo, kWarning, kError };

using LogField = std::pair<absl::string_view, std::string>;

// Writes `event` with `fields` in order.
void LogEvent(LogLevel level, absl::string_view event,
              std::initializer_list<LogField> fields = {});

// The line LogEvent writes, without the timestamp and newline (for tests).
std::string FormatEvent(LogLevel level, absl::string_view event,
                        std::initializer_list<LogField> fields);

}  // namespace headway

#endif  // HEADWAY_SERVER_EVENT_LOG_H_
