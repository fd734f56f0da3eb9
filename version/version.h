// Headway's identity: its semantic version (set once, in the top CMakeLists.txt's
// project()), the git commit it was built from, and the build type. Every binary
// prints them for --version; the server exports them as headway_build_info and in the
// Open Inference Protocol's ServerMetadata.
//
// Constants; thread-safe.
#ifndef HEADWAY_VERSION_VERSION_H_
#define HEADWAY_VERSION_VERSION_H_

#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace headway {

// "0.5.0".
const char* HeadwayVersion();
// The short git commit ("abc123def456", "-modified" added for uncommitted changes),
// or "unknown" when built outside a git checkout (a Docker build context).
const char* HeadwayCommit();
// "Release", "RelWithDebInfo", "Debug", ...
const char* HeadwayBuildType();

// "<program> <version> (commit <commit>, <build type> build)".
std::string VersionLine(const std::string& program);

// Makes absl's --version flag print VersionLine(program), and --help list the flags of
// the files `help_flags` accepts (absl's default when empty); call before parsing
// flags. (absl keeps one usage configuration: this sets all of it.)
void SetVersionFlag(const std::string& program,
                    std::function<bool(absl::string_view)> help_flags = nullptr);

}  // namespace headway

#endif  // HEADWAY_VERSION_VERSION_H_
