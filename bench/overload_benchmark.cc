// headway_bench_overload: what a server does under overload and during a storm of
// management calls, measured against one real headway_server on 127.0.0.1, all in one
// run. Prints one table of figures and ratios; asserts nothing (a benchmark, not a
// test).
//
//  1. unloaded: one closed-loop caller; its p99 is the reference latency.
//  2. capacity: closed-loop callers enough to fill the server; goodput there is
//     "capacity", and the server's resident memory after it is the base figure.
//     Then the transport's ceiling: gRPC health checks (an empty RPC) from 64
//     closed-loop callers. A refusal costs the server about one empty RPC, so an
//     offered rate above the ceiling cannot all reach a handler to be refused: the
//     excess waits in the kernel and in gRPC, where no admission limit sees it.
//  3. overload: an open loop offering `--overload_factor` x capacity for
//     `--overload_seconds`, with no client deadline and then with
//     `--deadline_ms`: p99 of accepted calls against the unloaded p99, goodput
//     against the capacity measured right before and right after that overload (the
//     mean of the two: a shared machine's speed drifts by 10-20% within minutes, and
//     bracketing keeps that out of the ratio), peak resident memory against the base,
//     what was refused, the time until a probe is answered at normal latency once the
//     overload stops, and resident memory 2 s after; `--overload_rounds` rounds of
//     the two (with more than one, each ratio's median over them too).
//  4. storm: Classify under steady closed-loop load alone, then while one long-lived
//     admin client swaps a head back and forth and loads and unloads another model,
//     interleaved (`--storm` picks one kind alone): p50/p99 of both and their ratio;
//     then the same load beside a thread that only spins, at the management pool's
//     priority (nice 10, 0.1 ms slice): what busy background work costs inference on
//     this machine whatever it does, the floor a storm's ratio is read against.
//     `--storm_rounds` rounds of the three, interleaved; the ratios printed are the
//     rounds' medians.
//  5. shutdown: SIGTERM to exit.
//
// Every call sends one input: a float32 tensor of `--input_shape`, or one of the
// encoded `--images` (a refused call's bytes cost the server to receive, and a
// 224x224 tensor is 600 KB where a JPEG of it is a few dozen).
//
// Usage: headway_bench_overload [--server=PATH] [--model_store=models] [flags]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/bench_support.h"
#include "client/headway_client.h"
#include "client/load_generator.h"
#include "model_store/base_priority_thread.h"
#include "version/build_type_defaults.h"
#include "version/version.h"

ABSL_FLAG(std::string, server, HEADWAY_SERVER_BINARY, "The headway_server binary.");
ABSL_FLAG(std::string, model_store, HEADWAY_SOURCE_DIR "/models",
          "A model store holding --model; copied, so a second model can be added.");
ABSL_FLAG(std::string, model, "digits", "The model to load.");
ABSL_FLAG(std::vector<std::string>, input_shape,
          std::vector<std::string>({"1", "20", "20"}),
          "The model's float32 input shape (C,H,W).");
ABSL_FLAG(std::vector<std::string>, images, {},
          "Encoded image files (JPEG, PNG, ...) to send instead of float32 tensors, "
          "comma separated: what most clients send, and far fewer bytes a call.");
ABSL_FLAG(std::string, swap_head, "digit", "The head the storm swaps back and forth.");
ABSL_FLAG(std::string, swap_file, "heads/parity.pt", "...to this file and back.");
ABSL_FLAG(std::string, swap_labels, "heads/parity.labels", "...with these labels.");
ABSL_FLAG(std::string, swap_back_file, "heads/digit.pt", "The head's own file.");
ABSL_FLAG(std::string, swap_back_labels, "heads/digit.labels", "The head's own labels.");
ABSL_FLAG(std::vector<std::string>, storm, std::vector<std::string>({"swaps", "loads"}),
          "What the storm interleaves: swaps (of --swap_head, there and back), loads "
          "(unloads and loads of a second model), or both.");
ABSL_FLAG(bool, spin_reference, true,
          "Also measure the steady load beside a thread spinning at the management "
          "pool's priority.");
ABSL_FLAG(int, storm_rounds, 3,
          "Rounds of steady, storm (and spinner) runs, interleaved; ratios are "
          "medians.");
ABSL_FLAG(double, overload_factor, 10, "Offered load, as a multiple of capacity.");
ABSL_FLAG(absl::Duration, overload_seconds, absl::Seconds(20),
          "Length of each overload.");
ABSL_FLAG(int, overload_rounds, 1,
          "Rounds of the two overloads (no deadline, then --deadline_ms); with more "
          "than one, the table adds each ratio's median over the rounds.");
ABSL_FLAG(absl::Duration, deadline_ms, absl::Milliseconds(500),
          "Client deadline of the second overload.");
ABSL_FLAG(absl::Duration, phase_seconds, absl::Seconds(6),
          "Length of the unloaded, capacity and storm phases.");
ABSL_FLAG(int, capacity_concurrency, 8, "Closed-loop callers that fill the server.");
ABSL_FLAG(
    std::string, config_append, "",
    "Text appended to the model's config.pbtxt, e.g. \"batching { max_queue_size: 8 "
    "}\".");
ABSL_FLAG(std::vector<std::string>, server_flags, {},
          "Extra headway_server flags, comma separated.");

namespace headway {
namespace {

int64_t ResidentKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    int64_t kb = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)),
                         &kb)) {
      return kb;
    }
  }
  return 0;
}

// What every call sends, one input each: the --images files, or float32 tensors of
// --input_shape. Built once, before the server starts.
absl::StatusOr<std::vector<v1::Input>> CallInputs() {
  std::vector<v1::Input> inputs;
  if (!absl::GetFlag(FLAGS_images).empty()) {
    for (const std::string& path : absl::GetFlag(FLAGS_images)) {
      absl::StatusOr<v1::Input> input = ImageInputFromFile(path);
      if (!input.ok()) return input.status();
      inputs.push_back(*std::move(input));
    }
    return inputs;
  }
  std::vector<int64_t> shape;
  int64_t elements = 1;
  for (const std::string& d : absl::GetFlag(FLAGS_input_shape)) {
    int64_t value = 0;
    if (absl::SimpleAtoi(d, &value)) shape.push_back(value);
    elements *= value;
  }
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<float> values(elements);
    for (int64_t i = 0; i < elements; ++i)
      values[i] = ((i * 7 + variant * 13) % 17) / 17.0f;
    v1::Input input;
    input.mutable_tensor()->set_dtype(v1::FLOAT32);
    for (int64_t d : shape) input.mutable_tensor()->add_shape(d);
    input.mutable_tensor()->set_data(std::string(
        reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    inputs.push_back(std::move(input));
  }
  return inputs;
}

LoadOptions BaseLoad(const std::string& target, const std::vector<v1::Input>& inputs) {
  LoadOptions load;
  load.target = target;
  load.model = absl::GetFlag(FLAGS_model);
  load.progress = false;
  load.warmup = absl::Seconds(1);
  load.duration = absl::GetFlag(FLAGS_phase_seconds);
  load.channels = 4;
  load.inputs = inputs;
  return load;
}

LoadReport MustRun(const LoadOptions& load) {
  absl::StatusOr<LoadReport> report = RunLoad(load);
  if (!report.ok()) {
    std::cerr << "load failed: " << report.status() << "\n";
    std::exit(1);
  }
  return *report;
}

std::string Errors(const LoadReport& report) {
  std::vector<std::string> parts;
  for (const auto& [code, count] : report.errors)
    parts.push_back(absl::StrCat(code, " ", count));
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

void Row(const std::string& name, const std::string& value,
         const std::string& note = "") {
  std::cout << absl::StrFormat("| %-44s | %-22s | %s |\n", name, value, note);
}

struct OverloadFigures {
  LoadReport report;
  int64_t peak_kb = 0;
  int64_t after_kb = 0;
  double recovery_ms = -1;
};

// Offers `rate` calls/s open loop; meanwhile samples the server's memory, then probes
// from the moment the offered load stops until a call is answered within
// `normal_ms`.
OverloadFigures Overload(const bench::ServerRun& server,
                         const std::vector<v1::Input>& inputs, double rate,
                         absl::Duration timeout, double normal_ms) {
  LoadOptions load = BaseLoad(server.target, inputs);
  load.rate = rate;
  load.poisson = true;
  load.timeout = timeout;
  load.duration = absl::GetFlag(FLAGS_overload_seconds);
  OverloadFigures figures;
  std::atomic<bool> running{true};
  std::thread sampler([&] {
    while (running) {
      figures.peak_kb = std::max(figures.peak_kb, ResidentKb(server.pid));
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  const absl::Time stops = absl::Now() + load.warmup + load.duration;
  LoadReport report;
  std::thread offered([&] { report = MustRun(load); });
  absl::SleepFor(stops - absl::Now());
  HeadwayClient::Options probe_options;
  probe_options.target = server.target;
  probe_options.timeout = absl::Seconds(5);
  auto probe = HeadwayClient::Create(probe_options);
  v1::ClassifyRequest request;
  request.set_model(load.model);
  *request.add_inputs() = load.inputs[0];
  while (probe.ok() && absl::Now() - stops < absl::Seconds(30)) {
    const absl::Time sent = absl::Now();
    if ((*probe)->Classify(request).ok() &&
        absl::ToDoubleMilliseconds(absl::Now() - sent) <= normal_ms) {
      figures.recovery_ms = absl::ToDoubleMilliseconds(absl::Now() - stops);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  offered.join();
  running = false;
  sampler.join();
  absl::SleepFor(absl::Seconds(2));
  figures.after_kb = ResidentKb(server.pid);
  figures.report = report;
  return figures;
}

// The middle value; with an even count, the mean of the two middle ones.
double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  absl::c_sort(values);
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle]
                                : (values[middle - 1] + values[middle]) / 2;
}

// One overload and the capacity it is read against: the mean of the capacity runs
// right before and right after it.
struct ReadOverload {
  OverloadFigures figures;
  double capacity = 0;
};

void PrintOverload(const std::string& name, const OverloadFigures& figures,
                   double unloaded_p99, double capacity, int64_t base_kb) {
  const LoadReport& r = figures.report;
  Row(name + ": p99 accepted / unloaded p99",
      absl::StrFormat("%.2f", r.p99 / unloaded_p99),
      absl::StrFormat("p99 %.1f ms", r.p99));
  Row(name + ": goodput / capacity", absl::StrFormat("%.2f", r.throughput / capacity),
      absl::StrFormat("%.0f ok/s against %.0f: capacity before and after, their mean",
                      r.throughput, capacity));
  Row(name + ": peak RSS / base",
      absl::StrFormat("%.2f", 1.0 * figures.peak_kb / base_kb),
      absl::StrFormat("%d MB", figures.peak_kb / 1024));
  Row(name + ": RSS 2 s after / base",
      absl::StrFormat("%.2f", 1.0 * figures.after_kb / base_kb),
      absl::StrFormat("%d MB", figures.after_kb / 1024));
  Row(name + ": full service again after",
      absl::StrFormat("%.0f ms", figures.recovery_ms),
      "first call at normal latency once the offered load stops");
  Row(name + ": refused", Errors(r), "");
}

// The median over rounds of each ratio PrintOverload gives.
void PrintOverloadMedians(const std::string& name, const std::vector<ReadOverload>& runs,
                          double unloaded_p99, int64_t base_kb) {
  std::vector<double> p99, goodput, peak, after, recovery;
  for (const ReadOverload& run : runs) {
    p99.push_back(run.figures.report.p99 / unloaded_p99);
    goodput.push_back(run.figures.report.throughput / run.capacity);
    peak.push_back(1.0 * run.figures.peak_kb / base_kb);
    after.push_back(1.0 * run.figures.after_kb / base_kb);
    recovery.push_back(run.figures.recovery_ms);
  }
  const std::string note = absl::StrCat("median of ", runs.size(), " rounds");
  Row(name + ": p99 accepted / unloaded p99", absl::StrFormat("%.2f", Median(p99)), note);
  Row(name + ": goodput / capacity", absl::StrFormat("%.2f", Median(goodput)), note);
  Row(name + ": peak RSS / base", absl::StrFormat("%.2f", Median(peak)), note);
  Row(name + ": RSS 2 s after / base", absl::StrFormat("%.2f", Median(after)), note);
  Row(name + ": full service again after", absl::StrFormat("%.0f ms", Median(recovery)),
      note);
}

enum class StormStep { kSwapThere, kUnload, kSwapBack, kLoad };

// The storm's cycle of calls, from --storm: a swap there, an unload, a swap back and a
// load, or the swaps or the loads alone.
std::vector<StormStep> StormCycle() {
  const std::vector<std::string> kinds = absl::GetFlag(FLAGS_storm);
  const bool swaps = absl::c_linear_search(kinds, "swaps");
  const bool loads = absl::c_linear_search(kinds, "loads");
  std::vector<StormStep> cycle;
  for (StormStep step : {StormStep::kSwapThere, StormStep::kUnload, StormStep::kSwapBack,
                         StormStep::kLoad}) {
    const bool swap = step == StormStep::kSwapThere || step == StormStep::kSwapBack;
    if (swap ? swaps : loads) cycle.push_back(step);
  }
  return cycle;
}

// Runs the storm's cycle of calls from one client until `stop`; returns the number of
// calls and failures.
std::pair<int, int> Storm(const std::string& target, const std::string& model,
                          const std::string& other, const std::atomic<bool>& stop) {
  HeadwayClient::Options options;
  options.target = target;
  auto client = HeadwayClient::Create(options);
  int calls = 0, failures = 0;
  if (!client.ok()) return {0, 1};
  const std::vector<StormStep> cycle = StormCycle();
  if (cycle.empty()) return {0, 0};
  for (size_t step = 0; !stop; ++step) {
    absl::Status status;
    const StormStep kind = cycle[step % cycle.size()];
    switch (kind) {
      case StormStep::kSwapThere:
      case StormStep::kSwapBack: {
        v1::HotSwapHeadRequest swap;
        swap.set_model(model);
        swap.set_head(absl::GetFlag(FLAGS_swap_head));
        const bool there = kind == StormStep::kSwapThere;
        swap.set_file(there ? absl::GetFlag(FLAGS_swap_file)
                            : absl::GetFlag(FLAGS_swap_back_file));
        swap.set_labels_file(there ? absl::GetFlag(FLAGS_swap_labels)
                                   : absl::GetFlag(FLAGS_swap_back_labels));
        status = (*client)->HotSwapHead(swap).status();
        break;
      }
      case StormStep::kUnload: {
        v1::UnloadModelRequest unload;
        unload.set_model(other);
        status = (*client)->UnloadModel(unload).status();
        break;
      }
      case StormStep::kLoad: {
        v1::LoadModelRequest load;
        load.set_model(other);
        status = (*client)->LoadModel(load).status();
        break;
      }
    }
    ++calls;
    failures += !status.ok();
  }
  return {calls, failures};
}

// Spins at the management pool's priority until `stop`: CPU use by a thread that
// yields to inference exactly as loads and swaps do, without their work.
void SpinAtManagementPriority(const std::atomic<bool>& stop) {
  LowerThisThreadsPriority(kBackgroundNiceness);
  volatile uint64_t sink = 0;
  while (!stop) {
    for (int i = 0; i < 100000; ++i) sink = sink + i;
  }
}

// One round of the storm phase: the steady load alone, during a storm, and (with
// --spin_reference) beside a spinner at the management pool's priority, run back to back
// so that the three see the same machine.
struct StormRound {
  LoadReport steady;
  LoadReport stormy;
  std::pair<int, int> storm_calls;  // calls, failures
  std::optional<LoadReport> spun;
};

StormRound RunStormRound(const LoadOptions& steady_load, const std::string& target,
                         const std::string& model, const std::string& other) {
  StormRound round;
  round.steady = MustRun(steady_load);
  std::atomic<bool> stop{false};
  std::thread storm([&] { round.storm_calls = Storm(target, model, other, stop); });
  round.stormy = MustRun(steady_load);
  stop = true;
  storm.join();
  if (absl::GetFlag(FLAGS_spin_reference)) {
    std::atomic<bool> spin_stop{false};
    std::thread spinner([&] { SpinAtManagementPriority(spin_stop); });
    round.spun = MustRun(steady_load);
    spin_stop = true;
    spinner.join();
  }
  return round;
}

// Prints each round's p50/p99 and the median ratios over the rounds.
void PrintStormRounds(const std::vector<StormRound>& rounds) {
  std::vector<double> storm_ratios, spin_ratios;
  for (size_t i = 0; i < rounds.size(); ++i) {
    const StormRound& round = rounds[i];
    const std::string name = absl::StrCat("round ", i + 1, ": ");
    Row(name + "steady p50 / p99",
        absl::StrFormat("%.1f / %.1f ms", round.steady.p50, round.steady.p99),
        "4 callers");
    Row(name + "storm p50 / p99",
        absl::StrFormat("%.1f / %.1f ms", round.stormy.p50, round.stormy.p99),
        absl::StrFormat("%d calls: %s (%d failed); inference errors: %s",
                        round.storm_calls.first,
                        absl::StrJoin(absl::GetFlag(FLAGS_storm), ", "),
                        round.storm_calls.second, Errors(round.stormy)));
    storm_ratios.push_back(round.stormy.p99 / round.steady.p99);
    if (round.spun) {
      Row(name + "spinner p50 / p99",
          absl::StrFormat("%.1f / %.1f ms", round.spun->p50, round.spun->p99),
          "a thread spinning at management's priority, no calls");
      spin_ratios.push_back(round.spun->p99 / round.steady.p99);
    }
  }
  Row("p99 storm / steady", absl::StrFormat("%.2f", Median(storm_ratios)),
      absl::StrCat("median of ", storm_ratios.size(), " rounds"));
  if (!spin_ratios.empty()) {
    Row("p99 spinner / steady", absl::StrFormat("%.2f", Median(spin_ratios)),
        "median; busy background work at management's priority");
  }
}

int Main() {
  if (absl::GetFlag(FLAGS_storm_rounds) < 1) {
    std::cerr << "--storm_rounds must be at least 1\n";
    return 2;
  }
  for (const std::string& kind : absl::GetFlag(FLAGS_storm)) {
    if (kind != "swaps" && kind != "loads") {
      std::cerr << "--storm takes swaps, loads or both, not \"" << kind << "\"\n";
      return 2;
    }
  }
  const absl::StatusOr<std::vector<v1::Input>> inputs = CallInputs();
  if (!inputs.ok()) {
    std::cerr << inputs.status() << "\n";
    return 2;
  }
  char work_template[] = "/tmp/headway-overload-XXXXXX";
  const std::filesystem::path work = mkdtemp(work_template);
  const std::filesystem::path store = work / "store";
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string other = model + "_other";
  std::filesystem::create_directories(store);
  std::filesystem::copy(std::filesystem::path(absl::GetFlag(FLAGS_model_store)) / model,
                        store / model, std::filesystem::copy_options::recursive);
  std::filesystem::copy(store / model, store / other,
                        std::filesystem::copy_options::recursive);
  {
    std::ifstream in(store / other / "config.pbtxt");
    std::string config((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
    const size_t at = config.find("name: \"" + model + "\"");
    if (at != std::string::npos)
      config.replace(at, model.size() + 8, "name: \"" + other + "\"");
    std::ofstream(store / other / "config.pbtxt") << config;
  }
  std::ofstream(store / model / "config.pbtxt", std::ios::app)
      << "\n"
      << absl::GetFlag(FLAGS_config_append) << "\n";
  const bench::ServerRun server = bench::StartServer(
      absl::GetFlag(FLAGS_server), store, work, absl::GetFlag(FLAGS_server_flags));
  {
    HeadwayClient::Options options;
    options.target = server.target;
    options.timeout = absl::Seconds(120);
    auto client = HeadwayClient::Create(options);
    if (!client.ok() || !(*client)->ListModels().ok()) {
      std::cerr << "the server did not start; see " << (work / "server.log") << "\n";
      return 1;
    }
  }

  LoadOptions unloaded_load = BaseLoad(server.target, *inputs);
  unloaded_load.concurrency = 1;
  const LoadReport unloaded = MustRun(unloaded_load);
  LoadOptions capacity_load = BaseLoad(server.target, *inputs);
  capacity_load.concurrency = absl::GetFlag(FLAGS_capacity_concurrency);
  const LoadReport capacity = MustRun(capacity_load);
  LoadOptions ceiling_load = BaseLoad(server.target, *inputs);
  ceiling_load.rpc = "health";
  ceiling_load.concurrency = 64;
  const LoadReport ceiling = MustRun(ceiling_load);
  absl::SleepFor(absl::Seconds(1));
  const int64_t base_kb = ResidentKb(server.pid);
  const double rate = capacity.throughput * absl::GetFlag(FLAGS_overload_factor);
  const double normal_ms = 2 * unloaded.p99;

  // Each overload is bracketed by capacity runs; its goodput is read against their
  // mean.
  std::vector<double> capacities = {capacity.throughput};
  std::vector<std::string> capacity_errors;  // of the runs after overloads
  std::vector<ReadOverload> open, bounded;
  for (int round = 0; round < std::max(1, absl::GetFlag(FLAGS_overload_rounds));
       ++round) {
    for (std::vector<ReadOverload>* runs : {&open, &bounded}) {
      const absl::Duration timeout =
          runs == &open ? absl::Seconds(30) : absl::GetFlag(FLAGS_deadline_ms);
      ReadOverload run;
      run.figures = Overload(server, *inputs, rate, timeout, normal_ms);
      const LoadReport after = MustRun(capacity_load);
      capacities.push_back(after.throughput);
      if (!after.errors.empty()) {
        capacity_errors.push_back(
            absl::StrCat("run ", capacities.size() - 1, ": ", Errors(after)));
      }
      run.capacity = (capacities[capacities.size() - 2] + capacities.back()) / 2;
      runs->push_back(std::move(run));
    }
  }

  LoadOptions steady_load = BaseLoad(server.target, *inputs);
  steady_load.concurrency = 4;
  std::vector<StormRound> rounds(absl::GetFlag(FLAGS_storm_rounds));
  for (StormRound& round : rounds) {
    round = RunStormRound(steady_load, server.target, model, other);
  }

  const absl::Time signalled = absl::Now();
  kill(server.pid, SIGTERM);
  int status = 0;
  waitpid(server.pid, &status, 0);
  const double shutdown_ms = absl::ToDoubleMilliseconds(absl::Now() - signalled);

  std::cout << "CPU: " << bench::CpuLine() << "\n";
  std::cout << absl::StrFormat(
      "Model %s, %s inputs; overload %.0fx capacity (%.0f calls/s offered, "
      "Poisson) for %s; config added: %s; server flags: %s\n\n",
      model,
      absl::GetFlag(FLAGS_images).empty()
          ? absl::StrCat("float32 ", absl::StrJoin(absl::GetFlag(FLAGS_input_shape), "x"))
          : absl::StrCat(absl::GetFlag(FLAGS_images).size(), " encoded image"),
      absl::GetFlag(FLAGS_overload_factor), rate,
      absl::FormatDuration(absl::GetFlag(FLAGS_overload_seconds)),
      absl::GetFlag(FLAGS_config_append).empty() ? "none"
                                                 : absl::GetFlag(FLAGS_config_append),
      absl::StrJoin(absl::GetFlag(FLAGS_server_flags), " "));
  Row("figure", "value", "note");
  Row("---", "---", "---");
  Row("unloaded p50 / p99", absl::StrFormat("%.1f / %.1f ms", unloaded.p50, unloaded.p99),
      "one caller");
  Row("capacity", absl::StrFormat("%.0f ok/s", capacity.throughput),
      absl::StrFormat("%d callers, p99 %.1f ms; after each overload %s ok/s",
                      capacity_load.concurrency, capacity.p99,
                      absl::StrJoin(capacities.begin() + 1, capacities.end(), ", ",
                                    [](std::string* out, double value) {
                                      absl::StrAppend(out,
                                                      absl::StrFormat("%.0f", value));
                                    })));
  if (!capacity_errors.empty()) {
    Row("capacity runs' errors", absl::StrJoin(capacity_errors, "; "),
        "calls a closed loop of callers had refused after an overload");
  }
  Row("base RSS", absl::StrFormat("%d MB", base_kb / 1024), "after the capacity run");
  Row("empty RPC (transport ceiling)",
      absl::StrFormat("%.0f calls/s", ceiling.throughput),
      "gRPC health, 64 callers: about what the server can refuse");
  Row("offered / transport ceiling", absl::StrFormat("%.2f", rate / ceiling.throughput),
      rate > ceiling.throughput
          ? "above 1: calls queue in the kernel and gRPC before admission sees them"
          : "at most 1: every call can reach admission");
  const std::string deadline =
      absl::StrCat(absl::FormatDuration(absl::GetFlag(FLAGS_deadline_ms)), " deadline");
  for (size_t round = 0; round < open.size(); ++round) {
    const std::string prefix =
        open.size() > 1 ? absl::StrCat("round ", round + 1, ", ") : "";
    PrintOverload(prefix + "no deadline", open[round].figures, unloaded.p99,
                  open[round].capacity, base_kb);
    PrintOverload(prefix + deadline, bounded[round].figures, unloaded.p99,
                  bounded[round].capacity, base_kb);
  }
  if (open.size() > 1) {
    PrintOverloadMedians("no deadline", open, unloaded.p99, base_kb);
    PrintOverloadMedians(deadline, bounded, unloaded.p99, base_kb);
  }
  PrintStormRounds(rounds);
  Row("SIGTERM to exit", absl::StrFormat("%.0f ms", shutdown_ms),
      absl::StrCat("exit code ", WIFEXITED(status) ? WEXITSTATUS(status) : -1));
  std::filesystem::remove_all(work);
  return 0;
}

}  // namespace
}  // namespace headway

int main(int argc, char** argv) {
  headway::SetVersionFlag("headway_bench_overload");
  absl::SetProgramUsageMessage(
      "Measures a headway_server under 10x overload and during a storm of management "
      "calls.\nUsage: headway_bench_overload [--model_store=models] [flags]");
  absl::ParseCommandLine(argc, argv);
  headway::ApplyBuildTypeDefaults();
  return headway::Main();
}
