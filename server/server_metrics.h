// ServerMetrics: Headway's Prometheus metrics, and the prometheus-cpp exposer that
// serves them on their own port (GET /metrics).
//
// Recorded as things happen: requests by RPC, model, head and status code; request
// latency; per-forward-pass batch size, inference time and each request's queue time;
// model loads and head swaps with their durations; changes read from the store;
// requests in flight; HTTP connections shed. Read from the registry at scrape time: queue
// depth per instance, the version and content digest of each head, loaded instances, each
// model's state and whether its store entry is refused; and the process's resident
// memory.
//
// Names follow Prometheus conventions: a headway_ prefix, base units in the name
// (_seconds, _bytes), _total for counters. Label values come from loaded models only,
// never from raw request fields, so a client cannot grow the label space.
//
// Thread-safe.
#ifndef HEADWAY_SERVER_SERVER_METRICS_H_
#define HEADWAY_SERVER_SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "model_store/batching_stats.h"

namespace headway {

class ModelRegistry;

// The process's resident memory in bytes (0 where /proc/self/statm cannot be read).
double ResidentMemoryBytes();

class ServerMetrics {
 public:
  static constexpr int kMetricsThreads = 4;
  static constexpr int kMetricsIoTimeoutMs = 1000;

  ServerMetrics();
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Serves /metrics on `address` ("host:port"; port 0 picks a free one) and returns
  // the bound port. UNAVAILABLE when it cannot listen. Scrapes are served by a few
  // threads; each read or write of a connection may wait at most
  // kMetricsIoTimeoutMs, so clients that stall halfway cannot keep a scraper out
  // for long, nor hold up StopExposing.
  absl::StatusOr<int> Expose(const std::string& address);

  // Stops serving /metrics and closes its port, at once (the destructor does too).
  void StopExposing();

  // The registry whose instances the scrape-time gauges describe; must outlive this.
  void AttachRegistry(const ModelRegistry* registry);

  // A request started / finished. `model` and `head` are those that served it, empty
  // when none did.
  void RequestStarted();
  void RequestFinished(absl::string_view rpc, absl::string_view model,
                       absl::string_view head, absl::StatusCode code,
                       absl::Duration latency);
  // Calls answered RESOURCE_EXHAUSTED so far (overload refused, or memory short): what
  // FloodMemory watches.
  int64_t OverloadRefusals() const {
    return overload_refusals_.load(std::memory_order_relaxed);
  }

  void RecordBatch(const std::string& model, const std::string& device,
                   const BatchRecord& record);
  void RecordModelLoad(absl::string_view model, bool ok, absl::Duration duration);
  void RecordHeadSwap(absl::string_view model, bool ok, absl::Duration duration);
  // A change read from the model store; `result` names what it did.
  void RecordStoreChange(absl::string_view model, absl::string_view result);
  // A fine-tuning job that ended in `state` (SUCCEEDED, FAILED, CANCELLED); the
  // progress gauges go back to 0.
  void RecordFineTuneJob(absl::string_view state);
  // The running job's share of steps done and its training rate.
  void SetFineTuneProgress(double fraction, double examples_per_second);
  void RecordHeadFit(absl::string_view model, bool ok);
  // An HTTP connection answered 503 for waiting too long for a thread.
  void RecordHttpShed();
  // A change of a credential file (`credential`: "tls" or "admin_token") that was
  // taken up (`reloaded`) or refused.
  void RecordCredentialReload(absl::string_view credential, bool reloaded);
  // When the TLS certificate served now expires.
  void SetTlsCertificateExpiry(absl::Time not_after);

  // The exposition text, as a scrape would get it (for tests and tools).
  std::string Serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<int64_t> overload_refusals_{0};
};

}  // namespace headway

#endif  // HEADWAY_SERVER_SERVER_METRICS_H_
