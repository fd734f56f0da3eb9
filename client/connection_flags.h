// Command-line flags shared by Headway's client tools (headway, headway_loadgen) for
// how to reach a server: TLS files and the admin token file. Defined once here so the
// tools cannot drift apart.
#ifndef HEADWAY_CLIENT_CONNECTION_FLAGS_H_
#define HEADWAY_CLIENT_CONNECTION_FLAGS_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/channel.h"

namespace headway {

// --tls_ca_file, --tls_cert_file, --tls_key_file, --tls_server_name.
TlsOptions TlsOptionsFromFlags();

// The token in --admin_token_file (surrounding whitespace dropped), or "" when unset.
// NOT_FOUND when the file cannot be read; INVALID_ARGUMENT when it is empty.
absl::StatusOr<std::string> AdminTokenFromFlags();

// Which files' flags --help lists: these beside those of `main_file` (the tool's main
// source); for SetVersionFlag.
std::function<bool(absl::string_view)> ConnectionFlagsInHelp(absl::string_view main_file);

}  // namespace headway

#endif  // HEADWAY_CLIENT_CONNECTION_FLAGS_H_
