// End to end, a server's life under load: graceful SIGTERM (draining, UNAVAILABLE for
// late calls), overload refused at once, faults in a forward pass answered INTERNAL
// or RESOURCE_EXHAUSTED while serving goes on, the load generator's window, and
// flags refused at start. Every test runs the real headway_server binary on
// localhost ports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/digits_data.h"
#include "tests/support/operations.h"
#include "tests/support/served.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using testing::CellOf;
using testing::ClassifyDigit;
using testing::Connect;
using ::testing::HasSubstr;
using testing::ServerProcess;
using testing::SlowBatchingStore;
using testing::WriteFile;

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
  // SIGTERM once all of them wait in the queue.
  ASSERT_TRUE(testing::WaitForMetricAtLeast((*server)->metrics_port(),
                                            "headway_requests_in_flight", kRequests,
                                            absl::Seconds(30)));
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

// Sends `calls` Classify calls at once on one connection to a server that holds every
// call for a second (a batch of up to 512 that waits to fill) and admits 260 at most;
// returns how many were refused RESOURCE_EXHAUSTED naming --max_requests_in_flight.
int RefusedOfABurstOnOneConnection(const std::vector<std::string>& flags, int calls) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::ofstream(store / "digits" / "config.pbtxt", std::ios::app)
      << "batching { max_batch_size: 512 wait_for_full_batch: true "
         "max_queue_delay_us: 1000000 max_queue_size: 1024 }\n";
  std::vector<std::string> server_flags = flags;
  server_flags.push_back("--max_requests_in_flight=260");
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(store, server_flags);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return -1;
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  // One call first: the client has the server's HTTP/2 settings before the burst.
  EXPECT_TRUE(client->Classify(ClassifyDigit(CellOf(0))).ok());
  std::atomic<int> refused{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < calls; ++i) {
    callers.emplace_back([&, i] {
      const absl::Status answer =
          client->Classify(ClassifyDigit(CellOf(i % 10))).status();
      if (answer.ok()) return;
      EXPECT_EQ(answer.code(), absl::StatusCode::kResourceExhausted) << answer;
      EXPECT_THAT(answer.message(), HasSubstr("--max_requests_in_flight"));
      ++refused;
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ((*server)->Stop(), 0);
  std::filesystem::remove_all(store);
  return refused;
}

// By default a connection has at most 256 calls open in the server: a burst of 300
// from one client leaves 44 waiting in that client, so a server that admits 260 at
// once refuses none of them. With no stream limit all 300 arrive and 40 are refused.
TEST(OverloadTest, AConnectionsCallsBeyond256WaitInItsClientByDefault) {
  EXPECT_EQ(RefusedOfABurstOnOneConnection({}, 300), 0);
  EXPECT_GT(RefusedOfABurstOnOneConnection({"--max_concurrent_streams=0"}, 300), 0);
}

// The first number after `key=` in `log`'s last line holding `event`, or -1.
double LastLoggedNumber(const std::string& log, absl::string_view event,
                        absl::string_view key) {
  const size_t line = log.rfind(event.data(), std::string::npos, event.size());
  if (line == std::string::npos) return -1;
  const size_t at = log.find(absl::StrCat(" ", key, "="), line);
  if (at == std::string::npos) return -1;
  return std::atof(log.c_str() + at + key.size() + 2);
}

// Memory a flood brought in goes back once it is over. Two calls hold the server's two
// slots for 5 s. Small calls, refused RESOURCE_EXHAUSTED every 50 ms, start the flood
// (FloodMemory measures it from its last look before the first refusal) and keep it
// going while 32 calls of 8 MB each are refused too: their bytes (over the 64 MB
// FloodMemory waits for) go back a second after the last refusal, logged as
// event=flood_memory_returned with resident memory falling.
TEST(OverloadTest, MemoryAFloodBroughtInGoesBackOnceItIsOver) {
  const std::filesystem::path store = SlowBatchingStore(absl::Seconds(5));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(store, {"--max_requests_in_flight=2", "--worker_threads=4"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  std::vector<std::thread> holders;
  for (int i = 0; i < 2; ++i) {
    holders.emplace_back([&, i] { (void)client->Classify(ClassifyDigit(CellOf(i))); });
  }
  ASSERT_TRUE(testing::WaitForMetricAtLeast(
      (*server)->metrics_port(), "headway_requests_in_flight", 2, absl::Seconds(30)));

  absl::Notification flood_over;
  std::atomic<int> small_refused{0};
  std::thread ticker([&] {
    std::unique_ptr<HeadwayClient> own = Connect((*server)->target());
    do {
      if (own->Classify(ClassifyDigit(CellOf(9))).status().code() ==
          absl::StatusCode::kResourceExhausted) {
        ++small_refused;
      }
    } while (!flood_over.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  });
  while (small_refused.load() == 0) absl::SleepFor(absl::Milliseconds(10));

  v1::ClassifyRequest heavy;
  heavy.set_model("digits");
  v1::Tensor* tensor = heavy.add_inputs()->mutable_tensor();
  tensor->set_dtype(v1::FLOAT32);
  for (int64_t d : {1, 20, 20}) tensor->add_shape(d);
  tensor->set_data(std::string(size_t{8} << 20, '\1'));
  std::vector<absl::Status> refused(32);
  std::vector<std::thread> flood;
  for (int i = 0; i < 8; ++i) {
    flood.emplace_back([&, i] {
      std::unique_ptr<HeadwayClient> own = Connect((*server)->target());
      for (int call = i; call < 32; call += 8) {
        refused[call] = own->Classify(heavy).status();
      }
    });
  }
  for (std::thread& caller : flood) caller.join();
  flood_over.Notify();
  ticker.join();
  for (std::thread& holder : holders) holder.join();
  for (const absl::Status& answer : refused) {
    EXPECT_EQ(answer.code(), absl::StatusCode::kResourceExhausted) << answer;
  }

  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while ((*server)->Log().find("event=flood_memory_returned") == std::string::npos &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const std::string log = (*server)->Log();
  ASSERT_THAT(log, HasSubstr("event=flood_memory_returned")) << log;
  const double before =
      LastLoggedNumber(log, "event=flood_memory_returned", "resident_mb_before");
  const double after =
      LastLoggedNumber(log, "event=flood_memory_returned", "resident_mb_after");
  EXPECT_GT(before, 0) << log;
  EXPECT_LT(after, before) << log;
  // Served on after the trim.
  EXPECT_TRUE(client->Classify(ClassifyDigit(CellOf(5))).ok());
  EXPECT_EQ((*server)->Stop(), 0);
  std::filesystem::remove_all(store);
}

TEST(LoadGeneratorTest, CountsCallsThatCompleteInsideTheWindow) {
  const std::filesystem::path store = SlowBatchingStore(absl::Seconds(1));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(store);
  ASSERT_TRUE(server.ok()) << server.status();
  LoadOptions load = testing::DigitLoad((*server)->target(), 2, absl::Seconds(10), 7);
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

// SIGHUP is a reload, as operators send one: the server reads its credential files
// and its model store again at once, and serves on. It used to end the process (the
// signal's default action), undrained.
TEST(ReloadSignalTest, SighupReadsTheCredentialsAndTheStoreAgainAndServesOn) {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path dir = testing::MakeTempDir();
  WriteFile(dir / "token", "first-token\n");
  // Nothing but the signal would look again within the test.
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(store, {"--admin_token_file=" + (dir / "token").string(),
                                   "--store_poll_interval=1h", "--store_watch=false",
                                   "--credentials_poll_interval=0"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<HeadwayClient> client = Connect((*server)->target());
  ASSERT_TRUE(client->Classify(ClassifyDigit(CellOf(4))).ok());

  std::filesystem::copy(store / "digits", store / "digits2",
                        std::filesystem::copy_options::recursive);
  std::string config;
  {
    std::ifstream in(store / "digits2" / "config.pbtxt");
    config.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t name = config.find("name: \"digits\"");
  ASSERT_NE(name, std::string::npos);
  config.replace(name, 15, "name: \"digits2\"");
  WriteFile(store / "digits2" / "config.pbtxt", config);
  WriteFile(dir / "token", "second-token\n");
  (*server)->Signal(SIGHUP);

  const auto serves_digits2 = [&] {
    absl::StatusOr<v1::ListModelsResponse> models = client->ListModels();
    if (!models.ok()) return false;
    for (const auto& model : models->models()) {
      if (model.name() == "digits2" && model.state() == "READY") return true;
    }
    return false;
  };
  bool loaded = false;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(60);
       !loaded && absl::Now() < give_up; absl::SleepFor(absl::Milliseconds(100))) {
    loaded = serves_digits2();
  }
  EXPECT_TRUE(loaded) << (*server)->Log();
  v1::LoadModelRequest load;
  load.set_model("digits");
  EXPECT_EQ(Connect((*server)->target(), "second-token")->LoadModel(load).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Connect((*server)->target(), "first-token")->LoadModel(load).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(client->Classify(ClassifyDigit(CellOf(4))).ok());
  EXPECT_THAT((*server)->Log(), HasSubstr("event=reload_requested signal=SIGHUP"));
  EXPECT_EQ((*server)->Stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST(StartupTest, BadSettingsRefuseToStartNamingTheFlag) {
  const std::pair<const char*, const char*> cases[] = {
      {"--malloc_retain_mb=-1", "--malloc_retain_mb must be 0 or more, not -1"},
      {"--grpc_max_connection_age=0s",
       "--grpc_max_connection_age must be at least 100ms (or inf), not 0"},
      {"--http_max_queue_wait=0s",
       "--http_max_queue_wait must be at least 1ms (or inf), not 0"},
      {"--http_threads=0", "--http_threads must be 1 or more, not 0"},
  };
  for (const auto& [flag, message] : cases) {
    // With an HTTP port, so that its flags are read.
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
        testing::ModelStore(), {flag, absl::StrCat("--http_port=", testing::FreePort())});
    ASSERT_FALSE(server.ok()) << flag;
    EXPECT_THAT(std::string(server.status().message()), HasSubstr(message));
  }
}

}  // namespace
}  // namespace headway
