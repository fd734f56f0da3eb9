// headway_loadgen: load generator for a Headway server. Closed loop (--concurrency, or
// a sweep over several: --concurrency=1,4,16,64) or open loop (--rate, constant or
// --poisson), for --duration or --requests after a --warmup; inputs from image files,
// folders or globs, or random tensors; Embed, Classify or the empty gRPC health call.
// Prints throughput, latency percentiles, errors by status code with their first
// messages, and whether the rate held steady, as text, JSON lines or CSV (--format),
// and writes the JSON with --json_out.
#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/connection_flags.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "version/build_type_defaults.h"
#include "version/cli_help.h"
#include "version/version.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "Server address, a comma-separated list of IP:port replicas, or a name such as "
          "dns:///headway:50051; calls are spread round robin.");
ABSL_FLAG(std::string, rpc, "classify", "classify, embed, or health (an empty RPC).");
ABSL_FLAG(std::string, model, "digits", "Model name.");
ABSL_FLAG(std::string, head, "", "Head for classify; empty: the default head.");
ABSL_FLAG(
    std::vector<std::string>, concurrency, {"4"},
    "Closed loop: calls kept in flight; several (1,4,16,64) run one after the other, "
    "a row each.");
ABSL_FLAG(double, rate, 0, "Open loop: calls started per second (0: closed loop).");
ABSL_FLAG(bool, poisson, false, "Open loop: Poisson arrivals instead of constant gaps.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "Measured time.");
ABSL_FLAG(int64_t, requests, 0, "Stop after this many measured calls (0: --duration).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(2), "Time run first and not measured.");
ABSL_FLAG(int, channels, 0,
          "gRPC channels (connections) to spread calls over. 0: one per 256 calls in "
          "flight (a server's default streams per connection), one for --rate.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call.");
ABSL_FLAG(std::vector<std::string>, images, {},
          "Images to send, comma separated: files, folders (every file inside) or glob "
          "patterns (quote them: 'photos/*.jpg').");
ABSL_FLAG(std::string, tensor_shape, "",
          "Send random float32 tensors of this shape (C,H,W) instead of images; with "
          "neither, tensors of the model's input shape (from GetModelMetadata).");
ABSL_FLAG(int, inputs_per_request, 1, "Inputs in each request.");
ABSL_FLAG(std::string, json_out, "", "Write the report as JSON to this file.");
ABSL_FLAG(bool, progress, true,
          "Show progress on stderr (rewritten in place on a terminal, a line a second "
          "otherwise).");
ABSL_FLAG(std::string, format, "text",
          "What stdout gets: text, json (a JSON object per line, one per concurrency) or "
          "csv (a header, then a row per concurrency).");

namespace {

// Eight random float32 tensors of `shape`.
std::vector<headway::v1::Input> RandomTensors(const std::vector<int64_t>& shape) {
  int64_t elements = 1;
  for (int64_t d : shape) elements *= d;
  std::mt19937 random(7);
  std::normal_distribution<float> normal;
  std::vector<headway::v1::Input> inputs;
  for (int variant = 0; variant < 8; ++variant) {
    std::vector<float> values(elements);
    for (float& v : values) v = normal(random);
    headway::v1::Input input;
    headway::v1::Tensor& tensor = *input.mutable_tensor();
    tensor.set_dtype(headway::v1::FLOAT32);
    for (int64_t d : shape) tensor.add_shape(d);
    tensor.set_data(reinterpret_cast<const char*>(values.data()),
                    values.size() * sizeof(float));
    inputs.push_back(std::move(input));
  }
  return inputs;
}

// The model's input shape [C, H, W], from the server's GetModelMetadata.
absl::StatusOr<std::vector<int64_t>> ModelInputShape() {
  headway::HeadwayClient::Options options;
  options.target = absl::GetFlag(FLAGS_target);
  options.tls = headway::TlsOptionsFromFlags();
  options.timeout = absl::GetFlag(FLAGS_timeout);
  absl::StatusOr<std::unique_ptr<headway::HeadwayClient>> client =
      headway::HeadwayClient::Create(options);
  if (!client.ok()) return client.status();
  absl::StatusOr<headway::v1::GetModelMetadataResponse> metadata =
      (*client)->GetModelMetadata(absl::GetFlag(FLAGS_model));
  if (!metadata.ok()) {
    return absl::Status(metadata.status().code(),
                        absl::StrCat("reading the model's input shape (give --images or "
                                     "--tensor_shape to skip it): ",
                                     metadata.status().message()));
  }
  const headway::v1::InputSpec& input = metadata->input();
  return std::vector<int64_t>{input.channels(), input.height(), input.width()};
}

// The files --images names: files as given, folders' files (sorted), glob matches.
absl::StatusOr<std::vector<std::string>> ImageFiles() {
  std::vector<std::string> files;
  for (const std::string& name : absl::GetFlag(FLAGS_images)) {
    std::error_code error;
    if (std::filesystem::is_directory(name, error)) {
      std::vector<std::string> inside;
      for (const auto& entry : std::filesystem::directory_iterator(name, error)) {
        if (entry.is_regular_file()) inside.push_back(entry.path().string());
      }
      std::sort(inside.begin(), inside.end());
      if (inside.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--images: ", name, " has no files"));
      }
      files.insert(files.end(), inside.begin(), inside.end());
    } else if (name.find_first_of("*?[") != std::string::npos) {
      glob_t matches;
      const int found = glob(name.c_str(), 0, nullptr, &matches);
      if (found != 0) {
        globfree(&matches);
        return absl::InvalidArgumentError(
            absl::StrCat("--images: nothing matches ", name));
      }
      for (size_t i = 0; i < matches.gl_pathc; ++i) files.push_back(matches.gl_pathv[i]);
      globfree(&matches);
    } else {
      files.push_back(name);
    }
  }
  return files;
}

absl::StatusOr<std::vector<headway::v1::Input>> Inputs() {
  std::vector<headway::v1::Input> inputs;
  absl::StatusOr<std::vector<std::string>> files = ImageFiles();
  if (!files.ok()) return files.status();
  for (const std::string& file : *files) {
    absl::StatusOr<headway::v1::Input> input = headway::ImageInputFromFile(file);
    if (!input.ok()) return input.status();
    inputs.push_back(*std::move(input));
  }
  const std::string shape_text = absl::GetFlag(FLAGS_tensor_shape);
  if (shape_text.empty()) {
    if (!inputs.empty() || absl::GetFlag(FLAGS_rpc) == "health") return inputs;
    absl::StatusOr<std::vector<int64_t>> shape = ModelInputShape();
    if (!shape.ok()) return shape.status();
    std::cerr << "headway_loadgen: sending random FLOAT32 tensors ["
              << absl::StrJoin(*shape, ",")
              << "], the model's input (GetModelMetadata)\n";
    return RandomTensors(*shape);
  }
  std::vector<int64_t> shape;
  for (absl::string_view part : absl::StrSplit(shape_text, ',')) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d <= 0) {
      return absl::InvalidArgumentError(
          "--tensor_shape must be positive integers, e.g. 3,224,224");
    }
    shape.push_back(d);
  }
  std::vector<headway::v1::Input> tensors = RandomTensors(shape);
  inputs.insert(inputs.end(), tensors.begin(), tensors.end());
  return inputs;
}

// --concurrency's values, each 1 or more.
absl::StatusOr<std::vector<int>> Concurrencies() {
  std::vector<int> values;
  for (const std::string& text : absl::GetFlag(FLAGS_concurrency)) {
    int value = 0;
    if (!absl::SimpleAtoi(text, &value) || value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--concurrency takes numbers of 1 or more (e.g. 4, or 1,4,16,64), not \"", text,
          "\""));
    }
    values.push_back(value);
  }
  if (values.empty()) return absl::InvalidArgumentError("--concurrency is empty");
  return values;
}

// Refuses flag values that would silently change what is measured.
absl::Status CheckFlags() {
  const double rate = absl::GetFlag(FLAGS_rate);
  if (rate < 0)
    return absl::InvalidArgumentError("--rate must be 0 (closed loop) or more");
  if (absl::Status concurrency = Concurrencies().status(); !concurrency.ok()) {
    return concurrency;
  }
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "text" && format != "json" && format != "csv") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format must be text, json or csv, not \"", format, "\""));
  }
  if (absl::GetFlag(FLAGS_requests) < 0) {
    return absl::InvalidArgumentError("--requests must be 0 (use --duration) or more");
  }
  if (absl::GetFlag(FLAGS_requests) == 0 &&
      absl::GetFlag(FLAGS_duration) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--duration must be positive, with a unit (e.g. 10s, 500ms)");
  }
  if (absl::GetFlag(FLAGS_warmup) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--warmup must not be negative");
  }
  if (absl::GetFlag(FLAGS_inputs_per_request) < 1) {
    return absl::InvalidArgumentError("--inputs_per_request must be 1 or more");
  }
  if (absl::GetFlag(FLAGS_channels) < 0) {
    return absl::InvalidArgumentError(
        "--channels must be 0 (one per 256 calls in flight) or more");
  }
  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream probe(path, std::ios::app);
    if (!probe) {
      return absl::InvalidArgumentError(absl::StrCat("--json_out: cannot write ", path));
    }
  }
  return absl::OkStatus();
}

// A report as one JSON object with the step's concurrency first (0 for open loop).
std::string JsonLine(int concurrency, const headway::LoadReport& report) {
  return absl::StrCat("{\"concurrency\": ", concurrency, ", ", report.ToJson().substr(1));
}

std::string CsvRow(int concurrency, const headway::LoadReport& report) {
  int64_t errors = 0;
  for (const auto& [code, count] : report.errors) errors += count;
  return absl::StrFormat("%d,%.3f,%d,%d,%.2f,%.2f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.4f,%s",
                         concurrency, report.seconds, report.ok, errors,
                         report.throughput, report.inputs_per_second, report.p50,
                         report.p90, report.p99, report.p999, report.max, report.mean,
                         report.variation, report.stable() ? "true" : "false");
}

constexpr char kCsvHeader[] =
    "concurrency,seconds,ok,errors,requests_per_second,inputs_per_second,p50_ms,p90_ms,"
    "p99_ms,p999_ms,max_ms,mean_ms,variation,stable";

// The sweep's rows as text: one line per concurrency.
std::string SweepTable(const std::vector<std::pair<int, headway::LoadReport>>& steps) {
  std::string table =
      absl::StrFormat("%11s %12s %10s %9s %9s %9s %7s  %s\n", "concurrency", "requests/s",
                      "inputs/s", "p50 ms", "p90 ms", "p99 ms", "errors", "rate held");
  for (const auto& [concurrency, report] : steps) {
    int64_t errors = 0;
    for (const auto& [code, count] : report.errors) errors += count;
    absl::StrAppendFormat(
        &table, "%11d %12.1f %10.1f %9.2f %9.2f %9.2f %7d  %s (%.0f%%)\n", concurrency,
        report.throughput, report.inputs_per_second, report.p50, report.p90, report.p99,
        errors, report.stable() ? "yes" : "no", 100 * report.variation);
  }
  return table;
}

}  // namespace

constexpr char kLoadgenUsage[] =
    "Load generator for a Headway server.\n"
    "Usage: headway_loadgen --target=HOST:PORT [--rpc=classify] (--images=a.png,b.jpg "
    "| "
    "--tensor_shape=3,224,224) [--concurrency=N | --rate=R [--poisson]] "
    "[--duration=10s] [--format=text|json|csv]"
    "\nA sweep: --concurrency=1,4,16,64 runs each in turn (warm-up included) and prints "
    "a row each, with whether its rate held steady (per-second rates within 10% of "
    "their mean)."
    "\nExit codes: 0 every call succeeded; 1 some calls failed; 2 bad flags or inputs.";

int main(int argc, char** argv) {
  if (headway::PrintHelpIfAsked(
          argc, argv, kLoadgenUsage, [](absl::string_view, absl::string_view file) {
            return absl::EndsWith(file, "headway_loadgen_main.cc") ||
                   absl::EndsWith(file, "connection_flags.cc");
          })) {
    return 0;
  }
  absl::SetProgramUsageMessage(kLoadgenUsage);
  headway::SetVersionFlag("headway_loadgen",
                          headway::ConnectionFlagsInHelp("headway_loadgen_main.cc"));
  if (absl::Status units =
          headway::CheckDurationUnits(argc, argv, {"duration", "warmup", "timeout"});
      !units.ok()) {
    std::cerr << "headway_loadgen: " << units.message() << "\n";
    return 2;
  }
  absl::ParseCommandLine(argc, argv);
  headway::ApplyBuildTypeDefaults();
  if (absl::Status flags = CheckFlags(); !flags.ok()) {
    std::cerr << "headway_loadgen: " << flags.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::vector<headway::v1::Input>> inputs = Inputs();
  if (!inputs.ok()) {
    std::cerr << "headway_loadgen: " << inputs.status() << "\n";
    return 2;
  }
  headway::LoadOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.tls = headway::TlsOptionsFromFlags();
  options.rpc = absl::GetFlag(FLAGS_rpc);
  options.model = absl::GetFlag(FLAGS_model);
  options.head = absl::GetFlag(FLAGS_head);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.poisson = absl::GetFlag(FLAGS_poisson);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.requests = absl::GetFlag(FLAGS_requests);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.channels = absl::GetFlag(FLAGS_channels);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.inputs = *std::move(inputs);
  options.inputs_per_request = absl::GetFlag(FLAGS_inputs_per_request);
  options.progress = absl::GetFlag(FLAGS_progress);
  // Open loop runs once; closed loop once per concurrency.
  const std::vector<int> concurrencies =
      options.rate > 0 ? std::vector<int>{0} : *Concurrencies();
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format == "csv") std::cout << kCsvHeader << "\n" << std::flush;
  std::vector<std::pair<int, headway::LoadReport>> steps;
  bool failed_calls = false;
  for (const int concurrency : concurrencies) {
    options.concurrency = std::max(1, concurrency);
    if (concurrencies.size() > 1 && options.progress) {
      std::cerr << "headway_loadgen: concurrency " << concurrency << "\n";
    }
    absl::StatusOr<headway::LoadReport> report = headway::RunLoad(options);
    if (!report.ok()) {
      std::cerr << "headway_loadgen: " << report.status() << "\n";
      return 2;
    }
    failed_calls = failed_calls || !report->errors.empty();
    if (format == "json")
      std::cout << JsonLine(concurrency, *report) << "\n" << std::flush;
    if (format == "csv") std::cout << CsvRow(concurrency, *report) << "\n" << std::flush;
    if (format == "text" && concurrencies.size() == 1) std::cout << report->ToText();
    steps.emplace_back(concurrency, *std::move(report));
  }
  if (format == "text" && steps.size() > 1) std::cout << SweepTable(steps);
  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream out(path);
    for (const auto& [concurrency, report] : steps) {
      out << (steps.size() == 1 ? report.ToJson() : JsonLine(concurrency, report))
          << "\n";
    }
    if (!out) {
      std::cerr << "headway_loadgen: --json_out: cannot write " << path << "\n";
      return 2;
    }
  }
  return failed_calls ? 1 : 0;
}
