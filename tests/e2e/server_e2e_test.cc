// End to end: the real headway_server binary on a free localhost port, serving the
// bundled model store, driven by the real client library and CLI over TCP.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "tests/support/digits_data.h"
#include "tests/support/server_process.h"
#include "tests/support/test_files.h"

namespace headway {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

v1::Input PngInput(int cell) {
  v1::Input input;
  input.set_image(testing::EncodePng(testing::DigitCell(cell)));
  return input;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
        testing::ServerProcess::Start(testing::ModelStore(), {"--worker_threads=2"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    HeadwayClient::Options options;
    options.target = server_->target();
    options.timeout = absl::Seconds(60);
    options.admin_token = server_->admin_token();
    absl::StatusOr<std::unique_ptr<HeadwayClient>> client =
        HeadwayClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // Classifies every held-out digit with `head`, 50 per request; returns the share of
  // top-1 labels equal to `truth(digit)` and counts disagreements with PyTorch's
  // `pytorch(digit)` prediction in `disagreements`.
  template <typename Truth, typename PyTorch>
  double HeldOutAccuracy(const std::string& head, Truth truth, PyTorch pytorch,
                         int* disagreements) {
    const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
    int correct = 0;
    *disagreements = 0;
    for (size_t start = 0; start < split.digits.size(); start += 50) {
      v1::ClassifyRequest request;
      request.set_model("digits");
      request.set_head(head);
      request.set_top_k(1);
      const size_t end = std::min(split.digits.size(), start + 50);
      for (size_t i = start; i < end; ++i)
        *request.add_inputs() = PngInput(split.digits[i].cell);
      const absl::StatusOr<v1::ClassifyResponse> response = client_->Classify(request);
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) return 0;
      for (size_t i = start; i < end; ++i) {
        const int predicted = response->results(i - start).labels(0).index();
        correct += predicted == truth(split.digits[i]);
        *disagreements += predicted != pytorch(split.digits[i]);
      }
    }
    return static_cast<double>(correct) / split.digits.size();
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<HeadwayClient> client_;
};

TEST_F(ServerTest, HealthIsServingAndModelsAreListed) {
  EXPECT_EQ(*client_->CheckHealth(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(*client_->CheckHealth("digits"), HealthCheckResponse::SERVING);
  EXPECT_EQ(client_->CheckHealth("nope").status().code(), absl::StatusCode::kNotFound);

  const absl::StatusOr<v1::ListModelsResponse> models = client_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models_size(), 1);
  const v1::ModelStatus& digits = models->models(0);
  EXPECT_EQ(digits.name(), "digits");
  EXPECT_EQ(digits.device(), "cpu");
  EXPECT_EQ(digits.state(), "READY");
  EXPECT_EQ(digits.feature_dim(), 64);
  ASSERT_EQ(digits.heads_size(), 1);
  EXPECT_EQ(digits.heads(0).name(), "digit");
  EXPECT_EQ(digits.heads(0).num_classes(), 10);
  EXPECT_TRUE(digits.heads(0).is_default());
}

TEST_F(ServerTest, HeldOutDigitsGetTheAccuracyTrainingReported) {
  int disagreements = 0;
  const double accuracy = HeldOutAccuracy(
      "", [](const auto& d) { return d.label; },
      [](const auto& d) { return d.digit_prediction; }, &disagreements);
  const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
  std::cout << "served held-out accuracy " << accuracy << " (training reported "
            << split.digit_accuracy << "), " << disagreements
            << " disagreements with PyTorch on " << split.digits.size() << " digits\n";
  EXPECT_NEAR(accuracy, split.digit_accuracy, 0.0015);
  EXPECT_LE(disagreements, 1);
}

TEST_F(ServerTest, EmbedGivesTheSameVectorForPngAndEquivalentTensors) {
  const cv::Mat digit = testing::DigitCell(4242);
  v1::EmbedRequest request;
  request.set_model("digits");
  *request.add_inputs() = PngInput(4242);
  // The same pixels as a uint8 tensor [H, W] ...
  v1::Tensor* pixels = request.add_inputs()->mutable_tensor();
  pixels->set_dtype(v1::UINT8);
  pixels->add_shape(20);
  pixels->add_shape(20);
  pixels->set_data(std::string(reinterpret_cast<const char*>(digit.data), 400));
  // ... and as the preprocessed float32 tensor [1, 20, 20].
  std::vector<float> normalised;
  for (int i = 0; i < 400; ++i) {
    normalised.push_back((digit.data[i] / 255.0f - testing::DigitsMean()) /
                         testing::DigitsStd());
  }
  v1::Tensor* preprocessed = request.add_inputs()->mutable_tensor();
  preprocessed->set_dtype(v1::FLOAT32);
  for (int d : {1, 20, 20}) preprocessed->add_shape(d);
  preprocessed->set_data(
      std::string(reinterpret_cast<const char*>(normalised.data()), 1600));

  const absl::StatusOr<v1::EmbedResponse> response = client_->Embed(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->model(), "digits");
  EXPECT_EQ(response->model_version(), 1);
  EXPECT_EQ(response->dimension(), 64);
  ASSERT_EQ(response->embeddings_size(), 3);
  const auto& png = response->embeddings(0).values();
  ASSERT_EQ(png.size(), 64);
  EXPECT_THAT(response->embeddings(1).values(), ::testing::ElementsAreArray(png));
  for (int i = 0; i < 64; ++i) {
    EXPECT_NEAR(response->embeddings(2).values(i), png[i], 1e-4) << i;
  }

  request.set_l2_normalize(true);
  const absl::StatusOr<v1::EmbedResponse> unit = client_->Embed(request);
  ASSERT_TRUE(unit.ok()) << unit.status();
  double norm = 0;
  for (float v : unit->embeddings(0).values()) norm += v * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

TEST_F(ServerTest, HotSwapHeadChangesLabelsAndRefusesAMismatchedHead) {
  v1::HotSwapHeadRequest to_parity;
  to_parity.set_model("digits");
  to_parity.set_head("digit");
  to_parity.set_file("heads/parity.pt");
  to_parity.set_labels_file("heads/parity.labels");
  absl::StatusOr<v1::HotSwapHeadResponse> swapped = client_->HotSwapHead(to_parity);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(swapped->head_version(), 2);
  EXPECT_EQ(swapped->num_classes(), 2);

  v1::ClassifyRequest request;
  request.set_model("digits");
  *request.add_inputs() = PngInput(100);
  absl::StatusOr<v1::ClassifyResponse> response = client_->Classify(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->head_version(), 2);
  ASSERT_EQ(response->results(0).labels_size(), 2);
  std::set<std::string> labels;
  for (const auto& label : response->results(0).labels()) labels.insert(label.label());
  EXPECT_EQ(labels, (std::set<std::string>{"even", "odd"}));

  int disagreements = 0;
  const double parity_accuracy = HeldOutAccuracy(
      "", [](const auto& d) { return d.label % 2; },
      [](const auto& d) { return d.parity_prediction; }, &disagreements);
  EXPECT_NEAR(parity_accuracy, testing::ReadHeldOutSplit().parity_accuracy, 0.0015);
  EXPECT_LE(disagreements, 1);

  // Back to ten digits from checkpoint bytes sent in the request, labels inline.
  v1::HotSwapHeadRequest to_digit;
  to_digit.set_model("digits");
  to_digit.set_head("digit");
  to_digit.set_checkpoint(
      testing::ReadBytes(testing::ModelStore() / "digits/heads/digit.pt"));
  for (int d = 0; d < 10; ++d) to_digit.add_labels(absl::StrCat("digit-", d));
  swapped = client_->HotSwapHead(to_digit);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(swapped->head_version(), 3);

  v1::HotSwapHeadRequest wrong_dim = to_digit;
  wrong_dim.clear_labels();
  wrong_dim.set_checkpoint(
      testing::ReadBytes(testing::SourcePath("tests/data/head_wrong_dim.pt")));
  const absl::StatusOr<v1::HotSwapHeadResponse> refused = client_->HotSwapHead(wrong_dim);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("takes 32 features; the backbone gives 64"));

  response = client_->Classify(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->head_version(), 3);
  EXPECT_EQ(response->results(0).labels(0).label(), "digit-0");  // cell 100 is a zero
}

TEST_F(ServerTest, RequestsInFlightDuringSwapsAllAnswer) {
  v1::HotSwapHeadRequest to_parity;
  to_parity.set_model("digits");
  to_parity.set_head("digit");
  to_parity.set_file("heads/parity.pt");
  to_parity.set_labels_file("heads/parity.labels");
  v1::HotSwapHeadRequest to_digit = to_parity;
  to_digit.set_file("heads/digit.pt");
  to_digit.set_labels_file("heads/digit.labels");
  const std::set<std::string> parity_labels = {"even", "odd"};

  std::atomic<bool> done{false};
  std::atomic<int> answered{0}, failed{0}, mislabelled{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      v1::ClassifyRequest request;
      request.set_model("digits");
      request.set_top_k(2);
      *request.add_inputs() = PngInput(1000 + t);
      while (!done) {
        const absl::StatusOr<v1::ClassifyResponse> response = client_->Classify(request);
        if (!response.ok()) {
          ++failed;
          continue;
        }
        // Version 1, 3, 5, ... is the digit head; 2, 4, ... the parity head.
        const bool parity = response->head_version() % 2 == 0;
        for (const auto& label : response->results(0).labels()) {
          mislabelled += (parity_labels.count(label.label()) == 1) != parity;
        }
        ++answered;
      }
    });
  }
  int swaps = 0;
  for (; swaps < 300; ++swaps) {
    const absl::StatusOr<v1::HotSwapHeadResponse> swapped =
        client_->HotSwapHead(swaps % 2 == 0 ? to_parity : to_digit);
    if (!swapped.ok()) {
      ADD_FAILURE() << "swap " << swaps << ": " << swapped.status();
      break;
    }
  }
  done = true;
  for (std::thread& thread : clients) thread.join();
  std::cout << swaps << " swaps, " << answered << " requests answered, " << failed
            << " failed\n";
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(mislabelled, 0);
  EXPECT_GT(answered, 0);
}

TEST_F(ServerTest, CliClassifiesADigitImage) {
  const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
  const auto digit =
      std::find_if(split.digits.begin(), split.digits.end(),
                   [](const auto& d) { return d.label == 7 && d.digit_prediction == 7; });
  ASSERT_NE(digit, split.digits.end());
  const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                     absl::StrCat("headway-seven-", getpid(), ".png");
  cv::imwrite(file.string(), testing::DigitCell(digit->cell));
  const std::string cli =
      absl::StrCat(HEADWAY_CLI_BINARY, " --target=", server_->target());

  std::string output;
  EXPECT_EQ(testing::RunCommand(absl::StrCat(cli, " classify --top_k=2 ", file.string()),
                                &output),
            0);
  EXPECT_THAT(output, HasSubstr(absl::StrCat(file.string(), ": 7 (")));
  output.clear();
  EXPECT_EQ(
      testing::RunCommand(absl::StrCat(cli, " --json classify ", file.string()), &output),
      0);
  EXPECT_THAT(output, HasSubstr("\"label\": \"7\""));
  output.clear();
  EXPECT_EQ(testing::RunCommand(absl::StrCat(cli, " health"), &output), 0);
  EXPECT_THAT(output, HasSubstr("SERVING"));
  output.clear();
  EXPECT_EQ(testing::RunCommand(absl::StrCat(cli, " embed ", file.string()), &output), 0);
  EXPECT_THAT(output, HasSubstr("dimension 64"));
  output.clear();
  EXPECT_NE(
      testing::RunCommand(
          absl::StrCat(cli, " classify --model=nope ", file.string(), " 2>&1"), &output),
      0);
  EXPECT_THAT(output, HasSubstr("NOT_FOUND"));
  std::filesystem::remove(file);
}

TEST_F(ServerTest, CliNamesAnImageFileItCannotReadAndWhy) {
  const std::string cli =
      absl::StrCat(HEADWAY_CLI_BINARY, " --target=", server_->target());
  const std::filesystem::path folder = std::filesystem::temp_directory_path();
  const std::filesystem::path missing = folder / absl::StrCat("headway-none-", getpid());

  std::string output;
  EXPECT_EQ(testing::RunCommand(absl::StrCat(cli, " classify ", folder.string(), " 2>&1"),
                                &output),
            2);
  EXPECT_THAT(output, HasSubstr(absl::StrCat("INVALID_ARGUMENT: ", folder.string(),
                                             " is a folder")));
  output.clear();
  EXPECT_EQ(testing::RunCommand(absl::StrCat(cli, " embed ", missing.string(), " 2>&1"),
                                &output),
            1);
  EXPECT_THAT(output, HasSubstr(absl::StrCat("NOT_FOUND: cannot open ", missing.string(),
                                             ": No such file or directory")));
}

TEST_F(ServerTest, LoadGeneratorDrivesTheServer) {
  LoadOptions options;
  options.target = server_->target();
  options.inputs = {PngInput(7), PngInput(3007)};
  options.concurrency = 4;
  options.channels = 2;
  options.requests = 300;
  options.duration = absl::Seconds(60);
  options.warmup = absl::ZeroDuration();
  options.progress = false;
  absl::StatusOr<LoadReport> closed = RunLoad(options);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(closed->ok, 300);
  EXPECT_TRUE(closed->errors.empty());
  EXPECT_GT(closed->throughput, 0);
  EXPECT_LE(closed->p50, closed->p99);
  EXPECT_LE(closed->p99, closed->max);
  EXPECT_THAT(closed->ToJson(), HasSubstr("\"p99.9\""));

  // Every RPC the generator speaks reaches its method (a wrong one is UNIMPLEMENTED).
  options.requests = 20;
  for (const std::string rpc : {"embed", "health"}) {
    options.rpc = rpc;
    absl::StatusOr<LoadReport> other = RunLoad(options);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(other->ok, 20) << rpc;
    EXPECT_TRUE(other->errors.empty()) << rpc << ": " << other->ToJson();
  }

  options.rpc = "classify";
  options.rate = 100;
  options.poisson = true;
  options.requests = 50;
  options.model = "nope";  // every call fails: counted by status code
  absl::StatusOr<LoadReport> open = RunLoad(options);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(open->ok, 0);
  EXPECT_EQ(open->errors.at("NOT_FOUND"), 50);
  // Each code keeps its first distinct messages.
  ASSERT_EQ(open->error_messages.at("NOT_FOUND").size(), 1u);
  EXPECT_THAT(open->error_messages.at("NOT_FOUND")[0], HasSubstr("nope"));
  EXPECT_THAT(open->ToText(), HasSubstr("NOT_FOUND: "));
  EXPECT_THAT(open->ToJson(), HasSubstr("\"error_messages\": {\"NOT_FOUND\": [\""));
}

// The binary as a user runs it: images from a folder, a sweep over two concurrencies
// as CSV on stdout, progress as plain lines on a stderr that is not a terminal, and an
// unknown model's errors with the server's message.
TEST_F(ServerTest, LoadGeneratorSweepsFoldersAndPrintsCsvJsonAndPlainProgress) {
  char dir_template[] = "/tmp/headway-loadgen-XXXXXX";
  const std::filesystem::path folder = mkdtemp(dir_template);
  for (int cell : {7, 3007}) {
    std::ofstream(folder / absl::StrCat(cell, ".png"), std::ios::binary)
        << testing::EncodePng(testing::DigitCell(cell));
  }
  const std::string loadgen =
      absl::StrCat(HEADWAY_LOADGEN_BINARY, " --target=", server_->target(),
                   " --images=", folder.string(), " --duration=2s --warmup=0.5s");
  std::string csv;
  ASSERT_EQ(testing::RunCommand(absl::StrCat(loadgen, " --concurrency=1,4 --format=csv ",
                                             "2>", folder.string(), "-progress.txt"),
                                &csv),
            0)
      << csv;
  const std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << csv;
  EXPECT_TRUE(absl::StartsWith(lines[0], "concurrency,seconds,ok,errors,")) << csv;
  EXPECT_TRUE(absl::StartsWith(lines[1], "1,")) << csv;
  EXPECT_TRUE(absl::StartsWith(lines[2], "4,")) << csv;
  const std::string progress = testing::ReadBytes(folder.string() + "-progress.txt");
  EXPECT_THAT(progress, HasSubstr("measure ok="));
  EXPECT_THAT(progress, HasSubstr("rate="));
  EXPECT_THAT(progress, ::testing::Not(HasSubstr("\r")));

  std::string json;
  EXPECT_EQ(testing::RunCommand(
                absl::StrCat(loadgen, " --model=cats --format=json ", "--progress=false"),
                &json),
            1);
  EXPECT_THAT(json, HasSubstr("{\"concurrency\": 4, \"seconds\": "));
  EXPECT_THAT(json, HasSubstr("\"error_messages\": {\"NOT_FOUND\": [\""));
  EXPECT_THAT(json, HasSubstr("cats"));
  std::filesystem::remove_all(folder);
  std::filesystem::remove(folder.string() + "-progress.txt");
}

TEST_F(ServerTest, SigtermStopsTheServerCleanly) { EXPECT_EQ(server_->Stop(), 0); }

// The README's example images say what the README says they do: white digits on
// black are read, the same 7 inverted is not.
TEST_F(ServerTest, TheReadmesExampleImagesClassifyAsTheReadmeSays) {
  std::string output;
  ASSERT_EQ(
      testing::RunCommand(
          absl::StrCat(
              HEADWAY_CLI_BINARY, " --target=", server_->target(), " classify --top_k=1 ",
              testing::SourcePath("examples/images/seven.png").string(), " ",
              testing::SourcePath("examples/images/two.png").string(), " ",
              testing::SourcePath("examples/images/seven_black_on_white.png").string()),
          &output),
      0)
      << output;
  EXPECT_THAT(output, HasSubstr("seven.png: 7 ("));
  EXPECT_THAT(output, HasSubstr("two.png: 2 ("));
  EXPECT_THAT(output, HasSubstr("seven_black_on_white.png: 8 ("));
}

// --json: stdout is one JSON object for every command, and for errors too.
TEST_F(ServerTest, CliJsonIsValidJsonForEveryCommandAndForErrors) {
  const std::string token_file =
      (std::filesystem::temp_directory_path() / absl::StrCat("headway-json-", getpid()))
          .string();
  std::ofstream(token_file) << server_->admin_token() << "\n";
  const std::string cli =
      absl::StrCat(HEADWAY_CLI_BINARY, " --target=", server_->target(),
                   " --admin_token_file=", token_file, " --json ");
  const struct {
    std::string command;
    int rc;
    std::string field;
  } cases[] = {
      {"health", 0, "status"},
      {"models", 0, "models"},
      {"describe digits", 0, "feature_dim"},
      {"swap-head --model=digits --head=parity --file=heads/parity.pt "
       "--labels_file=heads/parity.labels",
       0, "head_version"},
      {"remove-head --model=digits --head=parity", 0, "removed"},
      {"unload --model=digits", 0, "devices"},
      {"load --model=digits", 0, "status"},
      {"describe nonexistent", 1, "error"},
      {"remove-head --model=digits --head=digit", 1, "code"},
  };
  for (const auto& c : cases) {
    std::string output;
    EXPECT_EQ(testing::RunCommand(absl::StrCat(cli, c.command, " 2>/dev/null"), &output),
              c.rc)
        << c.command;
    google::protobuf::Struct parsed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(output, &parsed).ok())
        << c.command << ": " << output;
    EXPECT_EQ(parsed.fields().count(c.field), 1u) << c.command << ": " << output;
  }
  // 64-bit integers are JSON numbers (protobuf's mapping would quote them).
  std::string output;
  ASSERT_EQ(testing::RunCommand(absl::StrCat(cli, "models 2>/dev/null"), &output), 0);
  google::protobuf::Struct models;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(output, &models).ok())
      << output;
  const google::protobuf::Struct& first =
      models.fields().at("models").list_value().values(0).struct_value();
  EXPECT_EQ(first.fields().at("version").kind_case(),
            google::protobuf::Value::kNumberValue)
      << output;
  EXPECT_EQ(first.fields().at("version").number_value(), 1);
  EXPECT_EQ(first.fields().at("load_time_ms").kind_case(),
            google::protobuf::Value::kNumberValue)
      << output;
  std::filesystem::remove(token_file);
}

// Every binary says which Headway it is, and the server's metrics say it too, beside
// the process metrics any Prometheus target has.
TEST_F(ServerTest, EveryBinaryAndTheMetricsGiveTheVersionAndCommit) {
  for (const char* binary :
       {HEADWAY_SERVER_BINARY, HEADWAY_CLI_BINARY, HEADWAY_LOADGEN_BINARY}) {
    std::string output;
    EXPECT_EQ(testing::RunCommand(absl::StrCat(binary, " --version"), &output), 0)
        << binary;
    EXPECT_THAT(output,
                ::testing::MatchesRegex(
                    "headway[a-z_]* [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit [0-9a-z-]+, "
                    "[A-Za-z]+ build\\)\n"))
        << binary;
  }
  absl::StatusOr<std::string> metrics =
      testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, HasSubstr("headway_build_info{"));
  EXPECT_THAT(*metrics, HasSubstr("version=\""));
  for (const char* name : {"process_cpu_seconds_total ", "process_start_time_seconds ",
                           "process_open_fds ", "process_resident_memory_bytes "}) {
    EXPECT_THAT(*metrics, HasSubstr(name));
  }
}

// --help is for people: stdout, exit 0, no build paths, one command's flags on asking;
// bad load-generator flags are refused instead of changing what is measured.
TEST(CliHelpTest, HelpGoesToStdoutAndBadLoadFlagsAreRefused) {
  const struct {
    std::string command;
    std::vector<std::string> present;
    std::vector<std::string> absent;
  } helps[] = {
      {absl::StrCat(HEADWAY_CLI_BINARY, " --help"),
       {"Usage: headway", "--target", "--top_k", "Exit codes"},
       {"Flags from", "work/", "--flagfile"}},
      {absl::StrCat(HEADWAY_CLI_BINARY, " classify --help"),
       {"classify --model=M", "--top_k", "--target"},
       {"--checkpoint", "--l2"}},
      {absl::StrCat(HEADWAY_CLI_BINARY, " fit-head --help"),
       {"fit-head", "--l2", "--replace"},
       {"--top_k"}},
      {absl::StrCat(HEADWAY_SERVER_BINARY, " --help"),
       {"Usage: headway_server", "--http_port", "--max_fit_examples", "Exit codes"},
       {"Flags from", "--flagfile"}},
      {absl::StrCat(HEADWAY_LOADGEN_BINARY, " --help"),
       {"Usage: headway_loadgen", "--concurrency", "--target"},
       {"Flags from"}},
  };
  for (const auto& help : helps) {
    std::string output;
    EXPECT_EQ(testing::RunCommand(help.command + " 2>/dev/null", &output), 0)
        << help.command;
    for (const std::string& text : help.present) {
      EXPECT_THAT(output, HasSubstr(text)) << help.command;
    }
    for (const std::string& text : help.absent) {
      EXPECT_THAT(output, ::testing::Not(HasSubstr(text))) << help.command;
    }
  }
  const struct {
    std::string flags;
    std::string message;
  } refused[] = {
      {"--concurrency=0", "--concurrency takes numbers of 1 or more"},
      {"--concurrency=1,x,4", "not \"x\""},
      {"--duration=0s", "--duration must be positive, with a unit"},
      {"--duration=10", "--duration=10 needs a unit: 10s, 10ms or 10m"},
      {"--warmup 2", "--warmup=2 needs a unit"},
      {"--format=xml", "--format must be text, json or csv"},
      {"--images='/nonexistent/*.png'", "--images: nothing matches /nonexistent/*.png"},
      {"--rate=-5", "--rate must be 0"},
      {"--json_out=/nonexistent/folder/report.json", "--json_out: cannot write"},
  };
  for (const auto& bad : refused) {
    std::string output;
    EXPECT_EQ(
        testing::RunCommand(absl::StrCat(HEADWAY_LOADGEN_BINARY,
                                         " --target=127.0.0.1:1 --tensor_shape=1,2,2 ",
                                         bad.flags, " 2>&1"),
                            &output),
        2)
        << bad.flags;
    EXPECT_THAT(output, HasSubstr(bad.message)) << bad.flags;
  }
}

}  // namespace
}  // namespace headway
