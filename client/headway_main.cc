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
//   headway load --model=digits [--device=cpu]
//   headway unload --model=digits [--device=cpu]
//   headway models
//   headway describe [MODEL]
//   headway health [SERVICE]
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

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
    "follows.\n"
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
      {"fit-head", {"model", "head", "l2", "replace", "persist", "device", "json"}},
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
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::cout << json;
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
absl::Status ReadImageFolder(const std::string& dir, v1::FitHeadRequest& request) {
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
    for (const v1::HeadStatus& head : model.heads()) {
      std::cout << absl::StrFormat("  head %s v%d  classes=%d%s\n", head.name(),
                                   head.version(), head.num_classes(),
                                   head.is_default() ? "  (default)" : "");
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
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
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
