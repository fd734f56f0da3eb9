// End to end, production operation: Prometheus metrics (checked by promtool and
// scraped by a real Prometheus server), health while loading and draining, graceful
// SIGTERM, TLS and mutual TLS, admin authorisation, and model-store path safety.
// Every test runs the real headway_server binary on localhost ports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/checkpoint_fixtures.h"
#include "tests/support/digits_data.h"
#include "tests/support/served.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using testing::ServerProcess;

// A held-out cell of `digit` that PyTorch classified right with both heads.
int CellOf(int digit) {
  for (const testing::HeldOutDigit& held_out : testing::ReadHeldOutSplit().digits) {
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
  request.add_inputs()->set_image(testing::EncodePng(testing::DigitCell(cell)));
  return request;
}

std::unique_ptr<HeadwayClient> Connect(const std::string& target,
                                       const std::string& admin_token = "",
                                       const TlsOptions& tls = TlsOptions(),
                                       bool wait_for_ready = true) {
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

// Load-generator options for two closed-loop callers classifying one digit PNG.
LoadOptions DigitLoad(const std::string& target) {
  return testing::DigitLoad(target, 2, absl::Seconds(10), 7);
}

// A model store copy whose digits model waits for full batches of 64 or a long queue
// delay (fixed-delay batching), so that requests sit in the queue for `delay`.
std::filesystem::path SlowBatchingStore(absl::Duration delay) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::ofstream(store / "digits" / "config.pbtxt", std::ios::app)
      << "batching { max_batch_size: 64 wait_for_full_batch: true max_queue_delay_us: "
      << absl::ToInt64Microseconds(delay) << " }\n";
  return store;
}

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

TEST(ShutdownTest, SigtermDrainsAndFinishesRequestsInFlight) {
  // Requests wait 1.5 s in the batch queue: SIGTERM lands while they are in flight.
  const std::filesystem::path store = SlowBatchingStore(absl::Milliseconds(1500));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      store, {"--drain_delay=1s", "--shutdown_grace=30s", "--worker_threads=4"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());

  constexpr int kRequests = 12;
  std::vector<absl::StatusOr<v1::ClassifyResponse>> answers(
      kRequests, absl::UnknownError("not answered"));
  std::vector<std::thread> callers;
  for (int i = 0; i < kRequests; ++i) {
    callers.emplace_back([&, i] { answers[i] = client->Classify(ClassifyDigit(i)); });
  }
  absl::SleepFor(absl::Milliseconds(400));
  (*server)->Signal(SIGTERM);
  // While draining, health says NOT_SERVING (as soon as the signal is handled) and
  // calls are still accepted.
  const absl::Time give_up = absl::Now() + absl::Seconds(1);
  while (*client->CheckHealth("") != HealthCheckResponse::NOT_SERVING &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(*client->CheckHealth(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(*client->CheckHealth("digits"), HealthCheckResponse::NOT_SERVING);
  for (std::thread& caller : callers) caller.join();

  int failed = 0;
  for (const auto& answer : answers) failed += !answer.ok();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(answers[0]->results(0).labels(0).label(), "0");
  const std::string log = (*server)->Log();
  EXPECT_EQ((*server)->Stop(), 0) << log;
  EXPECT_THAT(log, HasSubstr("event=draining"));
  EXPECT_THAT((*server)->Log(), HasSubstr("event=stopped"));
  std::filesystem::remove_all(store);
}

TEST(ShutdownTest, CallsArrivingWhileTheServerStopsGetUnavailableNeverCancelled) {
  // 32 closed-loop callers keep calls arriving while SIGTERM stops the server with no
  // drain delay. Each call is served or refused UNAVAILABLE, which clients retry;
  // CANCELLED (what gRPC answers for a call it drops on shutdown) never comes.
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore(), {"--drain_delay=0s"});
  ASSERT_TRUE(server.ok()) << server.status();
  LoadOptions load = testing::DigitLoad((*server)->target(), 32, absl::Seconds(3), 7);
  load.channels = 4;
  absl::StatusOr<LoadReport> report = absl::UnknownError("not run");
  std::thread loader([&] { report = RunLoad(load); });
  absl::SleepFor(absl::Seconds(1));
  const absl::Time signalled = absl::Now();
  EXPECT_EQ((*server)->Stop(), 0);
  // Printed, not asserted (timing is for benchmarks): the exit comes within a few
  // hundred milliseconds, the metrics endpoint closed too.
  std::cout << "exited " << absl::ToInt64Milliseconds(absl::Now() - signalled)
            << " ms after SIGTERM\n";
  loader.join();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->ok, 0) << report->ToJson();
  for (const auto& [code, count] : report->errors) {
    EXPECT_EQ(code, "UNAVAILABLE") << report->ToJson();
  }
}

// Every call takes the 1 s queue delay. Two calls go out at 0 s (done at 1 s, in the
// warm-up), two at 1 s (done at 2 s, inside the window 1.5-2.5 s) and two at 2 s
// (done after it). The two the window saw were sent before it opened: a generator
// that counted only calls sent inside the window would report none, and throughput
// low by latency/duration in every closed-loop run.
TEST(OverloadTest, CallsBeyondTheInFlightLimitAreRefusedAtOnceNamingIt) {
  // Admitted calls wait 1.5 s for a batch: the rest arrive while the server is full.
  const std::filesystem::path store = SlowBatchingStore(absl::Milliseconds(1500));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(store, {"--max_requests_in_flight=3", "--worker_threads=4"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  constexpr int kCalls = 8;
  std::vector<absl::Status> answers(kCalls);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back(
        [&, i] { answers[i] = client->Classify(ClassifyDigit(CellOf(i))).status(); });
  }
  for (std::thread& caller : callers) caller.join();
  int ok = 0;
  for (const absl::Status& answer : answers) {
    if (answer.ok()) {
      ++ok;
      continue;
    }
    EXPECT_EQ(answer.code(), absl::StatusCode::kResourceExhausted) << answer;
    EXPECT_THAT(answer.message(), HasSubstr("--max_requests_in_flight"));
  }
  EXPECT_EQ(ok, 3);
  // The slots are free again once those calls answered.
  EXPECT_TRUE(client->Classify(ClassifyDigit(CellOf(0))).ok());
  std::filesystem::remove_all(store);
}

// A copy of the bundled store plus "faulty": the digits heads over a backbone that
// fails at serving time on a marked input (tests/data/make_fixtures.py): a first value
// of 7 raises, 9 runs LibTorch's allocator out of memory.
std::filesystem::path FaultyModelStore() {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path faulty = store / "faulty";
  std::filesystem::create_directories(faulty);
  std::filesystem::copy_file(testing::SourcePath("tests/data/faulty_backbone.pt"),
                             faulty / "backbone.pt");
  std::filesystem::copy(store / "digits" / "heads", faulty / "heads");
  WriteFile(faulty / "config.pbtxt", R"(name: "faulty"
backbone { file: "backbone.pt" format: TORCHSCRIPT }
input { channels: 1 height: 20 width: 20 mean: 0 std: 1 }
heads { name: "digit" file: "heads/digit.pt" labels_file: "heads/digit.labels" }
default_head: "digit"
)");
  return store;
}

// One float32 input [1, 20, 20] for the faulty model, `first` in its first element.
v1::Input MarkedPixels(float first) {
  std::vector<float> values(400, 0.25f);
  values[0] = first;
  v1::Input input;
  input.mutable_tensor()->set_dtype(v1::FLOAT32);
  for (int64_t d : {1, 20, 20}) input.mutable_tensor()->add_shape(d);
  input.mutable_tensor()->set_data(std::string(
      reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return input;
}

TEST(ServerFaultTest, AFailingForwardPassIsInternalAndTheServerServesOn) {
  const std::filesystem::path store = FaultyModelStore();
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(store);
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  const auto classify = [&](float first) {
    v1::ClassifyRequest request;
    request.set_model("faulty");
    *request.add_inputs() = MarkedPixels(first);
    return client->Classify(request).status();
  };
  ASSERT_TRUE(classify(0.5f).ok());

  // The inputs are valid: a pass that fails is the server's fault, not the caller's.
  const absl::Status failed = classify(7.0f);
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("backbone forward"));
  EXPECT_THAT(failed.message(), HasSubstr("injected fault"));
  EXPECT_THAT(failed.message(), ::testing::Not(HasSubstr("Traceback")));

  v1::EmbedRequest embed;
  embed.set_model("faulty");
  *embed.add_inputs() = MarkedPixels(9.0f);
  const absl::Status exhausted = client->Embed(embed).status();
  EXPECT_EQ(exhausted.code(), absl::StatusCode::kResourceExhausted) << exhausted;
  EXPECT_THAT(exhausted.message(), HasSubstr("out of memory"));

  // Every worker lives on: the faulty model and the others keep answering.
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(classify(i % 2 == 0 ? 7.0f : 0.5f).code(),
              i % 2 == 0 ? absl::StatusCode::kInternal : absl::StatusCode::kOk);
  }
  EXPECT_TRUE(client->Classify(ClassifyDigit(CellOf(3))).ok());
  // Logged as the server's faults, apart from client errors.
  const std::string log = (*server)->Log();
  EXPECT_THAT(log, HasSubstr("event=request_failed_server_fault rpc=Classify"));
  EXPECT_THAT(log, HasSubstr("code=RESOURCE_EXHAUSTED"));
  EXPECT_EQ((*server)->Stop(), 0);
  std::filesystem::remove_all(store);
}

// --max_concurrent_streams=2: a connection's third call waits in its client until
// another ends, so three calls sent at once on one channel never share one batch;
// without the limit they arrive together and share one (MixedProtocolsTest).
TEST(OverloadTest, MaxConcurrentStreamsHoldsAConnectionsFurtherCallsInItsClient) {
  const std::filesystem::path store = SlowBatchingStore(absl::Milliseconds(300));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(store, {"--max_concurrent_streams=2"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  std::vector<absl::StatusOr<v1::ClassifyResponse>> answers(3, absl::UnknownError(""));
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([&, i] { answers[i] = client->Classify(ClassifyDigit(i)); });
  }
  for (std::thread& caller : callers) caller.join();
  for (const auto& answer : answers) EXPECT_TRUE(answer.ok()) << answer.status();
  const absl::StatusOr<std::string> metrics =
      testing::HttpGet((*server)->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics,
              HasSubstr(R"(headway_batch_size_sum{device="cpu",model="digits"} 3)"));
  EXPECT_THAT(*metrics,
              ::testing::Not(HasSubstr(
                  R"(headway_batch_size_count{device="cpu",model="digits"} 1)")));
  EXPECT_EQ((*server)->Stop(), 0);
  std::filesystem::remove_all(store);
}

TEST(LoadGeneratorTest, CountsCallsThatCompleteInsideTheWindow) {
  const std::filesystem::path store = SlowBatchingStore(absl::Seconds(1));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(store);
  ASSERT_TRUE(server.ok()) << server.status();
  LoadOptions load = DigitLoad((*server)->target());
  load.warmup = absl::Milliseconds(1500);
  load.duration = absl::Seconds(1);
  const absl::StatusOr<LoadReport> report = RunLoad(load);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->ok, 2) << report->ToJson();
  EXPECT_TRUE(report->errors.empty()) << report->ToJson();
  EXPECT_GE(report->p50, 1000) << report->ToJson();
  EXPECT_NEAR(report->throughput, 2.0, 0.01) << report->ToJson();
  std::filesystem::remove_all(store);
}

TEST(AdminAuthTest, ManagementNeedsTheTokenAndInferenceStaysOpen) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore());
  ASSERT_TRUE(server.ok()) << server.status();
  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("digit");
  swap.set_file("heads/parity.pt");
  swap.set_labels_file("heads/parity.labels");
  v1::LoadModelRequest load;
  load.set_model("digits");
  v1::UnloadModelRequest unload;
  unload.set_model("digits");
  v1::RemoveHeadRequest remove;
  remove.set_model("digits");
  remove.set_head("digit");

  std::unique_ptr<HeadwayClient> anonymous = Connect((*server)->target());
  std::unique_ptr<HeadwayClient> wrong = Connect((*server)->target(), "not-the-token");
  for (HeadwayClient* client : {anonymous.get(), wrong.get()}) {
    const absl::StatusCode expected = client == anonymous.get()
                                          ? absl::StatusCode::kUnauthenticated
                                          : absl::StatusCode::kPermissionDenied;
    EXPECT_EQ(client->HotSwapHead(swap).status().code(), expected);
    EXPECT_EQ(client->LoadModel(load).status().code(), expected);
    EXPECT_EQ(client->UnloadModel(unload).status().code(), expected);
    EXPECT_EQ(client->RemoveHead(remove).status().code(), expected);
    // Inference and listing stay open.
    EXPECT_TRUE(client->Classify(ClassifyDigit(4)).ok());
    EXPECT_TRUE(client->ListModels().ok());
  }
  // Nothing changed: still the 10-class head at version 1.
  const absl::StatusOr<v1::ClassifyResponse> answer =
      anonymous->Classify(ClassifyDigit(CellOf(4)));
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->head_version(), 1);
  EXPECT_EQ(answer->results(0).labels(0).label(), "4");

  std::unique_ptr<HeadwayClient> admin =
      Connect((*server)->target(), (*server)->admin_token());
  const absl::StatusOr<v1::HotSwapHeadResponse> swapped = admin->HotSwapHead(swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(swapped->head_version(), 2);
  EXPECT_THAT((*server)->Log(), HasSubstr("event=admin_refused"));
  EXPECT_THAT((*server)->Log(), HasSubstr("event=head_swapped model=digits head=digit"));
}

TEST(AdminAuthTest, ManagementIsOffWithoutAnAdminCredential) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore(), {"--admin_open=false"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target(), "any-token");
  v1::LoadModelRequest load;
  load.set_model("digits");
  const absl::Status status = client->LoadModel(load).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("management RPCs are off"));
  EXPECT_TRUE(client->Classify(ClassifyDigit(1)).ok());
}

// A CA, a server certificate for 127.0.0.1 and two client certificates, made with
// openssl for this test run.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(MakeTempDir());
    const std::string d = dir_->string();
    WriteFile(*dir_ / "server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string commands =
        absl::StrCat("cd ", d, " && openssl req -x509 ", key,
                     " -keyout ca.key -out ca.pem -days 2 -subj /CN=headway-test-ca");
    for (const char* name : {"server", "admin", "someone"}) {
      const std::string cn =
          std::string(name) == "server" ? "localhost" : absl::StrCat("headway-", name);
      absl::StrAppend(&commands, " && openssl req ", key, " -keyout ", name, ".key -out ",
                      name, ".csr -subj /CN=", cn, " && openssl x509 -req -in ", name,
                      ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out ", name,
                      ".pem",
                      std::string(name) == "server" ? " -extfile server.ext" : "");
    }
    std::string output;
    ASSERT_EQ(testing::RunCommand(absl::StrCat("(", commands, ") 2>&1"), &output), 0)
        << output;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static std::string File(const std::string& name) { return (*dir_ / name).string(); }

  static TlsOptions ClientTls(const std::string& client = "") {
    TlsOptions tls;
    tls.ca_file = File("ca.pem");
    if (!client.empty()) {
      tls.cert_file = File(client + ".pem");
      tls.key_file = File(client + ".key");
    }
    return tls;
  }

  static std::filesystem::path* dir_;
};

std::filesystem::path* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, TlsServerAnswersTlsClientsOnly) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + File("server.pem"), "--tls_key_file=" + File("server.key")});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> tls_client =
      Connect((*server)->target(), (*server)->admin_token(), ClientTls());
  const absl::StatusOr<v1::ClassifyResponse> answer =
      tls_client->Classify(ClassifyDigit(CellOf(4)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels(0).label(), "4");

  std::unique_ptr<HeadwayClient> plaintext =
      Connect((*server)->target(), "", TlsOptions(), /*wait_for_ready=*/false);
  EXPECT_EQ(plaintext->Classify(ClassifyDigit(4)).status().code(),
            absl::StatusCode::kUnavailable);

  // The CLI and the load generator speak TLS too.
  std::string output;
  const std::filesystem::path png = *dir_ / "digit4.png";
  WriteFile(png, testing::EncodePng(testing::DigitCell(CellOf(4))));
  ASSERT_EQ(testing::RunCommand(
                absl::StrCat(HEADWAY_CLI_BINARY, " --target=", (*server)->target(),
                             " --tls_ca_file=", File("ca.pem"), " classify --top_k=1 ",
                             png.string(), " 2>&1"),
                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr(": 4 ("));

  LoadOptions load = DigitLoad((*server)->target());
  load.tls = ClientTls();
  load.requests = 40;
  const absl::StatusOr<LoadReport> report = RunLoad(load);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->ok, 40);
  EXPECT_TRUE(report->errors.empty());
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateAndItsNameCanBeTheAdminCredential) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + File("server.pem"), "--tls_key_file=" + File("server.key"),
       "--tls_client_ca_file=" + File("ca.pem"), "--admin_client_cn=headway-admin"});
  ASSERT_TRUE(server.ok()) << server.status();

  std::unique_ptr<HeadwayClient> no_certificate =
      Connect((*server)->target(), "", ClientTls(), /*wait_for_ready=*/false);
  EXPECT_EQ(no_certificate->Classify(ClassifyDigit(4)).status().code(),
            absl::StatusCode::kUnavailable);

  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("parity");
  swap.set_file("heads/parity.pt");
  swap.set_labels_file("heads/parity.labels");

  std::unique_ptr<HeadwayClient> someone =
      Connect((*server)->target(), "", ClientTls("someone"));
  EXPECT_TRUE(someone->Classify(ClassifyDigit(4)).ok());
  const absl::Status refused = someone->HotSwapHead(swap).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("\"headway-someone\" is not an admin"));

  std::unique_ptr<HeadwayClient> admin =
      Connect((*server)->target(), "", ClientTls("admin"));
  const absl::StatusOr<v1::HotSwapHeadResponse> swapped = admin->HotSwapHead(swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  v1::ClassifyRequest parity = ClassifyDigit(CellOf(4));
  parity.set_head("parity");
  const absl::StatusOr<v1::ClassifyResponse> answer = someone->Classify(parity);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels(0).label(), "even");
}

// The container image's health check: a mutual-TLS server on its TCP port also
// answers plaintext on its local socket, where the CLI needs neither the port nor a
// certificate. A socket it cannot create is skipped with a warning.
TEST_F(TlsTest, ALocalSocketAnswersTheHealthCheckOfAMutualTlsServer) {
  const std::filesystem::path dir = MakeTempDir();
  const std::string socket = (dir / "headway.sock").string();
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      testing::ModelStore(),
      {"--tls_cert_file=" + File("server.pem"), "--tls_key_file=" + File("server.key"),
       "--tls_client_ca_file=" + File("ca.pem"), "--local_socket=" + socket});
  ASSERT_TRUE(server.ok()) << server.status();
  std::string output;
  EXPECT_EQ(testing::RunCommand(absl::StrCat(HEADWAY_CLI_BINARY, " --target=unix:",
                                             socket, " --timeout=20s health 2>&1"),
                                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("SERVING"));
  // Plaintext TCP is still refused: only the socket skips TLS.
  EXPECT_NE(testing::RunCommand(
                absl::StrCat(HEADWAY_CLI_BINARY, " --target=", (*server)->target(),
                             " --timeout=2s health 2>&1"),
                &output),
            0);
  std::unique_ptr<HeadwayClient> local = Connect("unix:" + socket);
  const absl::StatusOr<v1::ClassifyResponse> answer =
      local->Classify(ClassifyDigit(CellOf(4)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels(0).label(), "4");
  EXPECT_EQ((*server)->Stop(), 0);

  absl::StatusOr<std::unique_ptr<ServerProcess>> skipped =
      ServerProcess::Start(testing::ModelStore(),
                           {"--local_socket=" + (dir / "absent/headway.sock").string()});
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_THAT((*skipped)->Log(), HasSubstr("event=local_socket_skipped"));
  EXPECT_TRUE(Connect((*skipped)->target())->Classify(ClassifyDigit(CellOf(4))).ok());
  std::filesystem::remove_all(dir);
}

TEST(StartupTest, ANegativeMallocRetentionRefusesToStartNamingTheFlag) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(testing::ModelStore(), {"--malloc_retain_mb=-1"});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("--malloc_retain_mb must be 0 or more, not -1"));
}

TEST(PathSafetyTest, SymbolicLinksOutOfTheModelFolderAreRefused) {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path outside = MakeTempDir();
  std::filesystem::copy_file(store / "digits" / "heads" / "parity.pt",
                             outside / "parity.pt");
  std::filesystem::copy_file(store / "digits" / "heads" / "parity.labels",
                             outside / "parity.labels");
  const std::filesystem::path heads = store / "digits" / "heads";
  std::filesystem::create_symlink(outside / "parity.pt", heads / "escape.pt");
  std::filesystem::create_symlink(outside / "parity.labels", heads / "escape.labels");
  std::filesystem::create_symlink(outside, heads / "elsewhere");
  // A link that stays inside the folder is fine.
  std::filesystem::create_symlink("parity.pt", heads / "inside.pt");

  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(store);
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> admin =
      Connect((*server)->target(), (*server)->admin_token());
  auto swap = [&](const std::string& file, const std::string& labels_file) {
    v1::HotSwapHeadRequest request;
    request.set_model("digits");
    request.set_head("parity");
    request.set_file(file);
    request.set_labels_file(labels_file);
    return admin->HotSwapHead(request).status();
  };
  EXPECT_EQ(swap("heads/escape.pt", "heads/parity.labels").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(swap("heads/parity.pt", "heads/escape.labels").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(swap("heads/elsewhere/parity.pt", "").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(swap("heads/escape.pt", "").message(),
              HasSubstr("leads outside the model's folder"));
  EXPECT_EQ(swap((outside / "parity.pt").string(), "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(swap("../digits/heads/parity.pt", "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(swap("heads/inside.pt", "heads/parity.labels").ok());
  v1::LoadModelRequest load;
  load.set_model("../digits");
  EXPECT_EQ(admin->LoadModel(load).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(store);
  std::filesystem::remove_all(outside);
}

}  // namespace
}  // namespace headway
