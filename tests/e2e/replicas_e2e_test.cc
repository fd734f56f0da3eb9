// End to end, many replicas: three real servers on localhost ports behind one target
// list. The load generator spreads calls over all three with round robin; one server
// is killed mid-run and no call fails: retries and the balancer move the traffic to
// the two that are left.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/digits_data.h"
#include "tests/support/served.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

// Successful Classify calls a server has answered, from its /metrics.
int64_t AnsweredClassifies(const testing::ServerProcess& server) {
  const absl::StatusOr<std::string> metrics =
      testing::HttpGet(server.metrics_port(), "/metrics");
  if (!metrics.ok()) return -1;
  int64_t total = 0;
  for (absl::string_view line : absl::StrSplit(*metrics, '\n')) {
    if (!absl::StartsWith(line, "headway_requests_total{") ||
        !absl::StrContains(line, "code=\"OK\"") ||
        !absl::StrContains(line, "rpc=\"Classify\"")) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) total += value;
  }
  return total;
}

TEST(ReplicasTest, LoadSpreadsOverThreeServersAndSurvivesOneBeingKilled) {
  std::vector<std::unique_ptr<testing::ServerProcess>> servers;
  std::vector<std::string> addresses;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
        testing::ServerProcess::Start(testing::ModelStore(), {"--worker_threads=2"});
    ASSERT_TRUE(server.ok()) << server.status();
    addresses.push_back((*server)->target());
    servers.push_back(*std::move(server));
  }

  const LoadOptions load =
      testing::DigitLoad(absl::StrJoin(addresses, ","), 6, absl::Seconds(8), 2100);
  absl::StatusOr<LoadReport> report = absl::UnknownError("not run");
  std::thread generator([&] { report = RunLoad(load); });

  // All three answer (each has answered some calls: no fixed wait); then the first
  // one dies without warning.
  const absl::Time give_up = absl::Now() + absl::Seconds(6);
  bool all_answer = false;
  while (!all_answer && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
    all_answer = true;
    for (const auto& server : servers) all_answer &= AnsweredClassifies(*server) >= 10;
  }
  ASSERT_TRUE(all_answer) << "the load did not reach all three replicas";
  std::vector<int64_t> before_kill;
  for (const auto& server : servers) before_kill.push_back(AnsweredClassifies(*server));
  servers[0]->Signal(SIGKILL);
  generator.join();
  std::vector<int64_t> at_end;
  for (size_t i = 1; i < servers.size(); ++i) {
    at_end.push_back(AnsweredClassifies(*servers[i]));
  }

  ASSERT_TRUE(report.ok()) << report.status();
  std::cout << "answered before the kill: " << absl::StrJoin(before_kill, ", ")
            << "; by the two left at the end: " << absl::StrJoin(at_end, ", ")
            << "; load generator: " << report->ok << " ok, " << report->errors.size()
            << " error codes\n";
  EXPECT_GT(report->ok, 0);
  EXPECT_TRUE(report->errors.empty())
      << "failed calls: "
      << absl::StrJoin(report->errors, ", ", absl::PairFormatter("="));
  for (size_t i = 0; i < before_kill.size(); ++i) {
    EXPECT_GT(before_kill[i], 0) << "server " << i << " got no calls";
  }
  // The two that are left took the traffic after the kill.
  EXPECT_GT(at_end[0], before_kill[1]);
  EXPECT_GT(at_end[1], before_kill[2]);
}

}  // namespace
}  // namespace headway
