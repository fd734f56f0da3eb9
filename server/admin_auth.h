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
// The token can be replaced while serving (ReplaceToken: the admin token file was
// rotated); the rest is fixed at construction. Thread-safe.
#ifndef HEADWAY_SERVER_ADMIN_AUTH_H_
#define HEADWAY_SERVER_ADMIN_AUTH_H_

#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

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

  explicit AdminAuthorizer(Options options)
      : token_(std::move(options.token)), options_(std::move(options)) {}

  absl::Status Authorize(const grpc::ServerContextBase& context) const;

  // Whether any management call can be authorised at all.
  bool enabled() const {
    return options_.open || has_token_ || !options_.client_common_names.empty();
  }

  // Accepts `token` instead of the token it had, from the next call on. Only a
  // server started with a token takes another (`token` not empty).
  void ReplaceToken(std::string token) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  bool TokenMatches(absl::string_view presented) const ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  const bool has_token_ = !token_.empty();
  const Options options_;  // its token moved into token_
};

// The admin token in `path` (surrounding whitespace removed); "" for no path.
// NOT_FOUND for a file that cannot be read, INVALID_ARGUMENT for an empty one.
absl::StatusOr<std::string> ReadAdminTokenFile(const std::string& path);

}  // namespace headway

#endif  // HEADWAY_SERVER_ADMIN_AUTH_H_
