// End to end: fine-tuning jobs through the real server. `headway finetune` on an
// ImageFolder of digits 5-9 trains the digits backbone's last layer with a new output
// layer, prints a line per epoch, writes a new model folder into the store (a training
// checkpoint Python's torch.load reads) and serves it; the store's own examples_dir
// works too; serving goes on during a job; WatchJob follows a job that CancelJob stops,
// leaving nothing in the store; a kill during a job leaves the store as it was; bad
// jobs are refused or fail naming the problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/headway_client.h"
#include "tests/support/digits_data.h"
#include "tests/support/served.h"

namespace headway {
namespace {

using ::testing::HasSubstr;
using testing::Serve;
using testing::Served;

// An ImageFolder of `per_class` PNGs of each digit 5-9 (classes "five" ... "nine")
// under `dir`, from cells `first`, `first` + 1, ... of each class.
void WriteDigitFolder(const std::filesystem::path& dir, int per_class, int first) {
  static const char* const kNames[] = {"five", "six", "seven", "eight", "nine"};
  for (int digit = 5; digit <= 9; ++digit) {
    const std::filesystem::path folder = dir / kNames[digit - 5];
    std::filesystem::create_directories(folder);
    for (int i = first; i < first + per_class; ++i) {
      cv::imwrite((folder / absl::StrCat(i, ".png")).string(),
                  testing::DigitCell(digit * 500 + i));
    }
  }
}

// Top-1 accuracy of `model` on cells 400-449 of each digit 5-9 (never trained on).
double AccuracyOnLaterCells(const HeadwayClient& client, const std::string& model) {
  static const char* const kNames[] = {"five", "six", "seven", "eight", "nine"};
  int correct = 0;
  int total = 0;
  for (int digit = 5; digit <= 9; ++digit) {
    v1::ClassifyRequest request;
    request.set_model(model);
    request.set_top_k(1);
    for (int i = 400; i < 450; ++i) {
      request.add_inputs()->set_image(
          testing::EncodePng(testing::DigitCell(digit * 500 + i)));
    }
    absl::StatusOr<v1::ClassifyResponse> response = client.Classify(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return 0;
    for (const v1::Classification& result : response->results()) {
      correct += result.labels(0).label() == kNames[digit - 5];
      ++total;
    }
  }
  return static_cast<double>(correct) / total;
}

// Waits (at most 30 s) until job `id` has run a training step: it has read and
// checked its examples and is training.
void WaitForFirstStep(const HeadwayClient& client, const std::string& id) {
  for (int i = 0; i < 600; ++i) {
    absl::StatusOr<v1::Job> job = client.GetJob(id);
    ASSERT_TRUE(job.ok()) << job.status();
    if (job->step() > 0) return;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::string Cli(const testing::ServerProcess& server, const std::string& token_file) {
  return absl::StrCat(HEADWAY_CLI_BINARY, " --target=", server.target(),
                      " --admin_token_file=", token_file);
}

TEST(FineTuneTest, TheCliFineTunesTheLastLayerIntoANewModelThatServes) {
  const std::filesystem::path store = testing::CopyModelStore();
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);
  char dir_template[] = "/tmp/headway-finetune-XXXXXX";
  const std::filesystem::path folder = mkdtemp(dir_template);
  WriteDigitFolder(folder, 40, 0);
  const std::string token_file = store.string() + "-token";
  std::ofstream(token_file) << served.server->admin_token() << "\n";

  std::string output;
  ASSERT_EQ(testing::RunCommand(
                absl::StrCat(Cli(*served.server, token_file),
                             " finetune --model=digits --train_layers=features.7 "
                             "--learning_rate=0.005 --epochs=3 --batch_size=20 "
                             "--output_model=digits-5to9 --head=digit --serve ",
                             folder.string(), " 2>&1"),
                &output),
            0)
      << output;
  std::cout << output;
  // Not a terminal: plain lines, one per epoch, then the outcome.
  EXPECT_THAT(output, HasSubstr("epoch 1/3: loss "));
  EXPECT_THAT(output, HasSubstr("epoch 3/3: loss "));
  EXPECT_THAT(output, ::testing::Not(HasSubstr("\r")));
  EXPECT_THAT(output, HasSubstr("SUCCEEDED: model digits -> digits-5to9 written "
                                "(digits-5to9/finetuned.pt), serving"));

  // The new model serves, with the folder names as labels, beside the old one.
  const double accuracy = AccuracyOnLaterCells(*served.client, "digits-5to9");
  std::cout << "fine-tuned digits-5to9: accuracy on 250 later cells " << accuracy << "\n";
  EXPECT_GE(accuracy, 0.9);
  absl::StatusOr<v1::ListModelsResponse> models =
      served.client->ListModels("digits-5to9");
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(models->models(0).backbone_format(), "training checkpoint");
  EXPECT_EQ(models->models(0).epoch(), 3);
  // Where the head came from, as ListModels shows it.
  EXPECT_THAT(models->models(0).heads(0).source(),
              ::testing::MatchesRegex("fine-tuning job ft-[0-9-]+ of model digits: 3 "
                                      "epochs, validation accuracy 0\\.[0-9]+ on 40 "
                                      "held out"));
  absl::StatusOr<v1::HeadStatus> configured =
      testing::HeadStatusOf(*served.client, "digits", "digit");
  ASSERT_TRUE(configured.ok());
  EXPECT_EQ(configured->source(), "file heads/digit.pt");
  // The metrics count the job and show no job running.
  const absl::StatusOr<std::string> metrics =
      testing::HttpGet(served.server->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              HasSubstr(R"(headway_fine_tune_jobs_total{state="SUCCEEDED"} 1)"));
  EXPECT_THAT(*metrics, HasSubstr(R"(headway_fine_tune_jobs_total{state="FAILED"} 0)"));
  EXPECT_THAT(*metrics, HasSubstr("headway_fine_tune_progress_ratio 0"));

  // The job is listed, with its figures.
  absl::StatusOr<v1::ListJobsResponse> jobs = served.client->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->jobs_size(), 1);
  const v1::Job& job = jobs->jobs(0);
  EXPECT_EQ(job.state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(job.classes_size(), 5);
  EXPECT_EQ(job.examples_per_class(0), 40);
  EXPECT_EQ(job.validation_examples(), 40);
  EXPECT_GE(job.validation_accuracy(), 0.85);
  EXPECT_EQ(job.trained_values(), 800 * 64 + 64 + 64 * 5 + 5);

  // The checkpoint is PyTorch's training checkpoint format, read by torch.load.
  const std::filesystem::path checkpoint = store / "digits-5to9" / "finetuned.pt";
  const std::string python = absl::StrCat(
      "/usr/bin/python3 -c \"import torch; c = torch.load('", checkpoint.string(),
      "'); print(sorted(c), c['epoch'], sorted(c['class_to_idx'].items(), key=lambda "
      "kv: kv[1])[0], c['model_state_dict']['head.weight'].shape[0], "
      "len(c['optimizer_state_dict']['param_groups'][0]['params']))\" 2>&1");
  output.clear();
  ASSERT_EQ(testing::RunCommand(python, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("['class_to_idx', 'epoch', 'model_state_dict', "
                                "'optimizer_state_dict'] 3 ('eight', 0) 5 4"));

  // A restarted server serves it from the store, as every replica would.
  served.client.reset();
  served.server.reset();
  Served restarted = Serve(store);
  ASSERT_NE(restarted.client, nullptr);
  EXPECT_GE(AccuracyOnLaterCells(*restarted.client, "digits-5to9"), 0.9);
  std::filesystem::remove_all(folder);
  std::filesystem::remove_all(store);
  std::filesystem::remove(token_file);
}

TEST(FineTuneTest, ServingGoesOnDuringAJobAndCancelLeavesNothingInTheStore) {
  const std::filesystem::path store = testing::CopyModelStore();
  WriteDigitFolder(store / "examples", 40, 0);  // an ImageFolder inside the store
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);

  v1::StartFineTuneRequest request;
  request.set_model("digits");
  request.set_examples_dir("examples");
  request.set_train_all(true);
  request.set_batch_size(1);
  request.set_epochs(1000);  // runs until cancelled
  request.set_output_model("never");
  absl::StatusOr<v1::StartFineTuneResponse> started =
      served.client->StartFineTune(request);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string id = started->job().id();

  std::vector<v1::Job> updates;
  absl::Status watched;
  std::thread watcher([&] {
    watched =
        served.client->WatchJob(id, [&](const v1::Job& job) { updates.push_back(job); });
  });
  // Serving goes on while the job trains (once it has read its examples).
  WaitForFirstStep(*served.client, id);
  int classified = 0;
  for (int i = 0; i < 50; ++i) {
    v1::ClassifyRequest classify;
    classify.set_model("digits");
    classify.add_inputs()->set_image(testing::EncodePng(testing::DigitCell(100 + i)));
    absl::StatusOr<v1::ClassifyResponse> response = served.client->Classify(classify);
    EXPECT_TRUE(response.ok()) << response.status();
    classified += response.ok();
  }
  EXPECT_EQ(classified, 50);
  absl::StatusOr<v1::Job> running = served.client->GetJob(id);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), v1::Job::RUNNING);
  EXPECT_GT(running->step(), 0);

  absl::StatusOr<v1::Job> cancelled = served.client->CancelJob(id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  watcher.join();
  EXPECT_TRUE(watched.ok()) << watched;
  ASSERT_GE(updates.size(), 2u);
  // The job as it was when the watch began, then (step updates may be folded into
  // newer ones) its end.
  EXPECT_NE(updates.front().state(), v1::Job::CANCELLED);
  EXPECT_EQ(updates.back().state(), v1::Job::CANCELLED);
  EXPECT_THAT(updates.back().error(), HasSubstr("fine-tuning cancelled "));
  // Nothing under the output's name, and no temporary folder either.
  EXPECT_FALSE(std::filesystem::exists(store / "never"));
  for (const auto& entry : std::filesystem::directory_iterator(store)) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr("never")));
  }
  std::filesystem::remove_all(store);
}

// A server killed during a job loses the job, never the store: it restarts and
// serves what it served, with nothing under the job's output name.
TEST(FineTuneTest, AKillDuringAJobLeavesTheStoreAsItWas) {
  const std::filesystem::path store = testing::CopyModelStore();
  WriteDigitFolder(store / "examples", 20, 0);
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);
  v1::StartFineTuneRequest request;
  request.set_model("digits");
  request.set_examples_dir("examples");
  request.set_train_all(true);
  request.set_epochs(1000);
  request.set_output_model("interrupted");
  absl::StatusOr<v1::StartFineTuneResponse> started =
      served.client->StartFineTune(request);
  ASSERT_TRUE(started.ok()) << started.status();
  WaitForFirstStep(*served.client, started->job().id());
  served.server->Signal(SIGKILL);
  served.client.reset();
  served.server.reset();

  Served restarted = Serve(store);
  ASSERT_NE(restarted.client, nullptr);
  EXPECT_FALSE(std::filesystem::exists(store / "interrupted"));
  absl::StatusOr<v1::ListModelsResponse> models = restarted.client->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models_size(), 1);
  EXPECT_EQ(models->models(0).name(), "digits");
  absl::StatusOr<v1::ListJobsResponse> jobs = restarted.client->ListJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 0);  // jobs live in memory
  std::filesystem::remove_all(store);
}

TEST(FineTuneTest, BadJobsAreRefusedOrFailNamingTheProblem) {
  const std::filesystem::path store = testing::CopyModelStore();
  WriteDigitFolder(store / "examples", 4, 0);
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);
  const auto start = [&](const std::function<void(v1::StartFineTuneRequest&)>& edit) {
    v1::StartFineTuneRequest request;
    request.set_model("digits");
    request.set_examples_dir("examples");
    request.set_epochs(1);
    edit(request);
    return served.client->StartFineTune(request);
  };
  struct Refused {
    std::string name;
    std::function<void(v1::StartFineTuneRequest&)> edit;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Refused> refused = {
      {"unknown model", [](auto& r) { r.set_model("cats"); }, absl::StatusCode::kNotFound,
       "the model store has no model \"cats\""},
      {"output that exists", [](auto& r) { r.set_output_model("digits"); },
       absl::StatusCode::kAlreadyExists, "has a folder \"digits\" already"},
      {"both kinds of examples",
       [](auto& r) {
         r.add_inputs()->set_image("x");
         r.add_labels("five");
       },
       absl::StatusCode::kInvalidArgument, "not both or neither"},
      {"examples_dir outside the store",
       [](auto& r) { r.set_examples_dir("../elsewhere"); },
       absl::StatusCode::kInvalidArgument, "must not contain \"..\""},
      {"a bad output name", [](auto& r) { r.set_output_model(".hidden"); },
       absl::StatusCode::kInvalidArgument, "model name \".hidden\" must be"},
  };
  for (const Refused& bad : refused) {
    absl::StatusOr<v1::StartFineTuneResponse> response = start(bad.edit);
    EXPECT_EQ(response.status().code(), bad.code)
        << bad.name << ": " << response.status();
    EXPECT_THAT(std::string(response.status().message()), HasSubstr(bad.message))
        << bad.name;
  }

  // Problems found while the job runs fail it, naming them, and write nothing.
  struct Failing {
    std::string name;
    std::function<void(v1::StartFineTuneRequest&)> edit;
    std::string error;
  };
  const std::vector<Failing> failing = {
      {"a layer the backbone lacks", [](auto& r) { r.add_train_layers("layer4"); },
       "no backbone parameter is named by \"layer4\""},
      {"a learning rate of 100", [](auto& r) { r.set_learning_rate(100); },
       "learning_rate is 100"},
      {"an examples_dir that is missing",
       [](auto& r) { r.set_examples_dir("no-such-folder"); }, "no-such-folder"},
  };
  for (const Failing& bad : failing) {
    absl::StatusOr<v1::StartFineTuneResponse> response = start(bad.edit);
    ASSERT_TRUE(response.ok()) << bad.name << ": " << response.status();
    v1::Job last;
    ASSERT_TRUE(
        served.client
            ->WatchJob(response->job().id(), [&](const v1::Job& job) { last = job; })
            .ok());
    EXPECT_EQ(last.state(), v1::Job::FAILED) << bad.name;
    EXPECT_THAT(last.error(), HasSubstr(bad.error)) << bad.name;
    EXPECT_FALSE(std::filesystem::exists(store / response->job().output_model()));
  }
  EXPECT_EQ(served.client->GetJob("ft-nope").status().code(),
            absl::StatusCode::kNotFound);

  // Without admin rights a job cannot start.
  std::unique_ptr<HeadwayClient> anonymous = [&] {
    HeadwayClient::Options options;
    options.target = served.server->target();
    return *HeadwayClient::Create(options);
  }();
  EXPECT_EQ(anonymous->StartFineTune(v1::StartFineTuneRequest()).status().code(),
            absl::StatusCode::kUnauthenticated);
  std::filesystem::remove_all(store);
}

}  // namespace
}  // namespace headway
