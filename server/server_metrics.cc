#include "server/server_metrics.h"

#include <netdb.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "model_store/device.h"
#include "model_store/model_registry.h"
#include "model_store/store/content_digest.h"
#include "server/listener_waker.h"
#include "version/version.h"

namespace headway {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& BatchSizeBuckets() {
  static const auto* buckets =
      new prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& LoadBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

}  // namespace

double ResidentMemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  long total_pages = 0;
  long resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  return static_cast<double>(resident_pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

namespace {

// User and system CPU time of the whole process.
double CpuSeconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double OpenFileDescriptors() {
  std::error_code error;
  double count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++count;
  }
  return count;
}

MetricFamily GaugeFamily(std::string name, std::string help) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = MetricType::Gauge;
  return family;
}

void AddGauge(MetricFamily& family, std::vector<ClientMetric::Label> labels,
              double value) {
  ClientMetric& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  metric.gauge.value = value;
}

// Gauges read when scraped: the registry's instances and the process.
class StateCollector : public prometheus::Collectable {
 public:
  void Attach(const ModelRegistry* registry) {
    absl::MutexLock lock(&mu_);
    registry_ = registry;
  }

  std::vector<MetricFamily> Collect() const override {
    MetricFamily loaded = GaugeFamily("headway_model_instances_loaded",
                                      "Model instances loaded, by model and device.");
    MetricFamily queue = GaugeFamily("headway_queue_depth",
                                     "Requests waiting for a batch, by model instance.");
    MetricFamily heads = GaugeFamily("headway_head_version",
                                     "The version each head of each instance serves.");
    MetricFamily head_info = GaugeFamily(
        "headway_head_info",
        "1 for the version and content digest each head of each instance serves: "
        "replicas serving the same store agree on both once a rollout converged.");
    MetricFamily states = GaugeFamily(
        "headway_model_state",
        "1 for each model's state: LOADING, READY, FAILED (its load failed) or "
        "UNLOADED.");
    MetricFamily store_errors = GaugeFamily(
        "headway_model_store_error",
        "1 while a model's entry in the store is refused (it did not load) and the "
        "model serves what it served before, else 0.");
    std::vector<std::string> devices;
    {
      absl::MutexLock lock(&mu_);
      if (registry_ != nullptr) {
        for (const std::shared_ptr<Model>& model : registry_->List()) {
          const ModelInfo info = model->Info();
          devices.push_back(info.device);
          AddGauge(loaded, {{"model", info.name}, {"device", info.device}}, 1);
          AddGauge(queue, {{"model", info.name}, {"device", info.device}},
                   model->queue_depth());
          for (const HeadInfo& head : info.heads) {
            AddGauge(heads,
                     {{"model", info.name}, {"device", info.device}, {"head", head.name}},
                     static_cast<double>(head.version));
            AddGauge(head_info,
                     {{"model", info.name},
                      {"device", info.device},
                      {"head", head.name},
                      {"version", std::to_string(head.version)},
                      {"digest", ShortDigest(head.digest)}},
                     1);
          }
        }
        for (const ModelRecord& record : registry_->Records()) {
          AddGauge(states, {{"model", record.name}, {"state", record.state}}, 1);
          AddGauge(store_errors, {{"model", record.name}}, record.error.empty() ? 0 : 1);
        }
      }
    }
    MetricFamily memory =
        GaugeFamily("process_resident_memory_bytes", "Resident memory size in bytes.");
    AddGauge(memory, {}, ResidentMemoryBytes());
    MetricFamily cpu = GaugeFamily("process_cpu_seconds_total",
                                   "Total user and system CPU time spent in seconds.");
    cpu.type = MetricType::Counter;
    cpu.metric.emplace_back().counter.value = CpuSeconds();
    MetricFamily start =
        GaugeFamily("process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.");
    AddGauge(start, {}, start_time_seconds_);
    MetricFamily fds =
        GaugeFamily("process_open_fds", "Number of open file descriptors.");
    AddGauge(fds, {}, OpenFileDescriptors());
    MetricFamily build = GaugeFamily(
        "headway_build_info", "1, labelled with the version, git commit and build type.");
    AddGauge(build,
             {{"version", HeadwayVersion()},
              {"commit", HeadwayCommit()},
              {"build_type", HeadwayBuildType()}},
             1);
    std::vector<MetricFamily> families = {
        std::move(loaded),    std::move(queue),  std::move(heads),
        std::move(head_info), std::move(states), std::move(store_errors),
        std::move(memory),    std::move(cpu),    std::move(start),
        std::move(fds),       std::move(build)};
    const std::vector<DeviceMemory> cuda = CudaMemory(devices);
    if (!cuda.empty()) {
      MetricFamily allocated =
          GaugeFamily("headway_cuda_memory_allocated_bytes",
                      "Bytes in live tensors on each CUDA device with a model instance.");
      MetricFamily reserved = GaugeFamily(
          "headway_cuda_memory_reserved_bytes",
          "Bytes LibTorch's caching allocator holds on each CUDA device (allocated "
          "plus cached).");
      for (const DeviceMemory& device : cuda) {
        AddGauge(allocated, {{"device", device.device}},
                 static_cast<double>(device.allocated_bytes));
        AddGauge(reserved, {{"device", device.device}},
                 static_cast<double>(device.reserved_bytes));
      }
      families.push_back(std::move(allocated));
      families.push_back(std::move(reserved));
    }
    return families;
  }

 private:
  mutable absl::Mutex mu_;
  const ModelRegistry* registry_ ABSL_GUARDED_BY(mu_) = nullptr;
  const double start_time_seconds_ =
      absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
};

// The series one finished request updates, by (rpc, model, head, gRPC code). Building
// prometheus::Labels and looking them up in two families on every request cost about
// 3% of the server's CPU serving the digits model; the map finds them with one hash.
// Families never remove a series, so the pointers stay valid.
struct RequestSeries {
  prometheus::Counter* count = nullptr;
  prometheus::Histogram* duration = nullptr;
};
using RequestSeriesKey = std::tuple<std::string, std::string, std::string, int>;
using RequestSeriesLookup =
    std::tuple<std::string_view, std::string_view, std::string_view, int>;
// A stored key or a lookup, as views: the map hashes and compares both that way, so a
// lookup by views needs no copies.
template <typename Key>
RequestSeriesLookup AsLookup(const Key& key) {
  return RequestSeriesLookup(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                             std::get<3>(key));
}
struct RequestSeriesHash {
  using is_transparent = void;
  template <typename Key>
  size_t operator()(const Key& key) const {
    return absl::Hash<RequestSeriesLookup>{}(AsLookup(key));
  }
};
struct RequestSeriesEq {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return AsLookup(a) == AsLookup(b);
  }
};

}  // namespace

struct ServerMetrics::Impl {
  // The series of (rpc, model, head, code), added to the families on first use.
  RequestSeries SeriesOf(absl::string_view rpc, absl::string_view model,
                         absl::string_view head, absl::StatusCode code) {
    const RequestSeriesLookup lookup(std::string_view(rpc.data(), rpc.size()),
                                     std::string_view(model.data(), model.size()),
                                     std::string_view(head.data(), head.size()),
                                     static_cast<int>(code));
    absl::MutexLock lock(&series_mu);
    auto found = series.find(lookup);
    if (found != series.end()) return found->second;
    RequestSeries added;
    added.count = &requests.Add({{"rpc", std::string(rpc)},
                                 {"model", std::string(model)},
                                 {"head", std::string(head)},
                                 {"code", absl::StatusCodeToString(code)}});
    added.duration = &request_duration.Add(
        {{"rpc", std::string(rpc)}, {"model", std::string(model)}}, LatencyBuckets());
    series.emplace(RequestSeriesKey(std::string(rpc), std::string(model),
                                    std::string(head), static_cast<int>(code)),
                   added);
    return added;
  }

  std::shared_ptr<prometheus::Registry> registry =
      std::make_shared<prometheus::Registry>();
  std::shared_ptr<StateCollector> state = std::make_shared<StateCollector>();
  std::unique_ptr<prometheus::Exposer> exposer;
  std::string exposed_host;  // the host part of the address given to Expose

  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("headway_requests_total")
          .Help("Inference requests answered, by RPC, model, head and gRPC status code.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& request_duration =
      prometheus::BuildHistogram()
          .Name("headway_request_duration_seconds")
          .Help("Inference request latency inside the server, by RPC and model.")
          .Register(*registry);
  prometheus::Gauge& in_flight =
      prometheus::BuildGauge()
          .Name("headway_requests_in_flight")
          .Help("Inference requests received and not yet answered.")
          .Register(*registry)
          .Add({});
  prometheus::Family<prometheus::Histogram>& queue_duration =
      prometheus::BuildHistogram()
          .Name("headway_queue_duration_seconds")
          .Help("Time a request waited in its model's queue before its batch ran.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& inference_duration =
      prometheus::BuildHistogram()
          .Name("headway_inference_duration_seconds")
          .Help("Time of each batched backbone forward pass.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& batch_size =
      prometheus::BuildHistogram()
          .Name("headway_batch_size")
          .Help("Inputs per backbone forward pass.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& model_loads =
      prometheus::BuildCounter()
          .Name("headway_model_loads_total")
          .Help("Model loads, by model and result.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& model_load_duration =
      prometheus::BuildHistogram()
          .Name("headway_model_load_duration_seconds")
          .Help("Time to load a model instance, by model.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& head_swaps =
      prometheus::BuildCounter()
          .Name("headway_head_swaps_total")
          .Help("HotSwapHead calls, by model and result.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& store_changes =
      prometheus::BuildCounter()
          .Name("headway_store_changes_total")
          .Help(
              "Changes read from the model store, by model and result: loaded, "
              "reloaded, heads_changed, removed or refused.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& fine_tune_jobs =
      prometheus::BuildCounter()
          .Name("headway_fine_tune_jobs_total")
          .Help("Fine-tuning jobs that ended, by state: SUCCEEDED, FAILED or CANCELLED.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& head_fits =
      prometheus::BuildCounter()
          .Name("headway_head_fits_total")
          .Help("FitHead calls, by model and result.")
          .Register(*registry);
  prometheus::Counter& http_shed =
      prometheus::BuildCounter()
          .Name("headway_http_shed_total")
          .Help(
              "HTTP connections answered 503 after waiting --http_max_queue_wait for "
              "one of --http_threads.")
          .Register(*registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& credential_reloads =
      prometheus::BuildCounter()
          .Name("headway_credential_reloads_total")
          .Help(
              "Changed credential files (credential: tls or admin_token) taken up "
              "(result=reloaded) or refused, the credentials in use kept "
              "(result=refused).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& tls_expiry =
      prometheus::BuildGauge()
          .Name("headway_tls_certificate_expiry_timestamp_seconds")
          .Help("When the TLS certificate the server serves now expires (Unix time).")
          .Register(*registry);
  prometheus::Gauge& fine_tune_progress =
      prometheus::BuildGauge()
          .Name("headway_fine_tune_progress_ratio")
          .Help("Share of the running fine-tuning job's steps done; 0 with none running.")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& fine_tune_rate =
      prometheus::BuildGauge()
          .Name("headway_fine_tune_examples_per_second")
          .Help("Training examples per second of the running fine-tuning job.")
          .Register(*registry)
          .Add({});
  prometheus::Family<prometheus::Histogram>& head_swap_duration =
      prometheus::BuildHistogram()
          .Name("headway_head_swap_duration_seconds")
          .Help("Time to load, check and publish a swapped head, by model.")
          .Register(*registry);

  absl::Mutex series_mu;
  absl::flat_hash_map<RequestSeriesKey, RequestSeries, RequestSeriesHash, RequestSeriesEq>
      series ABSL_GUARDED_BY(series_mu);
};

ServerMetrics::ServerMetrics() : impl_(std::make_unique<Impl>()) {
  for (const char* state : {"SUCCEEDED", "FAILED", "CANCELLED"}) {
    impl_->fine_tune_jobs.Add({{"state", state}});  // 0 from the start
  }
}

ServerMetrics::~ServerMetrics() { StopExposing(); }

absl::StatusOr<int> ServerMetrics::Expose(const std::string& address) {
  try {
    // civetweb's own timeout is 30 s, and it looks at its stop flag every 2 s.
    impl_->exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", address, "num_threads", std::to_string(kMetricsThreads),
        "request_timeout_ms", std::to_string(kMetricsIoTimeoutMs)});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  impl_->exposer->RegisterCollectable(impl_->registry);
  impl_->exposer->RegisterCollectable(impl_->state);
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
  }
  impl_->exposed_host = address.substr(0, address.rfind(':'));
  return ports.front();
}

void ServerMetrics::StopExposing() {
  if (impl_->exposer == nullptr) return;
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  StopWhileWaking(impl_->exposed_host, ports.empty() ? 0 : ports.front(),
                  [this] { impl_->exposer.reset(); });
}

void ServerMetrics::AttachRegistry(const ModelRegistry* registry) {
  impl_->state->Attach(registry);
}

void ServerMetrics::RequestStarted() { impl_->in_flight.Increment(); }

void ServerMetrics::RequestFinished(absl::string_view rpc, absl::string_view model,
                                    absl::string_view head, absl::StatusCode code,
                                    absl::Duration latency) {
  impl_->in_flight.Decrement();
  if (code == absl::StatusCode::kResourceExhausted) {
    overload_refusals_.fetch_add(1, std::memory_order_relaxed);
  }
  const RequestSeries series = impl_->SeriesOf(rpc, model, head, code);
  series.count->Increment();
  series.duration->Observe(absl::ToDoubleSeconds(latency));
}

void ServerMetrics::RecordBatch(const std::string& model, const std::string& device,
                                const BatchRecord& record) {
  const prometheus::Labels labels = {{"model", model}, {"device", device}};
  impl_->batch_size.Add(labels, BatchSizeBuckets())
      .Observe(static_cast<double>(record.inputs));
  impl_->inference_duration.Add(labels, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(record.forward_time));
  prometheus::Histogram& queue = impl_->queue_duration.Add(labels, LatencyBuckets());
  for (const absl::Duration wait : record.queue_times) {
    queue.Observe(absl::ToDoubleSeconds(wait));
  }
}

void ServerMetrics::RecordModelLoad(absl::string_view model, bool ok,
                                    absl::Duration duration) {
  impl_->model_loads.Add({{"model", std::string(model)}, {"result", ok ? "ok" : "error"}})
      .Increment();
  if (ok) {
    impl_->model_load_duration.Add({{"model", std::string(model)}}, LoadBuckets())
        .Observe(absl::ToDoubleSeconds(duration));
  }
}

void ServerMetrics::RecordStoreChange(absl::string_view model, absl::string_view result) {
  impl_->store_changes
      .Add({{"model", std::string(model)}, {"result", std::string(result)}})
      .Increment();
}

void ServerMetrics::RecordFineTuneJob(absl::string_view state) {
  impl_->fine_tune_jobs.Add({{"state", std::string(state)}}).Increment();
  impl_->fine_tune_progress.Set(0);
  impl_->fine_tune_rate.Set(0);
}

void ServerMetrics::SetFineTuneProgress(double fraction, double examples_per_second) {
  impl_->fine_tune_progress.Set(fraction);
  impl_->fine_tune_rate.Set(examples_per_second);
}

void ServerMetrics::RecordHttpShed() { impl_->http_shed.Increment(); }

void ServerMetrics::RecordCredentialReload(absl::string_view credential, bool reloaded) {
  impl_->credential_reloads
      .Add({{"credential", std::string(credential)},
            {"result", reloaded ? "reloaded" : "refused"}})
      .Increment();
}

void ServerMetrics::SetTlsCertificateExpiry(absl::Time not_after) {
  impl_->tls_expiry.Add({}).Set(absl::ToDoubleSeconds(not_after - absl::UnixEpoch()));
}

void ServerMetrics::RecordHeadFit(absl::string_view model, bool ok) {
  impl_->head_fits.Add({{"model", std::string(model)}, {"result", ok ? "ok" : "error"}})
      .Increment();
}

void ServerMetrics::RecordHeadSwap(absl::string_view model, bool ok,
                                   absl::Duration duration) {
  impl_->head_swaps.Add({{"model", std::string(model)}, {"result", ok ? "ok" : "error"}})
      .Increment();
  if (ok) {
    impl_->head_swap_duration.Add({{"model", std::string(model)}}, LoadBuckets())
        .Observe(absl::ToDoubleSeconds(duration));
  }
}

std::string ServerMetrics::Serialize() const {
  std::vector<MetricFamily> families = impl_->registry->Collect();
  for (MetricFamily& family : impl_->state->Collect()) {
    families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace headway
