// AdminAuthorizer: decides whether a call may use the management RPCs that change what
// a server serves (HotSwapHead, RemoveHead, LoadModel, UnloadModel). Inference,
// ListModels and health stay open.
//
// Credentials, either of which suffices:
//   - a bearer token: metadata "authorization: Bearer <token>", compared in constant
//     time with the server's token;
//   - a client certificate verified by mutual TLS whose common name is listed.
// With neither configured (and not `open`) the management RPCs are off.
// No credential: UNAUTHENTICATED. A wrong token, an unlisted certificate or management
// turned off: PERMISSION_DENIED. Each message says what would be accepted.
//
// Immutable after construction; thread-safe.
#ifndef HEADWAY_SERVER_ADMIN_AUTH_H_
#define HEADWAY_SERVER_ADMIN_AUTH_H_

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace grpc {
class ServerContextBase;
}  // namespace grpc

namespace headway {

class AdminAuthorizer {
 public:
  struct Options {
    // Accepted bearer token; empty accepts none.
    std::string token;
    // Accepted client certificate common names (needs mutual TLS).
    std::set<std::string, std::less<>> client_common_names;
    // Everyone is an admin: for a server only its own machine can reach.
    bool open = false;
  };

  explicit AdminAuthorizer(Options options) : options_(std::move(options)) {}

  absl::Status Authorize(const grpc::ServerContextBase& context) const;

  // Whether any management call can be authorised at all.
  bool enabled() const {
    return options_.open || !options_.token.empty() ||
           !options_.client_common_names.empty();
  }

 private:
  bool TokenMatches(absl::string_view presented) const;

  const Options options_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_ADMIN_AUTH_H_
