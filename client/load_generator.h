// LoadGenerator: drives a Headway server with Embed, Classify or gRPC health calls and
// measures what it saw, in the spirit of ghz and perf_analyzer. Closed loop keeps
// `concurrency` calls in flight; open loop starts calls at `rate` per second (constant
// or Poisson arrivals) whatever the server does. Calls go out on gRPC's callback API
// over several channels; a warm-up period is run and not counted.
//
// The measured window runs from the end of the warm-up to `duration` later. A call
// counts when it completes inside the window, whenever it was sent: counting only the
// calls sent inside it would miss those in flight when it opens, and read throughput
// low by latency/duration (4% at 8 s with 340 ms calls).
//
// Run() is not reentrant; one LoadGenerator per run.
#ifndef HEADWAY_CLIENT_LOAD_GENERATOR_H_
#define HEADWAY_CLIENT_LOAD_GENERATOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "headway/v1/inference.pb.h"

namespace headway {

struct LoadOptions {
  std::string target;
  // Transport security; plaintext when tls.ca_file is empty.
  TlsOptions tls;
  // "classify", "embed" or "health" (an empty RPC: the gRPC ceiling).
  std::string rpc = "classify";
  std::string model = "digits";
  std::string head;
  // Closed loop when rate is 0.
  int concurrency = 1;
  double rate = 0;
  bool poisson = false;
  absl::Duration duration = absl::Seconds(10);
  // Stop after this many measured calls (0: run for `duration`).
  int64_t requests = 0;
  absl::Duration warmup = absl::Seconds(1);
  // gRPC channels (connections) the calls are spread over; 0: ChannelsFor decides.
  int channels = 0;
  absl::Duration timeout = absl::Seconds(30);
  // Requests cycle through these inputs (one input per request unless batched).
  std::vector<v1::Input> inputs;
  int inputs_per_request = 1;
  // Progress on stderr every second: the line rewritten in place on a terminal, a
  // plain line each second otherwise; calls, errors, rate and mean latency so far.
  bool progress = true;
};

struct LoadReport {
  double seconds = 0;
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // by gRPC status code name
  // The first few distinct messages of each code (each at most 200 characters).
  std::map<std::string, std::vector<std::string>> error_messages;
  double throughput = 0;  // successful calls per second
  double inputs_per_second = 0;
  // Latency of successful calls, milliseconds.
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
  // Successful calls in each whole second of the window, and how much they varied:
  // their standard deviation over their mean (0 with fewer than two seconds).
  std::vector<int64_t> ok_per_second;
  double variation = 0;
  // Whether the rate held steady: variation at most 0.1 (perf_analyzer's 10%).
  bool stable() const { return variation <= 0.1; }

  std::string ToJson() const;
  std::string ToText() const;
};

// Calls a Headway server lets one connection have open at once by default
// (--max_concurrent_streams); a connection's further calls wait in the client.
inline constexpr int kCallsPerChannel = 256;

// The channels a run opens: `options.channels` when set; otherwise one for every
// kCallsPerChannel calls a closed loop keeps in flight, so that the server sees the
// concurrency asked for, and one for an open loop (a flood from one client).
int ChannelsFor(const LoadOptions& options);

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options);

}  // namespace headway

#endif  // HEADWAY_CLIENT_LOAD_GENERATOR_H_
