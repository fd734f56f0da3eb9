#include "version/version.h"

#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"

namespace headway {

std::string VersionLine(const std::string& program) {
  return absl::StrCat(program, " ", HeadwayVersion(), " (commit ", HeadwayCommit(), ", ",
                      HeadwayBuildType(), " build)");
}

void SetVersionFlag(const std::string& program,
                    std::function<bool(absl::string_view)> help_flags) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = std::move(help_flags);
  config.version_string = [program] { return VersionLine(program) + "\n"; };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace headway
