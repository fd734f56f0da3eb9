// End to end, what operators watch: Prometheus metrics (checked by promtool and
// scraped by a real Prometheus server) and health while models load and per model.
// Every test runs the real headway_server binary on localhost ports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/headway_client.h"
#include "tests/support/checkpoint_fixtures.h"
#include "tests/support/digits_data.h"
#include "tests/support/operations.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using testing::ClassifyDigit;
using testing::Connect;
using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::ServerProcess;
using testing::WriteFile;

TEST(MetricsTest, ExposesRequestsBatchesLoadsAndSwapsInPrometheusFormat) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore());
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client =
      Connect((*server)->target(), (*server)->admin_token());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Classify(ClassifyDigit(i)).ok());
  v1::ClassifyRequest unknown_head = ClassifyDigit(0);
  unknown_head.set_head("cats");
  EXPECT_EQ(client->Classify(unknown_head).status().code(), absl::StatusCode::kNotFound);
  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("parity");
  swap.set_file("heads/parity.pt");
  swap.set_labels_file("heads/parity.labels");
  ASSERT_TRUE(client->HotSwapHead(swap).ok());

  const absl::StatusOr<std::string> metrics =
      testing::HttpGet((*server)->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  for (
      const char* expected :
      {R"(headway_requests_total{code="OK",head="digit",model="digits",rpc="Classify"} 3)",
       R"(headway_requests_total{code="NOT_FOUND",head="",model="digits",rpc="Classify"} 1)",
       R"(headway_request_duration_seconds_count{model="digits",rpc="Classify"} 4)",
       R"(headway_batch_size_count{device="cpu",model="digits"} 3)",
       R"(headway_queue_duration_seconds_count{device="cpu",model="digits"} 3)",
       R"(headway_inference_duration_seconds_bucket{device="cpu",model="digits",le=)",
       R"(headway_model_loads_total{model="digits",result="ok"} 1)",
       R"(headway_head_swaps_total{model="digits",result="ok"} 1)",
       R"(headway_head_version{model="digits",device="cpu",head="parity"} 1)",
       R"(headway_queue_depth{model="digits",device="cpu"} 0)",
       "headway_requests_in_flight 0", "process_resident_memory_bytes "}) {
    EXPECT_THAT(*metrics, HasSubstr(expected));
  }

  // Debian's promtool checks names, units and format.
  const std::filesystem::path dir = MakeTempDir();
  WriteFile(dir / "metrics.txt", *metrics);
  std::string lint;
  const int rc = testing::RunCommand(
      absl::StrCat("promtool check metrics < ", (dir / "metrics.txt").string(), " 2>&1"),
      &lint);
  EXPECT_EQ(rc, 0) << lint;
  EXPECT_EQ(lint, "");
  std::filesystem::remove_all(dir);
}

// Clients that stop halfway through a scrape request, more of them than the metrics
// port has threads, neither keep Prometheus out nor stay connected: the server drops
// each (end of stream) well within 20 s. civetweb's own timeout is 30 s per read, so
// before it would have held every thread for that long.
TEST(MetricsTest, StalledClientsAreDroppedAndScrapesServedBesideThem) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->metrics_port();
  std::vector<int> stalled;
  for (int i = 0; i < 8; ++i) {
    // Half of them send nothing, half a request line.
    const std::string half = i % 2 == 0 ? "" : "GET /metrics HTTP/1.1\r\n";
    stalled.push_back(testing::ConnectTcp(port, absl::Seconds(20)));
    ASSERT_GE(stalled.back(), 0);
    ASSERT_EQ(send(stalled.back(), half.data(), half.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(half.size()));
  }
  const absl::StatusOr<testing::HttpReply> scrape = testing::HttpExchange(
      port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
      absl::Seconds(20));
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_EQ(scrape->status, 200);
  EXPECT_THAT(scrape->body, HasSubstr("headway_requests_in_flight"));
  for (int fd : stalled) {
    // Read to the end (a half-sent request may get an error answer first): 0 when the
    // server closed the connection, -1 (EAGAIN) when it was still open after 20 s.
    char answer[4096];
    ssize_t got = 0;
    do {
      got = recv(fd, answer, sizeof(answer), 0);
    } while (got > 0);
    EXPECT_EQ(got, 0) << strerror(errno);
    close(fd);
  }
}

TEST(MetricsTest, ARealPrometheusServerScrapesTheServer) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore());
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  ASSERT_TRUE(client->Classify(ClassifyDigit(7)).ok());

  const std::filesystem::path dir = MakeTempDir();
  WriteFile(dir / "prometheus.yml",
            absl::StrCat("global:\n  scrape_interval: 1s\n"
                         "scrape_configs:\n  - job_name: headway\n"
                         "    static_configs:\n      - targets: ['127.0.0.1:",
                         (*server)->metrics_port(), "']\n"));
  const int web_port = testing::FreePort();
  const pid_t prometheus = testing::Spawn(
      {"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
       "--storage.tsdb.path=" + (dir / "data").string(),
       absl::StrCat("--web.listen-address=127.0.0.1:", web_port)},
      dir / "prometheus.log");
  ASSERT_GT(prometheus, 0);

  // Read the counter back through Prometheus's query API.
  std::string answer;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> body = testing::HttpGet(
        web_port, "/api/v1/query?query=headway_requests_total%7Bcode%3D%22OK%22%7D");
    if (body.ok() && absl::StrContains(*body, "\"model\":\"digits\"")) {
      answer = *body;
      break;
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  kill(prometheus, SIGTERM);
  waitpid(prometheus, nullptr, 0);
  std::ifstream log(dir / "prometheus.log");
  const std::string log_text((std::istreambuf_iterator<char>(log)),
                             std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  ASSERT_THAT(answer, HasSubstr("\"status\":\"success\"")) << log_text;
  EXPECT_THAT(answer, HasSubstr("\"job\":\"headway\""));
  EXPECT_THAT(answer, HasSubstr("\"rpc\":\"Classify\""));
  EXPECT_THAT(answer, HasSubstr("\"1\"]"));  // the value: one Classify answered
}

TEST(HealthTest, NotServingUntilEveryModelIsLoadedThenServingPerModel) {
  // The checkpoint store's models take a while to load: health is asked meanwhile.
  const std::filesystem::path dir = MakeTempDir();
  const pid_t pid =
      testing::Spawn({HEADWAY_SERVER_BINARY, "--host=127.0.0.1", "--port=0",
                      "--port_file=" + (dir / "port").string(), "--metrics_address=",
                      "--model_store=" + (testing::CheckpointDir() / "store").string()},
                     dir / "server.log");
  ASSERT_GT(pid, 0);
  int port = 0;
  for (int i = 0; i < 1200 && port == 0; ++i) {
    std::ifstream(dir / "port") >> port;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GT(port, 0);
  std::unique_ptr<HeadwayClient> client = Connect(absl::StrCat("127.0.0.1:", port));

  std::vector<HealthCheckResponse::ServingStatus> seen;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    const absl::StatusOr<HealthCheckResponse::ServingStatus> status =
        client->CheckHealth("");
    ASSERT_TRUE(status.ok()) << status.status();
    if (seen.empty() || seen.back() != *status) seen.push_back(*status);
    if (*status == HealthCheckResponse::SERVING) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(seen, ::testing::ElementsAre(HealthCheckResponse::NOT_SERVING,
                                           HealthCheckResponse::SERVING));
  // Once SERVING, every model answers and has its own service name.
  for (const char* model : {"resnet18_training", "mobilenet_v3_small_cuda0"}) {
    EXPECT_EQ(*client->CheckHealth(model), HealthCheckResponse::SERVING) << model;
    v1::EmbedRequest embed;
    embed.set_model(model);
    v1::Input& input = *embed.add_inputs();
    input.mutable_tensor()->set_dtype(v1::FLOAT32);
    for (int64_t d : {3, 64, 64}) input.mutable_tensor()->add_shape(d);
    input.mutable_tensor()->set_data(std::string(3 * 64 * 64 * 4, '\0'));
    EXPECT_TRUE(client->Embed(embed).ok()) << model;
  }
  EXPECT_EQ(client->CheckHealth("no_such_model").status().code(),
            absl::StatusCode::kNotFound);
  kill(pid, SIGTERM);
  int exit_status = 0;
  waitpid(pid, &exit_status, 0);
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace headway
