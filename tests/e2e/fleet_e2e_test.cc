// End to end, the model store as a fleet's source of truth: persisted changes are
// all-or-nothing on disk and in memory (an unwritable store, a kill at every step of a
// write), the user's config.pbtxt is never rewritten, replicas sharing a store follow
// each other's changes and refuse a broken one together, and models load on their own
// (a failed model does not stop the others; an empty store starts).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/channel.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/checkpoint_fixtures.h"
#include "tests/support/digits_data.h"
#include "tests/support/served.h"
#include "tests/support/server_process.h"

namespace headway {
namespace {

using ::testing::HasSubstr;
using testing::HeadStatusOf;
using ::testing::Not;
using testing::ReadBytes;
using testing::Serve;
using testing::Served;

constexpr char kPollFlag[] = "--store_poll_interval=500ms";
constexpr absl::Duration kPollInterval = absl::Milliseconds(500);

v1::ClassifyRequest ClassifyDigit(int cell, const std::string& head = "") {
  v1::ClassifyRequest request;
  request.set_model("digits");
  request.set_head(head);
  request.set_top_k(10);
  request.add_inputs()->set_image(testing::EncodePng(testing::DigitCell(cell)));
  return request;
}

// The digit head swapped for the parity head's bytes (2 classes), persisted.
v1::HotSwapHeadRequest PersistedParitySwap(const std::filesystem::path& store) {
  v1::HotSwapHeadRequest swap;
  swap.set_model("digits");
  swap.set_head("digit");
  swap.set_checkpoint(ReadBytes(store / "digits/heads/parity.pt"));
  swap.add_labels("even");
  swap.add_labels("odd");
  swap.set_persist(true);
  return swap;
}

// Files under `folder` whose names end in `suffix`.
std::vector<std::string> FilesEndingIn(const std::filesystem::path& folder,
                                       const std::string& suffix) {
  std::vector<std::string> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(folder, error)) {
    if (absl::EndsWith(entry.path().string(), suffix)) {
      found.push_back(entry.path().string());
    }
  }
  return found;
}

TEST(StoreWritesTest, AnUnwritableStoreFailsPersistedChangesAndChangesNothing) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::filesystem::permissions(store, std::filesystem::perms(0755));
  if (geteuid() != 0) {  // as root the server runs as nobody instead
    for (const auto& entry : std::filesystem::recursive_directory_iterator(store)) {
      if (entry.is_directory())
        std::filesystem::permissions(entry.path(), std::filesystem::perms(0555));
    }
    std::filesystem::permissions(store, std::filesystem::perms(0555));
  }
  const std::string config_before = ReadBytes(store / "digits/config.pbtxt");
  {
    Served served = Serve(store, {}, /*unprivileged=*/true);
    ASSERT_NE(served.client, nullptr);
    const absl::StatusOr<v1::HotSwapHeadResponse> swapped =
        served.client->HotSwapHead(PersistedParitySwap(store));
    ASSERT_EQ(swapped.status().code(), absl::StatusCode::kFailedPrecondition)
        << swapped.status();
    EXPECT_THAT(swapped.status().message(),
                HasSubstr((store / "digits/persisted").string()));
    // Nothing changed: the 10-class head, version 1, still answers.
    const absl::StatusOr<v1::ClassifyResponse> answer =
        served.client->Classify(ClassifyDigit(0));
    ASSERT_TRUE(answer.ok()) << answer.status();
    EXPECT_EQ(answer->head_version(), 1);
    EXPECT_EQ(answer->results(0).labels_size(), 10);

    // A removal that cannot be written leaves the head in place too.
    v1::HotSwapHeadRequest add = PersistedParitySwap(store);
    add.set_head("parity");
    add.set_persist(false);
    ASSERT_TRUE(served.client->HotSwapHead(add).ok());
    v1::RemoveHeadRequest remove;
    remove.set_model("digits");
    remove.set_head("parity");
    remove.set_persist(true);
    EXPECT_EQ(served.client->RemoveHead(remove).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(served.client->Classify(ClassifyDigit(0, "parity")).ok());
  }
  EXPECT_EQ(ReadBytes(store / "digits/config.pbtxt"), config_before);
  std::filesystem::permissions(store, std::filesystem::perms(0755));
  for (const auto& entry : std::filesystem::recursive_directory_iterator(store)) {
    if (entry.is_directory())
      std::filesystem::permissions(entry.path(), std::filesystem::perms(0755));
  }
  std::filesystem::remove_all(store);
}

TEST(StoreWritesTest, AKillAtEveryStepOfAPersistedSwapLeavesTheOldOrTheNewHead) {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::string config_before = ReadBytes(store / "digits/config.pbtxt");
  int new_heads_seen = 0;
  int step = 1;
  for (; step <= 30; ++step) {
    bool killed = false;
    {
      Served served = Serve(store, {absl::StrCat("--test_stop_after_store_step=", step)});
      ASSERT_NE(served.client, nullptr);
      const absl::StatusOr<v1::HotSwapHeadResponse> swapped =
          served.client->HotSwapHead(PersistedParitySwap(store));
      killed = !swapped.ok();
      if (killed) {
        EXPECT_EQ(swapped.status().code(), absl::StatusCode::kUnavailable)
            << "step " << step << ": " << swapped.status();
        EXPECT_THAT(served.server->Log(), HasSubstr("event=test_stop"));
      }
    }
    // A restart serves the old head (10 digits) or the new one (even/odd), whole.
    Served restarted = Serve(store);
    ASSERT_NE(restarted.client, nullptr) << "step " << step;
    const absl::StatusOr<v1::ClassifyResponse> answer =
        restarted.client->Classify(ClassifyDigit(0));
    ASSERT_TRUE(answer.ok()) << "step " << step << ": " << answer.status();
    const int classes = answer->results(0).labels_size();
    EXPECT_TRUE(classes == 10 || classes == 2) << "step " << step;
    if (classes == 2) {
      ++new_heads_seen;
      EXPECT_EQ(answer->results(0).labels(0).label(), "even") << "step " << step;
      EXPECT_EQ(answer->head_version(), 2) << "step " << step;
    } else {
      EXPECT_EQ(answer->head_version(), 1) << "step " << step;
    }
    // What the killed writer left half-done is gone after the restart.
    EXPECT_EQ(FilesEndingIn(store, ".tmp"), std::vector<std::string>())
        << "step " << step;
    EXPECT_EQ(ReadBytes(store / "digits/config.pbtxt"), config_before);
    std::filesystem::remove_all(store / "digits/persisted");
    if (!killed) break;  // every step was passed: the write completed
  }
  // The write has several steps, and a kill after the commit keeps the new head.
  EXPECT_GE(step, 8);
  EXPECT_GE(new_heads_seen, 2);
  std::filesystem::remove_all(store);
}

TEST(StoreWritesTest, PersistedHeadsKeepTheirOwnFilesAndTheUsersConfig) {
  // Another head's file is never overwritten: digit is swapped to parity's file, then
  // parity gets new bytes; a restart serves each head with its own content.
  const std::filesystem::path store = testing::CopyModelStore();
  const std::string config_before = ReadBytes(store / "digits/config.pbtxt");
  const std::string parity_before = ReadBytes(store / "digits/heads/parity.pt");
  {
    Served served = Serve(store);
    ASSERT_NE(served.client, nullptr);
    v1::HotSwapHeadRequest to_parity_file;
    to_parity_file.set_model("digits");
    to_parity_file.set_head("digit");
    to_parity_file.set_file("heads/parity.pt");
    to_parity_file.set_labels_file("heads/parity.labels");
    to_parity_file.set_persist(true);
    ASSERT_TRUE(served.client->HotSwapHead(to_parity_file).ok());
    v1::HotSwapHeadRequest three_classes;
    three_classes.set_model("digits");
    three_classes.set_head("parity");
    three_classes.set_checkpoint(
        ReadBytes(testing::SourcePath("tests/data/head_three_class.pt")));
    three_classes.set_persist(true);
    ASSERT_TRUE(served.client->HotSwapHead(three_classes).ok());
  }
  EXPECT_EQ(ReadBytes(store / "digits/config.pbtxt"), config_before);
  EXPECT_EQ(ReadBytes(store / "digits/heads/parity.pt"), parity_before);
  Served restarted = Serve(store);
  ASSERT_NE(restarted.client, nullptr);
  const absl::StatusOr<v1::HeadStatus> digit =
      HeadStatusOf(*restarted.client, "digits", "digit");
  const absl::StatusOr<v1::HeadStatus> parity =
      HeadStatusOf(*restarted.client, "digits", "parity");
  ASSERT_TRUE(digit.ok() && parity.ok());
  EXPECT_EQ(digit->num_classes(), 2);
  EXPECT_EQ(digit->version(), 2);
  EXPECT_EQ(parity->num_classes(), 3);
  EXPECT_EQ(parity->version(), 1);
  EXPECT_NE(digit->digest(), parity->digest());
  std::filesystem::remove_all(store);
}

// Heads each server serves for `head`, as "version:digest".
std::vector<std::string> ServedHeads(const std::vector<Served>& fleet,
                                     const std::string& head) {
  std::vector<std::string> heads;
  for (const Served& served : fleet) {
    const absl::StatusOr<v1::HeadStatus> status =
        HeadStatusOf(*served.client, "digits", head);
    heads.push_back(status.ok() ? absl::StrCat(status->version(), ":", status->digest())
                                : std::string(status.status().message()));
  }
  return heads;
}

TEST(FleetTest, ThreeReplicasServeAPersistedSwapAndRefuseABrokenHeadTogether) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::vector<Served> fleet;
  std::vector<std::string> targets;
  for (int i = 0; i < 3; ++i) {
    fleet.push_back(Serve(store, {kPollFlag}));
    ASSERT_NE(fleet.back().client, nullptr);
    targets.push_back(fleet.back().server->target());
  }
  const LoadOptions load =
      testing::DigitLoad(absl::StrJoin(targets, ","), 6, absl::Seconds(6), 2100);
  absl::StatusOr<LoadReport> report = absl::UnknownError("not run");
  std::thread generator([&] { report = RunLoad(load); });

  // A persisted swap sent to one replica reaches all three within two poll intervals.
  absl::SleepFor(absl::Seconds(1));
  const absl::StatusOr<v1::HotSwapHeadResponse> swapped =
      fleet[0].client->HotSwapHead(PersistedParitySwap(store));
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(swapped->head_version(), 2);
  // Two poll intervals, and a second's margin for a busy test machine.
  const absl::Time swapped_at = absl::Now();
  std::vector<std::string> rolled_out = ServedHeads(fleet, "digit");
  while (absl::Now() < swapped_at + 2 * kPollInterval + absl::Seconds(1) &&
         !(rolled_out[1] == rolled_out[0] && rolled_out[2] == rolled_out[0])) {
    absl::SleepFor(absl::Milliseconds(50));
    rolled_out = ServedHeads(fleet, "digit");
  }
  std::cout << "all three replicas served the swap after "
            << absl::FormatDuration(absl::Now() - swapped_at) << "\n";
  EXPECT_EQ(rolled_out[1], rolled_out[0]);
  EXPECT_EQ(rolled_out[2], rolled_out[0]);
  EXPECT_TRUE(absl::StartsWith(rolled_out[0], "2:")) << rolled_out[0];
  generator.join();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->ok, 0);
  EXPECT_TRUE(report->errors.empty()) << report->errors.size() << " error codes";

  // A broken head copied into the store (and named in config.pbtxt) is refused by all
  // three, which keep serving what they served, and say why.
  std::ofstream(store / "digits/heads/broken.pt") << "not a checkpoint";
  std::ofstream(store / "digits/config.pbtxt", std::ios::app)
      << "heads { name: \"broken\" file: \"heads/broken.pt\" }\n";
  const absl::Time broken_at = absl::Now();
  for (Served& served : fleet) {
    while (absl::Now() < broken_at + 2 * kPollInterval + absl::Seconds(1) &&
           !absl::StrContains(served.server->Log(), "event=store_change_refused")) {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  EXPECT_EQ(ServedHeads(fleet, "digit"), rolled_out);
  for (Served& served : fleet) {
    const absl::StatusOr<v1::ListModelsResponse> models = served.client->ListModels();
    ASSERT_TRUE(models.ok());
    ASSERT_EQ(models->models_size(), 1);
    EXPECT_EQ(models->models(0).state(), "READY");
    EXPECT_THAT(models->models(0).error(), HasSubstr("broken"));
    EXPECT_TRUE(served.client->Classify(ClassifyDigit(0)).ok());
    EXPECT_THAT(served.server->Log(), HasSubstr("event=store_change_refused"));
    const absl::StatusOr<std::string> metrics =
        testing::HttpGet(served.server->metrics_port(), "/metrics");
    ASSERT_TRUE(metrics.ok());
    EXPECT_THAT(*metrics, HasSubstr("headway_model_store_error{model=\"digits\"} 1"));
    EXPECT_THAT(*metrics, HasSubstr("headway_head_info{"));
    EXPECT_THAT(*metrics,
                HasSubstr(absl::StrCat("digest=\"", rolled_out[0].substr(2, 12), "\"")));
  }
  std::filesystem::remove_all(store);
}

// The local ports of this machine's established TCP connections to 127.0.0.1:`port`
// (the client ends), from /proc/net/tcp and tcp6 (gRPC connects over IPv6 sockets,
// to ::ffff:127.0.0.1).
std::set<int> ClientPortsTo(int port) {
  std::set<int> ports;
  const std::string loopback_port = absl::StrFormat("0100007F:%04X", port);
  for (const char* table_path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream table(table_path);
    std::string line;
    std::getline(table, line);  // the column names
    while (std::getline(table, line)) {
      // "sl local_address rem_address st ...", addresses as hex IP:port.
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 4 || !absl::EndsWith(fields[2], loopback_port) ||
          fields[3] != "01") {
        continue;
      }
      ports.insert(std::stoi(fields[1].substr(fields[1].find(':') + 1), nullptr, 16));
    }
  }
  return ports;
}

// A long-lived client is asked to reconnect every --grpc_max_connection_age (here
// 300 ms), so that it resolves its target again and finds replicas added since; calls
// in flight finish on the old connection and the next ones go out on a new one, so
// none fails.
TEST(FleetTest, ClientConnectionsAreRenewedWithoutFailingACall) {
  Served served = Serve(testing::ModelStore(), {"--grpc_max_connection_age=300ms"});
  ASSERT_NE(served.client, nullptr);
  const LoadOptions load =
      testing::DigitLoad(served.server->target(), 8, absl::Seconds(4), 2100);
  absl::StatusOr<LoadReport> report = absl::UnknownError("not run");
  std::thread generator([&] { report = RunLoad(load); });
  std::set<int> seen;
  for (int i = 0; i < 30; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    for (int port : ClientPortsTo(served.server->port())) seen.insert(port);
  }
  generator.join();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->ok, 0);
  EXPECT_TRUE(report->errors.empty()) << report->ToJson();
  // The test's own client and the load generator's channel, each renewed several
  // times in 3 s; without the flag, each keeps one connection.
  EXPECT_GE(seen.size(), 5u) << absl::StrJoin(seen, ",");
}

// Replicas on one host see each other's store writes through inotify: with an hour
// between polls, a persisted swap sent to one is served by the other within moments
// (the test allows 15 s); with the watch off, it is not.
TEST(FleetTest, AReplicaOnTheSameHostServesAPersistedSwapWithoutWaitingForAPoll) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::vector<Served> fleet;
  for (const char* watch :
       {"--store_watch=true", "--store_watch=true", "--store_watch=false"}) {
    fleet.push_back(Serve(store, {"--store_poll_interval=1h", watch}));
    ASSERT_NE(fleet.back().client, nullptr);
  }
  const std::vector<std::string> before = ServedHeads(fleet, "digit");
  const absl::StatusOr<v1::HotSwapHeadResponse> swapped =
      fleet[0].client->HotSwapHead(PersistedParitySwap(store));
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  const absl::Time swapped_at = absl::Now();
  std::vector<std::string> heads = ServedHeads(fleet, "digit");
  while (absl::Now() < swapped_at + absl::Seconds(15) && heads[1] != heads[0]) {
    absl::SleepFor(absl::Milliseconds(20));
    heads = ServedHeads(fleet, "digit");
  }
  std::cout << "the watching replica served the swap after "
            << absl::FormatDuration(absl::Now() - swapped_at) << "\n";
  EXPECT_TRUE(absl::StartsWith(heads[0], "2:")) << heads[0];
  EXPECT_EQ(heads[1], heads[0]);
  // The replica that only polls still serves the old head.
  EXPECT_EQ(heads[2], before[2]);
  std::filesystem::remove_all(store);
}

TEST(CliTest, ManagementCommandsGoToEveryReplicaTheTargetNames) {
  // A comma-separated list is split, a dns: name resolved, anything else kept whole.
  const absl::StatusOr<std::vector<ReplicaTarget>> listed =
      ReplicaTargets("127.0.0.1:1, 127.0.0.1:2");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[1].target, "127.0.0.1:2");
  const absl::StatusOr<std::vector<ReplicaTarget>> resolved =
      ReplicaTargets("dns:///localhost:1234");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  bool has_ipv4 = false;
  for (const ReplicaTarget& replica : *resolved) {
    has_ipv4 |= replica.target == "127.0.0.1:1234";
    EXPECT_EQ(replica.host_name, "localhost");
  }
  EXPECT_TRUE(has_ipv4);
  EXPECT_EQ(ReplicaTargets("dns:///no-such-host.invalid:1").status().code(),
            absl::StatusCode::kNotFound);

  // Two replicas of one store: an in-memory swap (adding a head) reaches both.
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path token = store.string() + ".token";
  std::vector<Served> fleet;
  fleet.push_back(Serve(store));
  ASSERT_NE(fleet[0].client, nullptr);
  std::ofstream(token) << fleet[0].server->admin_token();
  fleet.push_back(Serve(store, {"--admin_token_file=" + token.string()}));
  ASSERT_NE(fleet[1].client, nullptr);
  const std::string both =
      absl::StrCat(fleet[0].server->target(), ",", fleet[1].server->target());
  const auto cli = [&](const std::string& target, const std::string& arguments,
                       std::string* output) {
    return testing::RunCommand(
        absl::StrCat(HEADWAY_CLI_BINARY, " --timeout=5s --target=", target,
                     " --admin_token_file=", token.string(), " ", arguments, " 2>&1"),
        output);
  };
  std::string output;
  EXPECT_EQ(cli(both,
                "swap-head --model=digits --head=parity --file=heads/parity.pt "
                "--labels_file=heads/parity.labels",
                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("replica " + fleet[0].server->target()));
  EXPECT_THAT(output, HasSubstr("replica " + fleet[1].server->target()));
  for (const Served& served : fleet) {
    const absl::StatusOr<v1::HeadStatus> head =
        HeadStatusOf(*served.client, "digits", "parity");
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(head->num_classes(), 2);
  }

  // A replica that does not answer is named, and the exit code says not all did it.
  output.clear();
  const std::string with_dead = absl::StrCat(both, ",127.0.0.1:", testing::FreePort());
  EXPECT_EQ(cli(with_dead, "remove-head --model=digits --head=parity", &output), 1)
      << output;
  EXPECT_THAT(output, HasSubstr("failed on 1 of 3 replicas: 127.0.0.1:")) << output;
  for (const Served& served : fleet) {
    EXPECT_EQ(HeadStatusOf(*served.client, "digits", "parity").status().code(),
              absl::StatusCode::kNotFound);
  }

  // A persisted change is written once, by one replica; --json takes one replica.
  output.clear();
  EXPECT_EQ(cli(both,
                "swap-head --model=digits --head=parity --file=heads/parity.pt "
                "--labels_file=heads/parity.labels --persist",
                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("follow the store"));
  EXPECT_THAT(output, Not(HasSubstr("replica " + fleet[1].server->target())));
  output.clear();
  EXPECT_EQ(cli(both, "--json load --model=digits", &output), 2) << output;
  EXPECT_THAT(output, HasSubstr("names 2 replicas"));
  std::filesystem::remove_all(store);
  std::filesystem::remove(token);
}

TEST(ModelLoadingTest, AModelThatFailsToLoadIsReportedAndTheOthersServe) {
  const std::filesystem::path store = testing::CopyModelStore();
  std::filesystem::create_directories(store / "broken");
  std::ofstream(store / "broken/config.pbtxt")
      << "name: \"broken\"\nbackbone { file: \"missing.pt\" }\n"
         "input { channels: 1 height: 20 width: 20 }\n"
         "heads { name: \"h\" file: \"missing_head.pt\" }\n";
  {
    Served served = Serve(store);
    ASSERT_NE(served.client, nullptr);
    EXPECT_TRUE(served.client->Classify(ClassifyDigit(0)).ok());
    const absl::StatusOr<v1::ListModelsResponse> models = served.client->ListModels();
    ASSERT_TRUE(models.ok());
    std::map<std::string, v1::ModelStatus> by_name;
    for (const v1::ModelStatus& model : models->models()) by_name[model.name()] = model;
    EXPECT_EQ(by_name["digits"].state(), "READY");
    EXPECT_EQ(by_name["broken"].state(), "FAILED");
    EXPECT_THAT(by_name["broken"].error(), HasSubstr("missing.pt"));
    v1::ClassifyRequest to_broken = ClassifyDigit(0);
    to_broken.set_model("broken");
    const absl::Status refused = served.client->Classify(to_broken).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(refused.message(), HasSubstr("failed to load"));
    EXPECT_THAT(served.server->Log(), HasSubstr("event=model_load_failed"));
    EXPECT_EQ(served.client->CheckHealth("").value(),
              grpc::health::v1::HealthCheckResponse::SERVING);
    EXPECT_EQ(served.client->CheckHealth("broken").value(),
              grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  // --strict_startup keeps the all-or-nothing start.
  const absl::StatusOr<std::unique_ptr<testing::ServerProcess>> strict =
      testing::ServerProcess::Start(store, {"--strict_startup"});
  ASSERT_FALSE(strict.ok());
  EXPECT_THAT(strict.status().message(), HasSubstr("--strict_startup"));
  std::filesystem::remove_all(store);
}

TEST(ModelLoadingTest, AnEmptyStoreStartsAndServesAModelCopiedIntoIt) {
  const std::filesystem::path store = testing::CopyModelStore();
  const std::filesystem::path digits = store.string() + "-digits";
  std::filesystem::rename(store / "digits", digits);
  Served served = Serve(store, {kPollFlag});
  ASSERT_NE(served.client, nullptr);
  EXPECT_EQ(served.client->Classify(ClassifyDigit(0)).status().code(),
            absl::StatusCode::kNotFound);
  std::filesystem::rename(digits, store / "digits");
  absl::StatusOr<v1::ClassifyResponse> answer = absl::UnknownError("not asked");
  for (int i = 0; i < 40 && !answer.ok(); ++i) {
    absl::SleepFor(absl::Milliseconds(250));
    answer = served.client->Classify(ClassifyDigit(0));
  }
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).labels_size(), 10);
  // And a folder taken out of the store is unloaded.
  std::filesystem::rename(store / "digits", digits);
  absl::Status gone;
  for (int i = 0; i < 40 && gone.code() != absl::StatusCode::kNotFound; ++i) {
    absl::SleepFor(absl::Milliseconds(250));
    gone = served.client->Classify(ClassifyDigit(0)).status();
  }
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(digits);
  std::filesystem::remove_all(store);
}

TEST(ModelLoadingTest, ASigtermWhileModelsLoadStopsTheServerWithoutLoadingTheRest) {
  // The checkpoint store's two models take seconds each, loaded one at a time: the
  // signal lands during the first load, which finishes; the second never starts.
  char dir_template[] = "/tmp/headway-stop-XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  const pid_t pid =
      testing::Spawn({HEADWAY_SERVER_BINARY, "--host=127.0.0.1", "--port=0",
                      "--metrics_address=", "--parallel_loads=1",
                      "--model_store=" + (testing::CheckpointDir() / "store").string()},
                     dir / "server.log");
  ASSERT_GT(pid, 0);
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (ReadBytes(dir / "server.log").find("event=listening") == std::string::npos &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string log = ReadBytes(dir / "server.log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
  EXPECT_THAT(log, HasSubstr("event=draining"));
  EXPECT_THAT(log, HasSubstr("event=stopped"));
  EXPECT_THAT(log, Not(HasSubstr("event=serving")));
  size_t loads = 0;
  for (size_t at = log.find("event=model_loaded"); at != std::string::npos;
       at = log.find("event=model_loaded", at + 1)) {
    ++loads;
  }
  EXPECT_LE(loads, 1u) << log;
  std::filesystem::remove_all(dir);
}

TEST(CliTest, WaitsForAServerThatIsStillLoadingAndSaysWhatItWaitedFor) {
  // The checkpoint store's models take seconds to load; the CLI asks at once.
  char dir_template[] = "/tmp/headway-cli-XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  const int port = testing::FreePort();
  const pid_t pid =
      testing::Spawn({HEADWAY_SERVER_BINARY, "--host=127.0.0.1",
                      absl::StrCat("--port=", port), "--metrics_address=",
                      "--model_store=" + (testing::CheckpointDir() / "store").string()},
                     dir / "server.log");
  ASSERT_GT(pid, 0);
  std::string output;
  const int rc =
      testing::RunCommand(absl::StrCat(HEADWAY_CLI_BINARY, " --target=127.0.0.1:", port,
                                       " --timeout=120s models 2>&1"),
                          &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_THAT(output, HasSubstr("resnet18_training"));
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);

  // Nobody there: it gives up after --timeout, naming what it waited for.
  output.clear();
  EXPECT_NE(testing::RunCommand(absl::StrCat(HEADWAY_CLI_BINARY, " --target=127.0.0.1:",
                                             port, " --timeout=1s models 2>&1"),
                                &output),
            0);
  EXPECT_THAT(output, HasSubstr("waited 1s (--timeout)"));
  EXPECT_THAT(output, HasSubstr("SERVING"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace headway
