#include "tests/support/operations.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "tests/support/digits_data.h"
#include "tests/support/server_process.h"

namespace headway::testing {

int CellOf(int digit) {
  for (const HeldOutDigit& held_out : ReadHeldOutSplit().digits) {
    if (held_out.label == digit && held_out.digit_prediction == digit &&
        held_out.parity_prediction == digit % 2) {
      return held_out.cell;
    }
  }
  return -1;
}

v1::ClassifyRequest ClassifyDigit(int cell) {
  v1::ClassifyRequest request;
  request.set_model("digits");
  request.add_inputs()->set_image(EncodePng(DigitCell(cell)));
  return request;
}

bool WaitForMetricAtLeast(int metrics_port, const std::string& series, double value,
                          absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    const absl::StatusOr<std::string> text = HttpGet(metrics_port, "/metrics");
    std::istringstream lines(text.value_or(""));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.compare(0, series.size() + 1, series + " ") != 0) continue;
      double reported = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &reported) &&
          reported >= value) {
        return true;
      }
    }
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::unique_ptr<HeadwayClient> Connect(const std::string& target,
                                       const std::string& admin_token,
                                       const TlsOptions& tls, bool wait_for_ready) {
  HeadwayClient::Options options;
  options.target = target;
  options.timeout = absl::Seconds(30);
  options.wait_for_ready = wait_for_ready;
  options.admin_token = admin_token;
  options.tls = tls;
  absl::StatusOr<std::unique_ptr<HeadwayClient>> client = HeadwayClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

std::filesystem::path MakeTempDir() {
  char path[] = "/tmp/headway-ops-XXXXXX";
  return mkdtemp(path);
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::filesystem::path SlowBatchingStore(absl::Duration delay) {
  const std::filesystem::path store = CopyModelStore();
  std::ofstream(store / "digits" / "config.pbtxt", std::ios::app)
      << "batching { max_batch_size: 64 wait_for_full_batch: true max_queue_delay_us: "
      << absl::ToInt64Microseconds(delay) << " }\n";
  return store;
}

}  // namespace headway::testing
