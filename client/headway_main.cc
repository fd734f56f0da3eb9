// headway: command-line client for a Headway server.
//
//   headway [--target=127.0.0.1:50051] [--json] [--tls_ca_file=ca.pem
//           [--tls_cert_file=client.pem --tls_key_file=client.key]]
//           [--admin_token_file=token] COMMAND [ARGS]
//   headway classify --model=digits [--head=H] [--top_k=K] IMAGE...
//   headway embed --model=digits [--l2_normalize] IMAGE...
//   headway swap-head --model=digits --head=H (--file=PATH_IN_STORE |
//   --checkpoint=LOCAL_FILE)
//                     [--labels_file=PATH_IN_STORE | --labels=a,b,...] [--key_prefix=fc.]
//                     [--persist] [--device=D]
//   headway remove-head --model=digits --head=H [--persist]
//   headway fit-head --model=digits --head=H [--l2=X] [--replace] [--persist] DIR
//   headway finetune --model=digits --train_layers=features.7 [--epochs=5] DIR
//   headway jobs | job ID [--watch] | cancel-job ID
//   headway load --model=digits [--device=cpu]
//   headway unload --model=digits [--device=cpu]
//   headway models
//   headway describe [MODEL]
//   headway health [SERVICE]
#include <google/protobuf/struct.pb.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/channel.h"
#include "client/connection_flags.h"
#include "client/headway_client.h"
#include "client/json_output.h"
#include "version/build_type_defaults.h"
#include "version/cli_help.h"
#include "version/version.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "Server address, a comma-separated list of IP:port replicas, or a name such as "
          "dns:///headway:50051; calls are spread round robin.");
ABSL_FLAG(bool, json, false, "Print the server's response as JSON.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call.");
ABSL_FLAG(std::string, model, "digits", "Model name.");
ABSL_FLAG(std::string, head, "", "Head name (classify: empty means the default head).");
ABSL_FLAG(int, top_k, 5, "classify: labels per image.");
ABSL_FLAG(bool, l2_normalize, false, "embed: scale embeddings to unit length.");
ABSL_FLAG(std::string, file, "", "swap-head: head file, relative to the model's folder.");
ABSL_FLAG(std::string, checkpoint, "", "swap-head: a local head file to upload.");
ABSL_FLAG(std::string, labels_file, "",
          "swap-head: labels file, relative to the model's folder.");
ABSL_FLAG(std::vector<std::string>, labels, {}, "swap-head: labels, comma separated.");
ABSL_FLAG(std::string, key_prefix, "",
          "swap-head: a state_dict head's key prefix (e.g. fc. in a whole model's).");
ABSL_FLAG(bool, persist, false,
          "swap-head, remove-head, fit-head: also write it into the model store.");
ABSL_FLAG(double, l2, 0, "fit-head: the L2 penalty; 0 chooses it on a held-out split.");
ABSL_FLAG(bool, replace, false, "fit-head: replace a head of the same name.");
ABSL_FLAG(std::vector<std::string>, train_layers, {},
          "finetune: parameter-name prefixes of the layers to train (e.g. layer4 or "
          "features.7), comma separated; the rest stay frozen.");
ABSL_FLAG(bool, train_all, false, "finetune: train every layer.");
ABSL_FLAG(std::string, optimizer, "sgd", "finetune: sgd or adam.");
ABSL_FLAG(double, learning_rate, 0, "finetune: 0 means 0.01 for SGD and 0.001 for Adam.");
ABSL_FLAG(double, momentum, 0.9, "finetune: SGD's momentum.");
ABSL_FLAG(double, weight_decay, 0, "finetune: L2 weight decay.");
ABSL_FLAG(int, epochs, 5, "finetune: passes over the training examples.");
ABSL_FLAG(int, batch_size, 32, "finetune: examples per step.");
ABSL_FLAG(bool, flip, false, "finetune: mirror training images left-right at random.");
ABSL_FLAG(uint64_t, seed, 1, "finetune: seed of the split, order, flips and new layer.");
ABSL_FLAG(double, validation_fraction, 0.2,
          "fit-head, finetune: share of each class held out; negative holds none out.");
ABSL_FLAG(std::string, output_model, "",
          "finetune: the new model folder's name (default <model>-<job id>).");
ABSL_FLAG(std::string, examples_dir, "",
          "finetune: an ImageFolder inside the server's model store, instead of DIR.");
ABSL_FLAG(bool, serve, false, "finetune: load the new model on the server when done.");
ABSL_FLAG(bool, detach, false, "finetune: print the queued job and return at once.");
ABSL_FLAG(bool, watch, false, "job: follow the job until it ends.");
ABSL_FLAG(std::string, device, "",
          "The model instance's device (cpu, cuda:N); empty: the server chooses.");

namespace headway {
namespace {

constexpr char kUsage[] =
    "Command-line client for a Headway server.\n"
    "Usage: headway [--target=HOST:PORT] [--json] COMMAND [ARGS]\n"
    "  classify --model=M [--head=H] [--top_k=K] IMAGE...   top-k labels per image\n"
    "  embed --model=M [--l2_normalize] IMAGE...            backbone features per image\n"
    "  swap-head --model=M --head=H (--file=F | --checkpoint=LOCAL_FILE)\n"
    "            [--labels_file=F | --labels=a,b] [--key_prefix=P] [--persist]\n"
    "                                                       replace or add a head\n"
    "  remove-head --model=M --head=H [--persist]           remove a head\n"
    "  fit-head --model=M --head=H [--l2=X] [--replace] [--persist] DIR\n"
    "                                                       fit a head on DIR/<class>/*\n"
    "                                                       images (ImageFolder layout)\n"
    "  finetune --model=M (--train_layers=P,... | --train_all) [--epochs=N]\n"
    "           [--optimizer=sgd|adam] [--learning_rate=X] [--batch_size=N] [--flip]\n"
    "           [--output_model=NAME] [--serve] [--detach] (DIR | --examples_dir=D)\n"
    "                                                       fine-tune as a job, "
    "showing\n"
    "                                                       progress; the new model "
    "goes\n"
    "                                                       into the store\n"
    "  jobs                                                 list fine-tuning jobs\n"
    "  job ID [--watch]                                     one job (followed to its "
    "end)\n"
    "  cancel-job ID                                        stop a job\n"
    "  load --model=M [--device=D]                          load a model (on a device)\n"
    "  unload --model=M [--device=D]                        unload a model's "
    "instance(s)\n"
    "  models                                               list models and heads\n"
    "  describe [MODEL]                                     what a model takes and "
    "gives\n"
    "  health [SERVICE]                                     gRPC health (exit 0 if "
    "SERVING)\n"
    "With a target naming several replicas (a comma-separated list, or a dns: name\n"
    "resolving to several addresses), swap-head, remove-head, fit-head, load and unload "
    "go\n"
    "to each replica in turn; with --persist, to one, whose store every replica\n"
    "follows. finetune, jobs, job and cancel-job go to the first replica: a job runs\n"
    "on one server, and its model reaches the others through the store.\n"
    "Exit codes: 0 done; 1 the server refused or failed (or a replica did); 2 bad usage\n"
    "or an invalid argument (INVALID_ARGUMENT). `headway COMMAND --help` lists that\n"
    "command's flags.";

// The flags each command reads (beside the connection flags every command takes).
const std::map<std::string, std::vector<std::string>>& CommandFlags() {
  static const auto* flags = new std::map<std::string, std::vector<std::string>>{
      {"classify", {"model", "head", "top_k", "device", "json"}},
      {"embed", {"model", "l2_normalize", "device", "json"}},
      {"swap-head",
       {"model", "head", "file", "checkpoint", "labels_file", "labels", "key_prefix",
        "persist", "device", "json"}},
      {"remove-head", {"model", "head", "persist", "json"}},
      {"fit-head",
       {"model", "head", "l2", "replace", "validation_fraction", "persist", "device",
        "json"}},
      {"finetune",
       {"model", "head", "train_layers", "train_all", "optimizer", "learning_rate",
        "momentum", "weight_decay", "epochs", "batch_size", "flip", "seed",
        "validation_fraction", "output_model", "examples_dir", "serve", "detach",
        "json"}},
      {"jobs", {"json"}},
      {"job", {"watch", "json"}},
      {"cancel-job", {"json"}},
      {"load", {"model", "device", "json"}},
      {"unload", {"model", "device", "json"}},
      {"models", {"json"}},
      {"describe", {"model", "json"}},
      {"health", {"json"}},
  };
  return *flags;
}

// The usage line of `command` from kUsage (the line naming it), or kUsage.
std::string CommandUsage(const std::string& command) {
  for (absl::string_view line : absl::StrSplit(kUsage, '\n')) {
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), command + " ")) {
      return absl::StrCat("Usage: headway [connection flags] ",
                          absl::StripLeadingAsciiWhitespace(line));
    }
  }
  return kUsage;
}

void PrintJson(const google::protobuf::Message& message) {
  std::cout << MessageToJson(message, JsonLayout::kIndented);
}

// With --json, stdout holds JSON whatever happens: errors too, as {"error", "code"}.
int Fail(const absl::Status& status) {
  std::cerr << "headway: " << status << "\n";
  if (absl::GetFlag(FLAGS_json)) {
    google::protobuf::Struct error;
    (*error.mutable_fields())["error"].set_string_value(std::string(status.message()));
    (*error.mutable_fields())["code"].set_string_value(
        absl::StatusCodeToString(status.code()));
    PrintJson(error);
  }
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::Status AddImages(const std::vector<char*>& files,
                       google::protobuf::RepeatedPtrField<v1::Input>* inputs) {
  if (files.empty()) return absl::InvalidArgumentError("give at least one image file");
  for (const char* file : files) {
    absl::StatusOr<v1::Input> input = ImageInputFromFile(file);
    if (!input.ok()) return input.status();
    *inputs->Add() = *std::move(input);
  }
  return absl::OkStatus();
}

int Classify(const HeadwayClient& client, const std::vector<char*>& files) {
  v1::ClassifyRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_head(absl::GetFlag(FLAGS_head));
  request.set_top_k(absl::GetFlag(FLAGS_top_k));
  request.set_device(absl::GetFlag(FLAGS_device));
  if (absl::Status status = AddImages(files, request.mutable_inputs()); !status.ok()) {
    return Fail(status);
  }
  absl::StatusOr<v1::ClassifyResponse> response = client.Classify(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  std::cout << absl::StrFormat("model %s v%d, head %s v%d\n", response->model(),
                               response->model_version(), response->head(),
                               response->head_version());
  for (int i = 0; i < response->results_size(); ++i) {
    std::vector<std::string> labels;
    for (const v1::ScoredLabel& label : response->results(i).labels()) {
      labels.push_back(absl::StrFormat("%s (%.4f)", label.label(), label.score()));
    }
    std::cout << files[i] << ": " << absl::StrJoin(labels, ", ") << "\n";
  }
  return 0;
}

int Embed(const HeadwayClient& client, const std::vector<char*>& files) {
  v1::EmbedRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_l2_normalize(absl::GetFlag(FLAGS_l2_normalize));
  request.set_device(absl::GetFlag(FLAGS_device));
  if (absl::Status status = AddImages(files, request.mutable_inputs()); !status.ok()) {
    return Fail(status);
  }
  absl::StatusOr<v1::EmbedResponse> response = client.Embed(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  std::cout << absl::StrFormat("model %s v%d, dimension %d\n", response->model(),
                               response->model_version(), response->dimension());
  for (int i = 0; i < response->embeddings_size(); ++i) {
    const auto& values = response->embeddings(i).values();
    const int shown = std::min(values.size(), 8);
    std::vector<std::string> head;
    for (int j = 0; j < shown; ++j) head.push_back(absl::StrFormat("%.4f", values[j]));
    std::cout << files[i] << ": [" << absl::StrJoin(head, ", ")
              << (shown < values.size() ? ", ..." : "") << "]\n";
  }
  return 0;
}

int SwapHead(const HeadwayClient& client) {
  v1::HotSwapHeadRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_head(absl::GetFlag(FLAGS_head));
  if (!absl::GetFlag(FLAGS_checkpoint).empty()) {
    absl::StatusOr<std::string> bytes = ReadFileBytes(absl::GetFlag(FLAGS_checkpoint));
    if (!bytes.ok()) return Fail(bytes.status());
    request.set_checkpoint(*std::move(bytes));
  } else {
    request.set_file(absl::GetFlag(FLAGS_file));
  }
  request.set_labels_file(absl::GetFlag(FLAGS_labels_file));
  request.set_key_prefix(absl::GetFlag(FLAGS_key_prefix));
  request.set_persist(absl::GetFlag(FLAGS_persist));
  request.set_device(absl::GetFlag(FLAGS_device));
  for (const std::string& label : absl::GetFlag(FLAGS_labels)) request.add_labels(label);
  absl::StatusOr<v1::HotSwapHeadResponse> response = client.HotSwapHead(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  std::cout << absl::StrFormat("model %s: head %s now at version %d with %d classes\n",
                               response->model(), response->head(),
                               response->head_version(), response->num_classes());
  return 0;
}

// An ImageFolder: one sub-folder per class (its name the label), images inside.
template <typename Request>
absl::Status ReadImageFolder(const std::string& dir, Request& request) {
  std::error_code error;
  std::vector<std::filesystem::path> classes;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.is_directory()) classes.push_back(entry.path());
  }
  if (error) {
    return absl::NotFoundError(absl::StrCat("cannot read ", dir, ": ", error.message()));
  }
  std::sort(classes.begin(), classes.end());
  for (const std::filesystem::path& folder : classes) {
    request.add_classes(folder.filename().string());
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const std::filesystem::path& file : files) {
      absl::StatusOr<v1::Input> input = ImageInputFromFile(file);
      if (!input.ok()) return input.status();
      *request.add_inputs() = *std::move(input);
      request.add_labels(folder.filename().string());
    }
  }
  if (classes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, " has no class folders (ImageFolder layout: DIR/<class>/<image>)"));
  }
  return absl::OkStatus();
}

int FitHead(const HeadwayClient& client, const std::vector<char*>& operands) {
  if (operands.size() != 1) {
    return Fail(
        absl::InvalidArgumentError("fit-head takes one folder (DIR/<class>/<image>)"));
  }
  v1::FitHeadRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_head(absl::GetFlag(FLAGS_head));
  request.set_l2(absl::GetFlag(FLAGS_l2));
  request.set_replace(absl::GetFlag(FLAGS_replace));
  request.set_validation_fraction(absl::GetFlag(FLAGS_validation_fraction));
  request.set_persist(absl::GetFlag(FLAGS_persist));
  request.set_device(absl::GetFlag(FLAGS_device));
  if (absl::Status read = ReadImageFolder(operands[0], request); !read.ok()) {
    return Fail(read);
  }
  absl::StatusOr<v1::FitHeadResponse> response = client.FitHead(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  std::vector<std::string> counts;
  for (int c = 0; c < response->classes_size(); ++c) {
    counts.push_back(
        absl::StrCat(response->classes(c), "=", response->examples_per_class(c)));
  }
  std::cout << absl::StrFormat(
      "model %s: head %s fitted, version %d, %d classes (%s)\n"
      "train accuracy %.4f, validation accuracy %s on %d held out; l2 %g, loss %.4g, "
      "%d evaluations\n"
      "embed %.0f ms, fit %.0f ms, install %.0f ms\n",
      response->model(), response->head(), response->head_version(),
      response->classes_size(), absl::StrJoin(counts, " "), response->train_accuracy(),
      response->validation_accuracy() < 0
          ? "none"
          : absl::StrFormat("%.4f", response->validation_accuracy()),
      response->validation_examples(), response->l2(), response->final_loss(),
      response->iterations(), response->embed_ms(), response->fit_ms(),
      response->install_ms());
  return 0;
}

// "epoch 2/5: loss 0.3124, train accuracy 0.9650, validation accuracy 0.9500, ..."
std::string EpochLine(const v1::Job& job) {
  const auto accuracy = [](double value) {
    return value < 0 ? std::string("none") : absl::StrFormat("%.4f", value);
  };
  return absl::StrFormat(
      "epoch %d/%d: loss %.4f, train accuracy %s, validation accuracy %s, %.0f "
      "examples/s, %.0f s elapsed",
      job.epoch(), job.epochs(), job.loss(), accuracy(job.train_accuracy()),
      accuracy(job.validation_accuracy()), job.examples_per_second(),
      job.elapsed_seconds());
}

std::string JobSummary(const v1::Job& job) {
  std::string summary =
      absl::StrCat("job ", job.id(), " ", v1::Job::State_Name(job.state()), ": model ",
                   job.model(), " -> ", job.output_model());
  if (job.state() == v1::Job::SUCCEEDED) {
    absl::StrAppend(&summary, " written (", job.checkpoint(), ")",
                    job.serving() ? ", serving" : "", "; ", EpochLine(job));
  } else if (job.state() == v1::Job::RUNNING) {
    absl::StrAppend(&summary, "; ", EpochLine(job),
                    absl::StrFormat(", %.0f s left", job.eta_seconds()));
  }
  if (!job.error().empty()) absl::StrAppend(&summary, "; ", job.error());
  return summary;
}

bool JobEnded(const v1::Job& job) {
  return job.state() == v1::Job::SUCCEEDED || job.state() == v1::Job::FAILED ||
         job.state() == v1::Job::CANCELLED;
}

// Follows a job to its end: a line per epoch; on a terminal also the step in
// progress, rewritten in place. 0 when it succeeded.
int WatchJob(const HeadwayClient& client, const std::string& id) {
  const bool terminal = isatty(STDOUT_FILENO) != 0 && !absl::GetFlag(FLAGS_json);
  v1::Job last;
  int epoch_printed = 0;
  const absl::Status watched = client.WatchJob(id, [&](const v1::Job& job) {
    last = job;
    if (absl::GetFlag(FLAGS_json)) return;
    if (job.epoch_done() && job.epoch() > epoch_printed) {
      epoch_printed = job.epoch();
      std::cout << (terminal ? "\r\033[K" : "") << EpochLine(job) << "\n" << std::flush;
    } else if (terminal && job.state() == v1::Job::RUNNING) {
      std::cout << absl::StrFormat(
                       "\r\033[Kepoch %d/%d step %d/%d loss %.4f, %.0f s left",
                       job.epoch(), job.epochs(), job.step(), job.steps_per_epoch(),
                       job.loss(), job.eta_seconds())
                << std::flush;
    }
  });
  if (!watched.ok()) return Fail(watched);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(last);
  } else {
    std::cout << (terminal ? "\r\033[K" : "") << JobSummary(last) << "\n";
  }
  return last.state() == v1::Job::SUCCEEDED ? 0 : 1;
}

int FineTune(const HeadwayClient& client, const std::vector<char*>& operands) {
  v1::StartFineTuneRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_head(absl::GetFlag(FLAGS_head));
  request.set_examples_dir(absl::GetFlag(FLAGS_examples_dir));
  if (operands.size() > 1 || operands.empty() == request.examples_dir().empty()) {
    return Fail(absl::InvalidArgumentError(
        "finetune takes one local folder (DIR/<class>/<image>) or --examples_dir (a "
        "folder inside the server's model store), not both"));
  }
  if (!operands.empty()) {
    if (absl::Status read = ReadImageFolder(operands[0], request); !read.ok()) {
      return Fail(read);
    }
  }
  for (const std::string& layer : absl::GetFlag(FLAGS_train_layers)) {
    request.add_train_layers(layer);
  }
  request.set_train_all(absl::GetFlag(FLAGS_train_all));
  const std::string optimizer = absl::AsciiStrToLower(absl::GetFlag(FLAGS_optimizer));
  if (optimizer != "sgd" && optimizer != "adam") {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("--optimizer must be sgd or adam, not \"",
                                                absl::GetFlag(FLAGS_optimizer), "\"")));
  }
  request.set_optimizer(optimizer == "adam" ? v1::StartFineTuneRequest::ADAM
                                            : v1::StartFineTuneRequest::SGD);
  request.set_learning_rate(absl::GetFlag(FLAGS_learning_rate));
  request.set_momentum(absl::GetFlag(FLAGS_momentum));
  request.set_weight_decay(absl::GetFlag(FLAGS_weight_decay));
  request.set_epochs(absl::GetFlag(FLAGS_epochs));
  request.set_batch_size(absl::GetFlag(FLAGS_batch_size));
  request.set_horizontal_flip(absl::GetFlag(FLAGS_flip));
  request.set_seed(absl::GetFlag(FLAGS_seed));
  request.set_validation_fraction(absl::GetFlag(FLAGS_validation_fraction));
  request.set_output_model(absl::GetFlag(FLAGS_output_model));
  request.set_serve(absl::GetFlag(FLAGS_serve));
  if (request.epochs() < 1 || request.batch_size() < 1) {
    return Fail(
        absl::InvalidArgumentError("--epochs and --batch_size must be 1 or more"));
  }
  absl::StatusOr<v1::StartFineTuneResponse> started = client.StartFineTune(request);
  if (!started.ok()) return Fail(started.status());
  if (absl::GetFlag(FLAGS_detach)) {
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(started->job());
    } else {
      std::cout << JobSummary(started->job()) << "\n";
    }
    return 0;
  }
  if (!absl::GetFlag(FLAGS_json)) {
    std::cout << "job " << started->job().id() << " queued: " << request.inputs_size()
              << " examples uploaded, model " << started->job().output_model()
              << " to be written\n"
              << std::flush;
  }
  return WatchJob(client, started->job().id());
}

int Jobs(const HeadwayClient& client) {
  absl::StatusOr<v1::ListJobsResponse> jobs = client.ListJobs();
  if (!jobs.ok()) return Fail(jobs.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*jobs);
    return 0;
  }
  if (jobs->jobs().empty()) std::cout << "no fine-tuning jobs on this server\n";
  for (const v1::Job& job : jobs->jobs()) std::cout << JobSummary(job) << "\n";
  return 0;
}

int Job(const HeadwayClient& client, const std::vector<char*>& operands, bool cancel) {
  if (operands.size() != 1) {
    return Fail(absl::InvalidArgumentError("give one job id (see headway jobs)"));
  }
  if (!cancel && absl::GetFlag(FLAGS_watch)) return WatchJob(client, operands[0]);
  absl::StatusOr<v1::Job> job =
      cancel ? client.CancelJob(operands[0]) : client.GetJob(operands[0]);
  if (!job.ok()) return Fail(job.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*job);
  } else {
    std::cout << (cancel && !JobEnded(*job) ? "cancelling " : "") << JobSummary(*job)
              << "\n";
  }
  return 0;
}

int RemoveHead(const HeadwayClient& client) {
  v1::RemoveHeadRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_head(absl::GetFlag(FLAGS_head));
  request.set_persist(absl::GetFlag(FLAGS_persist));
  absl::StatusOr<v1::RemoveHeadResponse> response = client.RemoveHead(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    google::protobuf::Struct removed;
    auto& fields = *removed.mutable_fields();
    fields["model"].set_string_value(request.model());
    fields["head"].set_string_value(request.head());
    fields["persist"].set_bool_value(request.persist());
    fields["removed"].set_bool_value(true);
    PrintJson(removed);
    return 0;
  }
  std::cout << "model " << request.model() << ": head " << request.head() << " removed\n";
  return 0;
}

int LoadModel(const HeadwayClient& client) {
  v1::LoadModelRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_device(absl::GetFlag(FLAGS_device));
  absl::StatusOr<v1::LoadModelResponse> response = client.LoadModel(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  std::cout << absl::StrFormat("model %s loaded on %s in %d ms\n",
                               response->status().name(), response->status().device(),
                               response->status().load_time_ms());
  return 0;
}

int UnloadModel(const HeadwayClient& client) {
  v1::UnloadModelRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_device(absl::GetFlag(FLAGS_device));
  absl::StatusOr<v1::UnloadModelResponse> response = client.UnloadModel(request);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  std::cout << "model " << request.model() << " unloaded from "
            << absl::StrJoin(response->devices(), ", ") << "\n";
  return 0;
}

int Models(const HeadwayClient& client) {
  absl::StatusOr<v1::ListModelsResponse> response = client.ListModels();
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  for (const v1::ModelStatus& model : response->models()) {
    std::cout << absl::StrFormat(
        "%s v%d  %s  %s  feature_dim=%d  %s%s  loaded in %d ms\n", model.name(),
        model.version(), model.device(), model.state(), model.feature_dim(),
        model.backbone_format(),
        model.epoch() > 0 ? absl::StrCat(" (epoch ", model.epoch(), ")") : "",
        model.load_time_ms());
    if (!model.load_report().empty()) std::cout << "  " << model.load_report() << "\n";
    if (!model.precision_note().empty()) {
      std::cout << "  precision " << model.precision() << ": " << model.precision_note()
                << "\n";
    }
    for (const v1::HeadStatus& head : model.heads()) {
      std::cout << absl::StrFormat("  head %s v%d  classes=%d%s  from %s\n", head.name(),
                                   head.version(), head.num_classes(),
                                   head.is_default() ? "  (default)" : "", head.source());
    }
  }
  return 0;
}

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  std::vector<std::string> dims;
  for (int64_t dim : shape) dims.push_back(dim < 0 ? "*" : absl::StrCat(dim));
  return absl::StrCat("[", absl::StrJoin(dims, ","), "]");
}

int Describe(const HeadwayClient& client, const std::vector<char*>& operands) {
  const std::string model = operands.empty() ? absl::GetFlag(FLAGS_model) : operands[0];
  absl::StatusOr<v1::GetModelMetadataResponse> response = client.GetModelMetadata(model);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*response);
    return 0;
  }
  const v1::InputSpec& input = response->input();
  std::cout << absl::StrFormat("%s v%d  feature_dim=%d  %s\n", response->model(),
                               response->version(), response->feature_dim(),
                               response->backbone_format());
  std::cout << absl::StrFormat(
      "input: %d channel(s)%s, %dx%d (width x height), resize %s, mean [%s], std [%s]\n",
      input.channels(),
      input.channels() == 3
          ? absl::StrCat(" ", v1::InputSpec::ColorOrder_Name(input.color_order()))
          : "",
      input.width(), input.height(), v1::InputSpec::Resize_Name(input.resize()),
      absl::StrJoin(input.mean(), ", "), absl::StrJoin(input.std(), ", "));
  std::cout << "accepts:\n";
  for (const v1::AcceptedInput& accepted : response->accepted_inputs()) {
    std::cout << "  " << accepted.kind();
    if (accepted.kind() == "tensor") {
      std::cout << " " << v1::DataType_Name(accepted.dtype()) << " "
                << ShapeText(accepted.shape());
    }
    std::cout << ": " << accepted.description() << "\n";
  }
  std::cout << (response->heads().empty() ? "heads: none (serves embed only)\n"
                                          : "heads:\n");
  for (const v1::HeadMetadata& head : response->heads()) {
    constexpr int kShown = 12;
    std::vector<std::string> labels(
        head.labels().begin(),
        head.labels().begin() + std::min(head.labels_size(), kShown));
    if (head.labels_size() > kShown) {
      labels.push_back(absl::StrCat("... (", head.labels_size() - kShown, " more)"));
    }
    std::cout << absl::StrFormat("  %s v%d%s  %d classes: %s\n", head.name(),
                                 head.version(), head.is_default() ? " (default)" : "",
                                 head.num_classes(), absl::StrJoin(labels, ", "));
  }
  const v1::BatchingConfig& batching = response->batching();
  std::cout << absl::StrFormat(
      "batching: max_batch_size=%d max_queue_delay_us=%d model_workers=%d "
      "max_inputs_per_request=%d\n",
      batching.max_batch_size(), batching.max_queue_delay_us(), response->model_workers(),
      response->max_inputs_per_request());
  for (const v1::InstanceMetadata& instance : response->instances()) {
    std::cout << "instance " << instance.device()
              << (instance.optimized() ? "  optimized graph" : "")
              << (instance.optimize_note().empty()
                      ? ""
                      : absl::StrCat("  (not optimized: ", instance.optimize_note(), ")"))
              << "\n  " << instance.serving() << "\n";
  }
  return 0;
}

int Health(const HeadwayClient& client, const std::vector<char*>& operands) {
  const std::string service = operands.empty() ? "" : operands[0];
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> status =
      client.CheckHealth(service);
  if (!status.ok()) return Fail(status.status());
  if (absl::GetFlag(FLAGS_json)) {
    grpc::health::v1::HealthCheckResponse response;
    response.set_status(*status);
    PrintJson(response);
  } else {
    std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status)
              << "\n";
  }
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

// Runs a management command on the replicas the target names (ReplicaTargets), one
// after the other, each told by a header line when there are several; 0 when every
// one succeeded. A persisted change goes to one replica only: it writes the shared
// store and every replica follows it, where sending it to each would write it again
// as a new version each time.
int OnEveryReplica(const std::string& command, const HeadwayClient::Options& options,
                   const std::function<int(const HeadwayClient&)>& run) {
  absl::StatusOr<std::vector<ReplicaTarget>> replicas = ReplicaTargets(options.target);
  if (!replicas.ok()) return Fail(replicas.status());
  const auto on = [&](const ReplicaTarget& replica) {
    HeadwayClient::Options one = options;
    one.target = replica.target;
    if (one.tls.server_name.empty()) one.tls.server_name = replica.host_name;
    absl::StatusOr<std::unique_ptr<HeadwayClient>> client = HeadwayClient::Create(one);
    return client.ok() ? run(**client) : Fail(client.status());
  };
  if (replicas->size() == 1) return on(replicas->front());
  if (absl::GetFlag(FLAGS_json)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--json prints one server's answer, and ", options.target, " names ",
                     replicas->size(), " replicas: give one --target, or drop --json")));
  }
  if (absl::GetFlag(FLAGS_persist) &&
      (command == "swap-head" || command == "remove-head" || command == "fit-head")) {
    const ReplicaTarget& writer = replicas->front();
    std::cout << "replica " << writer.target << ": " << std::flush;
    const int rc = on(writer);
    std::cout << (rc == 0 ? "the other replicas follow the store within their "
                            "--store_poll_interval\n"
                          : "")
              << std::flush;
    if (rc != 0) {
      std::cerr << "headway: a persisted change is sent to the first replica only (it "
                   "is written once, and every replica follows the store)\n";
    }
    return rc;
  }
  std::vector<std::string> failed;
  for (const ReplicaTarget& replica : *replicas) {
    std::cout << "replica " << replica.target << ": " << std::flush;
    if (on(replica) != 0) failed.push_back(replica.target);
  }
  if (failed.empty()) return 0;
  std::cerr << "headway: " << command << " failed on " << failed.size() << " of "
            << replicas->size() << " replicas: " << absl::StrJoin(failed, ", ") << "\n";
  return 1;
}

// Runs a job command on the first replica the target names: a job lives on the
// server that runs it, so starting, following and cancelling it go to one server.
int OnFirstReplica(const HeadwayClient::Options& options,
                   const std::function<int(const HeadwayClient&)>& run) {
  absl::StatusOr<std::vector<ReplicaTarget>> replicas = ReplicaTargets(options.target);
  if (!replicas.ok()) return Fail(replicas.status());
  HeadwayClient::Options one = options;
  one.target = replicas->front().target;
  if (one.tls.server_name.empty()) one.tls.server_name = replicas->front().host_name;
  if (replicas->size() > 1) {
    std::cerr << "headway: fine-tuning jobs run on one server: using " << one.target
              << " (the new model reaches the other replicas through the store)\n";
  }
  absl::StatusOr<std::unique_ptr<HeadwayClient>> client = HeadwayClient::Create(one);
  return client.ok() ? run(**client) : Fail(client.status());
}

}  // namespace
}  // namespace headway

int main(int argc, char** argv) {
  // `headway COMMAND --help`: that command's usage and flags; `headway --help`: all.
  std::string command_asked;
  for (int i = 1; i < argc && command_asked.empty(); ++i) {
    if (argv[i][0] != '-') command_asked = argv[i];
  }
  const auto& command_flags = headway::CommandFlags();
  const auto known = command_flags.find(command_asked);
  if (headway::PrintHelpIfAsked(
          argc, argv,
          known == command_flags.end() ? headway::kUsage
                                       : headway::CommandUsage(command_asked),
          [&](absl::string_view name, absl::string_view file) {
            if (absl::EndsWith(file, "connection_flags.cc")) return true;
            if (!absl::EndsWith(file, "headway_main.cc")) return false;
            if (known == command_flags.end() || name == "target" || name == "timeout") {
              return true;
            }
            return std::find(known->second.begin(), known->second.end(), name) !=
                   known->second.end();
          })) {
    return 0;
  }
  absl::SetProgramUsageMessage(headway::kUsage);
  headway::SetVersionFlag("headway", headway::ConnectionFlagsInHelp("headway_main.cc"));
  if (absl::Status units = headway::CheckDurationUnits(argc, argv, {"timeout"});
      !units.ok()) {
    return headway::Fail(units);
  }
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  headway::ApplyBuildTypeDefaults();
  if (args.size() < 2) {
    std::cerr << headway::kUsage << "\n";
    return 2;
  }
  const std::string command = args[1];
  const std::vector<char*> operands(args.begin() + 2, args.end());
  headway::HeadwayClient::Options options;
  options.target = absl::GetFlag(FLAGS_target);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.tls = headway::TlsOptionsFromFlags();
  absl::StatusOr<std::string> admin_token = headway::AdminTokenFromFlags();
  if (!admin_token.ok()) return headway::Fail(admin_token.status());
  options.admin_token = *std::move(admin_token);
  using Management = std::function<int(const headway::HeadwayClient&)>;
  const std::map<std::string, Management> management = {
      {"swap-head", headway::SwapHead},
      {"remove-head", headway::RemoveHead},
      {"fit-head",
       [&operands](const headway::HeadwayClient& client) {
         return headway::FitHead(client, operands);
       }},
      {"load", headway::LoadModel},
      {"unload", headway::UnloadModel}};
  if (auto it = management.find(command); it != management.end()) {
    return headway::OnEveryReplica(command, options, it->second);
  }
  using JobCommand = std::function<int(const headway::HeadwayClient&)>;
  const std::map<std::string, JobCommand> job_commands = {
      {"finetune",
       [&operands](const headway::HeadwayClient& client) {
         return headway::FineTune(client, operands);
       }},
      {"jobs", headway::Jobs},
      {"job",
       [&operands](const headway::HeadwayClient& client) {
         return headway::Job(client, operands, /*cancel=*/false);
       }},
      {"cancel-job", [&operands](const headway::HeadwayClient& client) {
         return headway::Job(client, operands, /*cancel=*/true);
       }}};
  if (auto it = job_commands.find(command); it != job_commands.end()) {
    return headway::OnFirstReplica(options, it->second);
  }
  absl::StatusOr<std::unique_ptr<headway::HeadwayClient>> client =
      headway::HeadwayClient::Create(options);
  if (!client.ok()) return headway::Fail(client.status());
  if (command == "classify") return headway::Classify(**client, operands);
  if (command == "embed") return headway::Embed(**client, operands);
  if (command == "models") return headway::Models(**client);
  if (command == "describe") return headway::Describe(**client, operands);
  if (command == "health") return headway::Health(**client, operands);
  std::cerr << "headway: unknown command \"" << command << "\"\n"
            << headway::kUsage << "\n";
  return 2;
}
