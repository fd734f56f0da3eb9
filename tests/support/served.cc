#include "tests/support/served.h"

#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/support/digits_data.h"

namespace headway::testing {

Served Serve(const std::filesystem::path& store, std::vector<std::string> flags,
             bool unprivileged) {
  Served served;
  flags.insert(flags.begin(), "--worker_threads=2");
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      unprivileged ? ServerProcess::StartUnprivileged(store, flags)
                   : ServerProcess::Start(store, flags);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return served;
  served.server = *std::move(server);
  served.client = AdminClient(*served.server);
  return served;
}

std::unique_ptr<HeadwayClient> AdminClient(const ServerProcess& server,
                                           absl::Duration timeout) {
  HeadwayClient::Options options;
  options.target = server.target();
  options.timeout = timeout;
  options.admin_token = server.admin_token();
  return *HeadwayClient::Create(options);
}

absl::StatusOr<v1::HeadStatus> HeadStatusOf(const HeadwayClient& client,
                                            const std::string& model,
                                            const std::string& head) {
  absl::StatusOr<v1::ListModelsResponse> models = client.ListModels(model);
  if (!models.ok()) return models.status();
  if (models->models().empty()) return absl::NotFoundError("no instance");
  for (const v1::HeadStatus& status : models->models(0).heads()) {
    if (status.name() == head) return status;
  }
  return absl::NotFoundError(absl::StrCat("no head ", head));
}

LoadOptions DigitLoad(const std::string& target, int concurrency, absl::Duration duration,
                      int cell) {
  LoadOptions load;
  load.target = target;
  load.concurrency = concurrency;
  load.duration = duration;
  load.warmup = absl::ZeroDuration();
  load.progress = false;
  v1::Input input;
  input.set_image(EncodePng(DigitCell(cell)));
  load.inputs = {input};
  return load;
}

}  // namespace headway::testing
