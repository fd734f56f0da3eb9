// Served: a real headway_server (ServerProcess) with a HeadwayClient connected to it as
// an admin, for end-to-end tests. Helpers that read what a server serves.
#ifndef HEADWAY_TESTS_SUPPORT_SERVED_H_
#define HEADWAY_TESTS_SUPPORT_SERVED_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/server_process.h"
#include "tests/support/test_files.h"

namespace headway::testing {

struct Served {
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<HeadwayClient> client;
};

// Starts a server over `store` with `flags` (plus --worker_threads=2) and connects an
// admin client with a 120 s timeout; `unprivileged` as ServerProcess::StartUnprivileged.
// Fails the test (and returns null members) when the server does not start.
Served Serve(const std::filesystem::path& store, std::vector<std::string> flags = {},
             bool unprivileged = false);

// An admin client of `server`.
std::unique_ptr<HeadwayClient> AdminClient(const ServerProcess& server,
                                           absl::Duration timeout = absl::Seconds(120));

// Load-generator options: `concurrency` closed-loop callers on `target` classifying
// one digit PNG (the digits data's cell `cell`) for `duration`, with no warm-up and no
// progress lines.
LoadOptions DigitLoad(const std::string& target, int concurrency, absl::Duration duration,
                      int cell);

// The status of `head` of `model`'s first instance, from ListModels.
absl::StatusOr<v1::HeadStatus> HeadStatusOf(const HeadwayClient& client,
                                            const std::string& model,
                                            const std::string& head);

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_SERVED_H_
