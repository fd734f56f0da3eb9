#include "version/cli_help.h"

#include <algorithm>
#include <iostream>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace headway {

bool PrintHelpIfAsked(
    int argc, char** argv, absl::string_view usage,
    const std::function<bool(absl::string_view name, absl::string_view file)>& show) {
  bool asked = false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    asked |= arg == "--help" || arg == "-h" || arg == "--helpfull" || arg == "-help";
  }
  if (!asked) return false;
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string file = flag->Filename();
    // absl's own (--flagfile, --version, ...) are not Headway's to explain.
    if (absl::StrContains(file, "absl/")) continue;
    if (show(name, file)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::cout << usage << "\n";
  if (!flags.empty()) std::cout << "\nFlags:\n";
  for (const absl::CommandLineFlag* flag : flags) {
    std::cout << "  --" << flag->Name();
    const std::string value = flag->DefaultValue();
    std::cout << " (default " << (value.empty() ? "\"\"" : value) << ")\n"
              << "      " << flag->Help() << "\n";
  }
  std::cout << "  --version\n      Print the version and git commit, and exit.\n";
  return true;
}

absl::Status CheckDurationUnits(int argc, char** argv,
                                std::initializer_list<absl::string_view> names) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) continue;
    for (absl::string_view name : names) {
      absl::string_view value;
      if (absl::StartsWith(arg, absl::StrCat(name, "="))) {
        value = arg.substr(name.size() + 1);
      } else if (arg == name && i + 1 < argc) {
        value = argv[i + 1];
      } else {
        continue;
      }
      double number = 0;
      if (absl::SimpleAtod(value, &number) && value != "inf" && value != "0") {
        return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value,
                                                       " needs a unit: ", value, "s, ",
                                                       value, "ms or ", value, "m"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace headway
