// Helpers of the operations end-to-end tests (observability, lifecycle, security): a
// held-out digit to classify, a client of a real server, a scratch folder, a wait on a
// server metric, and a model store whose requests wait in the batch queue.
#ifndef HEADWAY_TESTS_SUPPORT_OPERATIONS_H_
#define HEADWAY_TESTS_SUPPORT_OPERATIONS_H_

#include <filesystem>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "client/headway_client.h"

namespace headway::testing {

// A held-out cell of `digit` that PyTorch classified right with both heads; -1 if none.
int CellOf(int digit);

// Classify of the digits model on `cell` of digits.png, as a PNG.
v1::ClassifyRequest ClassifyDigit(int cell);

// A client of `target` with a 30 s timeout; fails the test (and returns null) when it
// cannot be made.
std::unique_ptr<HeadwayClient> Connect(const std::string& target,
                                       const std::string& admin_token = "",
                                       const TlsOptions& tls = TlsOptions(),
                                       bool wait_for_ready = true);

// A new folder under /tmp.
std::filesystem::path MakeTempDir();

void WriteFile(const std::filesystem::path& path, const std::string& text);

// Waits up to `timeout` until the server whose metrics endpoint is `metrics_port`
// reports `series` (a line's name and labels as Prometheus's text format writes them,
// such as "headway_requests_in_flight") at `value` or more; true once it does.
bool WaitForMetricAtLeast(int metrics_port, const std::string& series, double value,
                          absl::Duration timeout);

// A model store copy whose digits model waits for full batches of 64 or a long queue
// delay (fixed-delay batching), so that requests sit in the queue for `delay`.
std::filesystem::path SlowBatchingStore(absl::Duration delay);

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_OPERATIONS_H_
