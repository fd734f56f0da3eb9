#include "client/load_generator.h"

#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits<Message>
#include <grpcpp/support/byte_buffer.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "headway/v1/inference.grpc.pb.h"

namespace headway {
namespace {

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t index =
      std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()));
  return sorted[index];
}

// The request serialised once: every call sends the same reference-counted slices,
// so the generator spends no CPU re-encoding (a 600 KB tensor per call otherwise).
grpc::ByteBuffer Serialise(const google::protobuf::Message& message) {
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  grpc::SerializationTraits<google::protobuf::Message>::Serialize(message, &buffer,
                                                                  &own_buffer);
  return buffer;
}

// Shared state of one run; calls complete on gRPC's threads.
class Run {
 public:
  Run(const LoadOptions& options,
      const std::vector<std::shared_ptr<grpc::Channel>>& channels)
      : options_(options) {
    for (const std::shared_ptr<grpc::Channel>& channel : channels) {
      stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
    }
    if (options.rpc == "health") {
      method_ =
          absl::StrCat("/", grpc::health::v1::Health::service_full_name(), "/Check");
      requests_.push_back(Serialise(grpc::health::v1::HealthCheckRequest()));
      return;
    }
    const bool embed = options.rpc == "embed";
    method_ = absl::StrCat("/", v1::InferenceService::service_full_name(),
                           embed ? "/Embed" : "/Classify");
    const int per_request = std::max(1, options.inputs_per_request);
    const size_t variants = std::max<size_t>(1, options.inputs.size());
    for (size_t v = 0; v < variants; ++v) {
      v1::ClassifyRequest classify;
      classify.set_model(options.model);
      classify.set_head(options.head);
      classify.set_top_k(1);
      v1::EmbedRequest embed_request;
      embed_request.set_model(options.model);
      for (int i = 0; i < per_request && !options.inputs.empty(); ++i) {
        const v1::Input& input = options.inputs[(v + i) % options.inputs.size()];
        *(embed ? embed_request.add_inputs() : classify.add_inputs()) = input;
      }
      requests_.push_back(embed ? Serialise(embed_request) : Serialise(classify));
    }
  }

  absl::StatusOr<LoadReport> Execute() {
    start_ = absl::Now();
    measure_from_ = start_ + options_.warmup;
    stop_at_ = measure_from_ + options_.duration;
    std::thread progress([this] { ReportProgress(); });
    if (options_.rate > 0) {
      OpenLoop();
    } else {
      for (int i = 0; i < std::max(1, options_.concurrency); ++i) Issue();
    }
    // Wait until no call is in flight and no more will start.
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Run::Finished));
      finished_time_ = std::min(absl::Now(), stop_at_);
    }
    progress.join();
    absl::MutexLock lock(&mu_);
    return Summarise();
  }

 private:
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopped_ && in_flight_ == 0;
  }

  bool ShouldStop(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return now >= stop_at_ || (options_.requests > 0 && measured_ >= options_.requests);
  }

  void OpenLoop() {
    std::mt19937_64 random(42);
    std::exponential_distribution<double> gaps(options_.rate);
    absl::Time next = absl::Now();
    while (true) {
      absl::SleepFor(next - absl::Now());
      {
        absl::MutexLock lock(&mu_);
        if (ShouldStop(absl::Now())) {
          stopped_ = true;
          return;
        }
      }
      Issue(/*closed_loop=*/false);
      next += absl::Seconds(options_.poisson ? gaps(random) : 1.0 / options_.rate);
    }
  }

  // Starts one call; in closed loop its completion starts the next.
  void Issue(bool closed_loop = true) {
    const uint64_t n = issued_++;
    {
      absl::MutexLock lock(&mu_);
      if (ShouldStop(absl::Now())) {
        stopped_ = true;
        return;
      }
      ++in_flight_;
    }
    struct Call {
      grpc::ClientContext context;
      grpc::ByteBuffer response;  // only the status counts; the reply is not parsed
      absl::Time sent;
    };
    auto* call = new Call;
    call->sent = absl::Now();
    call->context.set_deadline(absl::ToChronoTime(call->sent + options_.timeout));
    const size_t channel = n % stubs_.size();
    auto done = [this, call, closed_loop](grpc::Status status) {
      Complete(call->sent, status);
      delete call;
      if (closed_loop) Issue();
    };
    stubs_[channel]->UnaryCall(&call->context, method_, grpc::StubOptions(),
                               &requests_[n % requests_.size()], &call->response,
                               std::move(done));
  }

  void Complete(absl::Time sent, const grpc::Status& status) {
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (now < measure_from_ || now > stop_at_) return;  // outside the window
    if (options_.requests > 0 && measured_ >= options_.requests) return;  // overshoot
    ++measured_;
    if (status.ok()) {
      const double latency = absl::ToDoubleMilliseconds(now - sent);
      latencies_ms_.push_back(latency);
      const size_t second =
          static_cast<size_t>(absl::ToDoubleSeconds(now - measure_from_));
      if (ok_per_second_.size() <= second) ok_per_second_.resize(second + 1, 0);
      ++ok_per_second_[second];
      latency_sum_since_report_ += latency;
    } else {
      const std::string code = CodeName(status.error_code());
      ++errors_[code];
      std::vector<std::string>& messages = error_messages_[code];
      constexpr size_t kMessagesPerCode = 3;
      std::string message = status.error_message().substr(0, 200);
      if (messages.size() < kMessagesPerCode &&
          std::find(messages.begin(), messages.end(), message) == messages.end()) {
        messages.push_back(std::move(message));
      }
    }
  }

  void ReportProgress() {
    const bool terminal = isatty(STDERR_FILENO) != 0;
    size_t reported_ok = 0;
    absl::Time reported_at = absl::Now();
    while (true) {
      absl::SleepFor(absl::Seconds(1));
      absl::MutexLock lock(&mu_);
      if (Finished()) return;
      if (!options_.progress) continue;
      const absl::Time now = absl::Now();
      const bool warming = now < measure_from_;
      int64_t error_count = 0;
      for (const auto& [code, count] : errors_) error_count += count;
      // Over the last second: calls per second and their mean latency.
      const size_t new_ok = latencies_ms_.size() - reported_ok;
      const double rate =
          new_ok / std::max(1e-9, absl::ToDoubleSeconds(now - reported_at));
      const double mean_ms = new_ok > 0 ? latency_sum_since_report_ / new_ok : 0;
      reported_ok = latencies_ms_.size();
      reported_at = now;
      latency_sum_since_report_ = 0;
      std::cerr << absl::StrFormat(
                       "%s[%5.1fs] %s ok=%d errors=%d in_flight=%d rate=%.0f/s "
                       "mean=%.2fms%s",
                       terminal ? "\r" : "", absl::ToDoubleSeconds(now - start_),
                       warming ? "warm-up" : "measure", latencies_ms_.size(), error_count,
                       in_flight_, rate, mean_ms, terminal ? "   " : "\n")
                << std::flush;
    }
  }

  LoadReport Summarise() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (options_.progress && isatty(STDERR_FILENO)) std::cerr << "\n";
    LoadReport report;
    report.seconds =
        std::max(1e-9, absl::ToDoubleSeconds(finished_time_ - measure_from_));
    report.ok = static_cast<int64_t>(latencies_ms_.size());
    report.errors = errors_;
    report.error_messages = error_messages_;
    // Whole seconds only: the last, partial one would read low.
    const size_t whole = static_cast<size_t>(report.seconds);
    report.ok_per_second.assign(
        ok_per_second_.begin(),
        ok_per_second_.begin() + std::min(whole, ok_per_second_.size()));
    report.ok_per_second.resize(whole, 0);
    if (report.ok_per_second.size() >= 2) {
      double sum = 0, squares = 0;
      for (int64_t n : report.ok_per_second) sum += n;
      const double mean = sum / report.ok_per_second.size();
      for (int64_t n : report.ok_per_second) squares += (n - mean) * (n - mean);
      report.variation =
          mean > 0 ? std::sqrt(squares / report.ok_per_second.size()) / mean : 0;
    }
    report.throughput = report.ok / report.seconds;
    report.inputs_per_second =
        options_.rpc == "health"
            ? report.throughput
            : report.throughput * std::max(1, options_.inputs_per_request);
    std::sort(latencies_ms_.begin(), latencies_ms_.end());
    report.p50 = Percentile(latencies_ms_, 0.50);
    report.p90 = Percentile(latencies_ms_, 0.90);
    report.p99 = Percentile(latencies_ms_, 0.99);
    report.p999 = Percentile(latencies_ms_, 0.999);
    report.max = latencies_ms_.empty() ? 0 : latencies_ms_.back();
    double total = 0;
    for (double l : latencies_ms_) total += l;
    report.mean = latencies_ms_.empty() ? 0 : total / latencies_ms_.size();
    return report;
  }

  const LoadOptions options_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::string method_;                      // "/package.Service/Method"
  std::vector<grpc::ByteBuffer> requests_;  // sent round robin, never changed
  std::atomic<uint64_t> issued_{0};
  absl::Time start_, measure_from_, stop_at_, finished_time_;

  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int64_t measured_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<double> latencies_ms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> error_messages_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> ok_per_second_ ABSL_GUARDED_BY(mu_);
  double latency_sum_since_report_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

// `text` as a JSON string literal.
std::string JsonString(absl::string_view text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&quoted, "\\", std::string(1, c));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&quoted, "\\u%04x", static_cast<int>(c));
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

std::string LoadReport::ToJson() const {
  std::vector<std::string> error_fields, message_fields;
  for (const auto& [code, count] : errors) {
    error_fields.push_back(absl::StrFormat("\"%s\": %d", code, count));
  }
  for (const auto& [code, messages] : error_messages) {
    std::vector<std::string> quoted;
    for (const std::string& message : messages) quoted.push_back(JsonString(message));
    message_fields.push_back(
        absl::StrFormat("\"%s\": [%s]", code, absl::StrJoin(quoted, ", ")));
  }
  return absl::StrFormat(
      "{\"seconds\": %.3f, \"ok\": %d, \"errors\": {%s}, \"error_messages\": {%s}, "
      "\"throughput\": %.2f, \"inputs_per_second\": %.2f, \"latency_ms\": {\"p50\": "
      "%.3f, \"p90\": %.3f, \"p99\": %.3f, \"p99.9\": %.3f, \"max\": %.3f, \"mean\": "
      "%.3f}, \"ok_per_second\": [%s], \"variation\": %.4f, \"stable\": %s}",
      seconds, ok, absl::StrJoin(error_fields, ", "), absl::StrJoin(message_fields, ", "),
      throughput, inputs_per_second, p50, p90, p99, p999, max, mean,
      absl::StrJoin(ok_per_second, ", "), variation, stable() ? "true" : "false");
}

std::string LoadReport::ToText() const {
  std::string text = absl::StrFormat(
      "%d ok in %.2f s: %.1f requests/s, %.1f inputs/s\n"
      "latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f\n",
      ok, seconds, throughput, inputs_per_second, p50, p90, p99, p999, max, mean);
  if (errors.empty()) return text + "errors: none\n";
  std::vector<std::string> parts;
  for (const auto& [code, count] : errors)
    parts.push_back(absl::StrCat(code, " ", count));
  text += "errors: " + absl::StrJoin(parts, ", ") + "\n";
  for (const auto& [code, messages] : error_messages) {
    for (const std::string& message : messages) {
      absl::StrAppend(&text, "  ", code, ": ", message, "\n");
    }
  }
  return text;
}

int ChannelsFor(const LoadOptions& options) {
  if (options.channels > 0) return options.channels;
  if (options.rate > 0) return 1;
  return std::max(1, (options.concurrency + kCallsPerChannel - 1) / kCallsPerChannel);
}

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("no target");
  if (options.rpc != "classify" && options.rpc != "embed" && options.rpc != "health") {
    return absl::InvalidArgumentError("rpc must be classify, embed or health");
  }
  if (options.rpc != "health" && options.inputs.empty()) {
    return absl::InvalidArgumentError("no inputs: give image files or a tensor shape");
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  const int channel_count = ChannelsFor(options);
  for (int i = 0; i < channel_count; ++i) {
    grpc::ChannelArguments arguments;
    arguments.SetInt("headway.channel", i);  // distinct channels, distinct connections
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(
        options.target, options.tls, 64 << 20,
        options.rpc == "health" ? Replicas::kAll : Replicas::kServingOnly, arguments);
    if (!channel.ok()) return channel.status();
    channels.push_back(*std::move(channel));
  }
  Run run(options, channels);
  return run.Execute();
}

}  // namespace headway
