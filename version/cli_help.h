// PrintHelpIfAsked: the --help of Headway's binaries, in place of absl's (which exits 1,
// lists flags under their build paths and cannot show one command's flags): the usage
// text, then each flag with its default and help, on stdout. CheckDurationUnits: a
// clear error for a duration flag given without a unit, which absl only calls an
// "illegal value".
//
// Thread-compatible; call from main() before parsing flags.
#ifndef HEADWAY_VERSION_CLI_HELP_H_
#define HEADWAY_VERSION_CLI_HELP_H_

#include <functional>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace headway {

// True when argv holds --help, -h or --helpfull (the caller then exits 0), after
// printing `usage` and the flags that `show` accepts (by flag name and the source file
// that defines it); absl's own flags are left out.
bool PrintHelpIfAsked(
    int argc, char** argv, absl::string_view usage,
    const std::function<bool(absl::string_view name, absl::string_view file)>& show);

// INVALID_ARGUMENT when argv gives one of the duration flags `names` as a plain number
// (--duration=10, or --duration 10): "--duration=10 needs a unit: 10s, 500ms or 2m".
absl::Status CheckDurationUnits(int argc, char** argv,
                                std::initializer_list<absl::string_view> names);

}  // namespace headway

#endif  // HEADWAY_VERSION_CLI_HELP_H_
