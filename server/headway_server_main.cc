// headway_server: serves every model of a model store over gRPC.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model_store/base_priority_thread.h"
#include "model_store/cerr_capture.h"
#include "model_store/fine_tune_job.h"
#include "model_store/host_allocator.h"
#include "model_store/model_config.h"
#include "model_store/model_registry.h"
#include "model_store/status_macros.h"
#include "model_store/store/content_digest.h"
#include "model_store/store/model_files.h"
#include "model_store/store_follower.h"
#include "model_store/torch_runtime.h"
#include "server/credential_reloader.h"
#include "server/event_log.h"
#include "server/flood_memory.h"
#include "server/headway_server.h"
#include "server/http_gateway.h"
#include "server/protobuf_log.h"
#include "server/server_metrics.h"
#include "server/tls.h"
#include "version/build_type_defaults.h"
#include "version/cli_help.h"
#include "version/version.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once the server serves.");
ABSL_FLAG(std::string, model_store, "models",
          "Folder with one sub-folder per model, each with a config.pbtxt.");
ABSL_FLAG(int, worker_threads, headway::UsableCpus(),
          "Threads running inference requests; defaults to the CPUs the server may use.");
ABSL_FLAG(int, management_threads, 2,
          "Threads running management calls (loads, unloads, head swaps), apart from "
          "those serving inference.");
ABSL_FLAG(absl::Duration, store_poll_interval, absl::Seconds(5),
          "How often the server looks for changes in the model store (models added or "
          "removed, changed configs, persisted head swaps from other replicas) and "
          "serves them; 0 loads the store once at start and stops following it.");
ABSL_FLAG(bool, store_watch, true,
          "Between polls, watch the model store with inotify and apply a change made on "
          "this host within a moment (changes through another host's mount of a "
          "network file system wait for the next poll).");
ABSL_FLAG(int, max_requests_in_flight, 1024,
          "Inference calls the server holds at once (waiting for a worker or a batch, "
          "or running); more get RESOURCE_EXHAUSTED at once, naming this flag, instead "
          "of queueing.");
ABSL_FLAG(int, max_concurrent_streams, headway::kDefaultMaxConcurrentStreams,
          "Calls each client connection may have open at once (HTTP/2 streams), 2 or "
          "more; its further calls wait in the client until one ends, so a flood from "
          "one connection waits there, not in the server's memory. 0: no limit "
          "(gRPC's default).");
ABSL_FLAG(absl::Duration, grpc_max_connection_age, absl::Minutes(5),
          "How long a gRPC client connection lives before the server asks the client "
          "to reconnect (calls in progress finish first), so long-lived clients of a "
          "fleet behind one name find replicas added since they connected. inf: "
          "never.");
ABSL_FLAG(std::string, local_socket, "",
          "A unix socket path the server also listens on, plaintext, with every "
          "service (admin calls still need the token): for local clients such as the "
          "container image's health check, which then follows any --port and TLS "
          "setting. Empty: none; a folder the server cannot write to skips it with a "
          "warning.");
ABSL_FLAG(int, parallel_loads, 2, "Models loaded at the same time at start.");
ABSL_FLAG(bool, strict_startup, false,
          "Exit (status 1) when any model of the store fails to load at start, instead "
          "of serving the others and reporting it.");
ABSL_FLAG(int, test_stop_after_store_step, 0,
          "Testing only: the server kills itself (SIGKILL) after this step of a "
          "persisted write to the model store, to show that a crash at any step leaves "
          "the store consistent. 0 never.");
ABSL_FLAG(int, torch_threads, 0,
          "LibTorch intra-op threads per forward pass; 0 means one per CPU the server "
          "may run on. With model_workers > 1, lower it so that model_workers x "
          "torch_threads stays within the CPUs (README, Throughput).");
ABSL_FLAG(int64_t, malloc_retain_mb, 256,
          "Freed memory glibc malloc keeps mapped for the next forward pass, per "
          "arena, in MiB; blocks up to 32 MiB come from the heap. Spares each pass "
          "page-faulting its activations in again. 0 keeps glibc's defaults.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM or SIGINT, how long requests in flight may take to finish.");
ABSL_FLAG(absl::Duration, drain_delay, absl::ZeroDuration(),
          "On SIGTERM or SIGINT, how long health says NOT_SERVING while new calls are "
          "still accepted, before the server stops accepting (lets load balancers and "
          "readiness probes move traffic away first).");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0:8002",
          "host:port serving Prometheus metrics at /metrics; empty turns them off; "
          "port 0 picks a free one (see --metrics_port_file).");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound metrics port is written to this file.");

// Transport security.
ABSL_FLAG(int, http_port, 8000,
          "HTTP/JSON port (the Open Inference Protocol's REST form and Headway's API as "
          "JSON) on --host; 0 turns it off.");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, the bound HTTP port is written to this file once it listens.");
ABSL_FLAG(int, http_threads, 16,
          "HTTP connections served at once; more wait (--http_max_queue_wait).");
ABSL_FLAG(absl::Duration, http_max_queue_wait, absl::Seconds(1),
          "How long an HTTP connection waits for one of --http_threads; then it is "
          "answered 503 with Retry-After: 1 instead of being served late. inf: no "
          "bound.");
ABSL_FLAG(int64_t, http_max_body_bytes, int64_t{64} << 20,
          "Largest HTTP request body; a longer one is refused (413) before it is read.");
ABSL_FLAG(absl::Duration, http_request_timeout, absl::Seconds(30),
          "Time for an HTTP request's headers and body to arrive (slow or half-sent "
          "requests are answered 408 or dropped).");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM server certificate chain; set means TLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA for client certificates; set means mutual TLS (clients must present a "
          "certificate it signed).");
ABSL_FLAG(absl::Duration, credentials_poll_interval, absl::Seconds(10),
          "How often the TLS files and the admin token file are read again: a change "
          "that passes the checks (certificates parse, the key matches, not expired; "
          "a token not empty) is served from the next connection or call, without a "
          "restart; one that fails is refused and logged, and the credentials in use "
          "stay. 0 reads them once at start.");

// Who may call HotSwapHead, RemoveHead, LoadModel and UnloadModel (off by default).
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the bearer token that admin calls must send "
          "(metadata authorization: Bearer TOKEN).");
ABSL_FLAG(std::vector<std::string>, admin_client_cn, {},
          "Client certificate common names (mutual TLS) allowed to make admin calls.");
ABSL_FLAG(bool, admin_open, false,
          "Let anyone make admin calls; only for a server no one else can reach.");

// Input limits; each refusal names the limit.
ABSL_FLAG(int, max_inputs_per_request, 64,
          "Most inputs in one request (a model's config may set a lower limit).");
ABSL_FLAG(int64_t, max_image_bytes, int64_t{16} << 20,
          "Largest encoded image, in bytes.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000,
          "Most pixels an image may have; checked from its header before decoding.");
ABSL_FLAG(int64_t, max_tensor_elements, int64_t{16} << 20,
          "Most elements a tensor input may have.");
ABSL_FLAG(int64_t, max_backbone_bytes, int64_t{16} << 30,
          "Largest backbone file (weights or architecture) of a model in the store, as "
          "its zip records unpack; a larger one fails that model's load.");
ABSL_FLAG(int64_t, max_fit_examples, 20000,
          "Most labelled examples one FitHead call or fine-tuning job takes (uploaded "
          "ones also within --max_message_bytes as a whole).");
ABSL_FLAG(int, fine_tune_threads, 1,
          "Intra-op threads of the running fine-tuning job (jobs run one at a time, "
          "beside serving).");
ABSL_FLAG(int64_t, max_head_bytes, int64_t{256} << 20,
          "Largest head checkpoint, from a file or uploaded.");

namespace {

// The signals the server waits for: SIGINT and SIGTERM drain and stop it, SIGHUP
// reads the credential files and the model store again at once (a reload, as
// operators send one, instead of the default action: ending the process undrained).
const sigset_t& HandledSignals() {
  static const sigset_t signals = [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
  }();
  return signals;
}

const char* StoreSyncResult(headway::StoreSync::Action action) {
  using Action = headway::StoreSync::Action;
  switch (action) {
    case Action::kNone:
      return "none";
    case Action::kLoaded:
      return "loaded";
    case Action::kReloaded:
      return "reloaded";
    case Action::kHeadsChanged:
      return "heads_changed";
    case Action::kRemoved:
      return "removed";
    case Action::kRefused:
      return "refused";
  }
  return "unknown";
}

int Fail(const absl::Status& status) {
  headway::LogEvent(headway::LogLevel::kError, "start_failed",
                    {{"code", absl::StatusCodeToString(status.code())},
                     {"message", std::string(status.message())}});
  return 1;
}

// Writes `port` to `path` atomically (tests and scripts poll for it).
void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  const std::string partial = path + ".tmp";
  std::ofstream(partial) << port << "\n";
  std::rename(partial.c_str(), path.c_str());
}

headway::InputLimits InputLimitsFromFlags() {
  headway::InputLimits limits;
  limits.max_inputs_per_request = absl::GetFlag(FLAGS_max_inputs_per_request);
  limits.max_image_bytes = absl::GetFlag(FLAGS_max_image_bytes);
  limits.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  limits.max_tensor_elements = absl::GetFlag(FLAGS_max_tensor_elements);
  return limits;
}

// Logs and counts what a sync with the store did.
void ReportStoreSync(const headway::ModelRegistry& registry,
                     headway::ServerMetrics& metrics, const headway::StoreSync& sync) {
  using Action = headway::StoreSync::Action;
  const std::vector<std::shared_ptr<headway::Model>> instances =
      registry.List(sync.model);
  switch (sync.action) {
    case Action::kNone:
      return;
    case Action::kLoaded:
      for (const auto& instance : instances) {
        const headway::ModelInfo info = instance->Info();
        metrics.RecordModelLoad(info.name, true, absl::Milliseconds(info.load_time_ms));
        headway::LogEvent(headway::LogLevel::kInfo, "model_loaded",
                          {{"model", info.name},
                           {"version", absl::StrCat(info.version)},
                           {"device", info.device},
                           {"feature_dim", absl::StrCat(info.feature_dim)},
                           {"heads", absl::StrCat(info.heads.size())},
                           {"duration_ms", absl::StrCat(info.load_time_ms)},
                           {"serving", info.serving.summary},
                           {"precision", info.precision},
                           {"precision_note", info.precision_note}});
      }
      break;
    case Action::kRefused:
      if (instances.empty()) {
        metrics.RecordModelLoad(sync.model, false, absl::ZeroDuration());
        headway::LogEvent(headway::LogLevel::kError, "model_load_failed",
                          {{"model", sync.model}, {"message", sync.message}});
      } else {
        headway::LogEvent(headway::LogLevel::kWarning, "store_change_refused",
                          {{"model", sync.model}, {"message", sync.message}});
      }
      break;
    default: {
      std::vector<std::string> heads;
      if (!instances.empty()) {
        for (const headway::HeadInfo& head : instances.front()->Info().heads) {
          heads.push_back(absl::StrCat(head.name, ":", head.version, ":",
                                       headway::ShortDigest(head.digest)));
        }
      }
      headway::LogEvent(headway::LogLevel::kInfo, "store_change_applied",
                        {{"model", sync.model},
                         {"change", StoreSyncResult(sync.action)},
                         {"heads", absl::StrJoin(heads, ",")}});
    }
  }
  metrics.RecordStoreChange(sync.model, StoreSyncResult(sync.action));
}

// "off", "tls" or "mutual", as the TLS flags say (the gRPC and HTTP ports alike).
const char* TlsMode() {
  if (absl::GetFlag(FLAGS_tls_cert_file).empty()) return "off";
  return absl::GetFlag(FLAGS_tls_client_ca_file).empty() ? "tls" : "mutual";
}

int Serve() {
  headway::ServerMetrics metrics;
  int metrics_port = 0;
  if (const std::string address = absl::GetFlag(FLAGS_metrics_address);
      !address.empty()) {
    absl::StatusOr<int> port = metrics.Expose(address);
    if (!port.ok()) return Fail(port.status());
    metrics_port = *port;
    WritePortFile(absl::GetFlag(FLAGS_metrics_port_file), metrics_port);
  }
  headway::FloodMemory::Options flood_memory;
  flood_memory.refusals = [&metrics] { return metrics.OverloadRefusals(); };
  flood_memory.resident_bytes = [] {
    return static_cast<int64_t>(headway::ResidentMemoryBytes());
  };
  flood_memory.trim = [] {
    const double before = headway::ResidentMemoryBytes();
    headway::ReturnFreedMemory();
    const double after = headway::ResidentMemoryBytes();
    headway::LogEvent(
        headway::LogLevel::kInfo, "flood_memory_returned",
        {{"resident_mb_before", absl::StrCat(static_cast<int64_t>(before) >> 20)},
         {"resident_mb_after", absl::StrCat(static_cast<int64_t>(after) >> 20)}});
  };
  const headway::FloodMemory returns_flood_memory(std::move(flood_memory));

  headway::ModelRegistry::Options registry_options;
  registry_options.model_store = absl::GetFlag(FLAGS_model_store);
  registry_options.input_limits = InputLimitsFromFlags();
  registry_options.max_head_bytes = absl::GetFlag(FLAGS_max_head_bytes);
  registry_options.max_backbone_bytes = absl::GetFlag(FLAGS_max_backbone_bytes);
  registry_options.on_batch = [&metrics](const std::string& model,
                                         const std::string& device,
                                         const headway::BatchRecord& record) {
    metrics.RecordBatch(model, device, record);
  };
  if (const int stop_step = absl::GetFlag(FLAGS_test_stop_after_store_step);
      stop_step > 0) {
    registry_options.after_store_step =
        [stop_step, steps = std::make_shared<int>(0)](absl::string_view step) {
          if (++*steps < stop_step) return;
          headway::LogEvent(
              headway::LogLevel::kWarning, "test_stop",
              {{"store_step", absl::StrCat(*steps)}, {"after", std::string(step)}});
          raise(SIGKILL);
        };
  }
  absl::StatusOr<std::unique_ptr<headway::ModelRegistry>> registry =
      headway::ModelRegistry::Open(registry_options);
  if (!registry.ok()) return Fail(registry.status());
  metrics.AttachRegistry(registry->get());
  if (const int removed = headway::CleanFineTuneLeftovers(
          absl::GetFlag(FLAGS_model_store), std::chrono::hours(1));
      removed > 0) {
    headway::LogEvent(headway::LogLevel::kInfo, "fine_tune_leftovers_removed",
                      {{"folders", absl::StrCat(removed)}});
  }

  headway::HeadwayServer::Options options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  const headway::ServerTlsFiles tls_files{absl::GetFlag(FLAGS_tls_cert_file),
                                          absl::GetFlag(FLAGS_tls_key_file),
                                          absl::GetFlag(FLAGS_tls_client_ca_file)};
  if (absl::Status flags = headway::CheckTlsFlags(tls_files); !flags.ok()) {
    return Fail(flags);
  }
  // Outlives the server, whose port reads its certificates.
  std::unique_ptr<headway::GrpcServerTls> grpc_tls;
  std::optional<headway::TlsMaterial> tls_material;
  options.credentials = grpc::InsecureServerCredentials();
  if (tls_files.tls()) {
    absl::StatusOr<headway::TlsMaterial> material = headway::ReadTlsMaterial(tls_files);
    if (!material.ok()) return Fail(material.status());
    absl::StatusOr<std::unique_ptr<headway::GrpcServerTls>> tls =
        headway::GrpcServerTls::Create(*material);
    if (!tls.ok()) return Fail(tls.status());
    grpc_tls = *std::move(tls);
    tls_material = *std::move(material);
    options.credentials = grpc_tls->credentials();
  }
  options.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  options.management_threads = absl::GetFlag(FLAGS_management_threads);
  options.max_requests_in_flight = absl::GetFlag(FLAGS_max_requests_in_flight);
  if (options.max_requests_in_flight < 1) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--max_requests_in_flight must be 1 or more, not ",
                     options.max_requests_in_flight)));
  }
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  if (options.max_concurrent_streams < 0 || options.max_concurrent_streams == 1) {
    // With 1, a call from Headway's own client never completed (gRPC 1.51).
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--max_concurrent_streams must be 0 (no limit) or 2 or more, not ",
                     options.max_concurrent_streams)));
  }
  options.max_connection_age = absl::GetFlag(FLAGS_grpc_max_connection_age);
  if (options.max_connection_age < absl::Milliseconds(100)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--grpc_max_connection_age must be at least 100ms (or inf), not ",
                     absl::FormatDuration(options.max_connection_age))));
  }
  options.local_socket = absl::GetFlag(FLAGS_local_socket);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_fit_examples = absl::GetFlag(FLAGS_max_fit_examples);
  options.fine_tune_threads = absl::GetFlag(FLAGS_fine_tune_threads);
  if (options.fine_tune_threads < 1) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--fine_tune_threads must be 1 or more, not ", options.fine_tune_threads)));
  }
  absl::StatusOr<std::string> admin_token =
      headway::ReadAdminTokenFile(absl::GetFlag(FLAGS_admin_token_file));
  if (!admin_token.ok()) return Fail(admin_token.status());
  options.admin.token = *std::move(admin_token);
  for (const std::string& name : absl::GetFlag(FLAGS_admin_client_cn)) {
    options.admin.client_common_names.insert(name);
  }
  options.admin.open = absl::GetFlag(FLAGS_admin_open);
  options.registry = registry->get();
  options.metrics = &metrics;
  absl::StatusOr<std::unique_ptr<headway::HeadwayServer>> server =
      headway::HeadwayServer::Start(options);
  if (!server.ok()) return Fail(server.status());
  headway::LogEvent(
      headway::LogLevel::kInfo, "listening",
      {{"address", absl::StrCat(options.host, ":", (*server)->port())},
       {"tls", TlsMode()},
       {"admin", options.admin.open                                  ? "open"
                 : headway::AdminAuthorizer(options.admin).enabled() ? "credential"
                                                                     : "off"},
       {"metrics_port", absl::StrCat(metrics_port)},
       {"torch_threads", absl::StrCat(headway::TorchThreads())}});
  // Health answers NOT_SERVING from here until every model is loaded and warmed up.
  WritePortFile(absl::GetFlag(FLAGS_port_file), (*server)->port());
  std::unique_ptr<headway::HttpGateway> http;
  if (const int http_port = absl::GetFlag(FLAGS_http_port); http_port != 0) {
    headway::HttpGateway::Options http_options;
    http_options.host = options.host;
    http_options.port = http_port;
    http_options.threads = absl::GetFlag(FLAGS_http_threads);
    http_options.max_queue_wait = absl::GetFlag(FLAGS_http_max_queue_wait);
    http_options.metrics = &metrics;
    http_options.max_body_bytes = absl::GetFlag(FLAGS_http_max_body_bytes);
    http_options.request_timeout = absl::GetFlag(FLAGS_http_request_timeout);
    http_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
    http_options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
    http_options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
    absl::StatusOr<std::unique_ptr<headway::HttpGateway>> gateway =
        headway::HttpGateway::Start(http_options, (*server)->InProcessChannel());
    if (!gateway.ok()) return Fail(gateway.status());
    http = *std::move(gateway);
    headway::LogEvent(
        headway::LogLevel::kInfo, "http_listening",
        {{"address", absl::StrCat(options.host, ":", http->port())}, {"tls", TlsMode()}});
    WritePortFile(absl::GetFlag(FLAGS_http_port_file), http->port());
  }
  // Certificates and the admin token rotate while serving.
  headway::CredentialReloader::Options reload;
  reload.tls = tls_files;
  reload.admin_token_file = absl::GetFlag(FLAGS_admin_token_file);
  if (const absl::Duration interval = absl::GetFlag(FLAGS_credentials_poll_interval);
      interval > absl::ZeroDuration()) {
    reload.poll_interval = interval;
  } else {
    reload.poll_interval = absl::InfiniteDuration();
  }
  reload.replace_tls = [&](const headway::TlsMaterial& material) {
    // HTTPS first: building its context is the step that can refuse the material.
    if (http != nullptr) {
      if (absl::Status replaced = http->ReplaceTls(material); !replaced.ok()) {
        return replaced;
      }
    }
    return grpc_tls->Update(material);
  };
  reload.replace_admin_token = [&](const std::string& token) {
    (*server)->ReplaceAdminToken(token);
  };
  reload.metrics = &metrics;
  headway::CredentialReloader credential_reloader(std::move(reload), tls_material,
                                                  options.admin.token);

  // Each model serves as soon as it is warm; the server says SERVING once every model
  // the store held at start serves or has failed. Then the store is followed.
  const absl::Time load_start = absl::Now();
  std::atomic<int> failed_loads{0};
  headway::StoreFollower::Options follow;
  follow.registry = registry->get();
  follow.poll_interval = absl::GetFlag(FLAGS_store_poll_interval);
  follow.watch = absl::GetFlag(FLAGS_store_watch);
  follow.parallel_loads = absl::GetFlag(FLAGS_parallel_loads);
  follow.niceness = headway::kBackgroundNiceness;
  follow.on_sync = [&](const headway::StoreSync& sync) {
    if (sync.action == headway::StoreSync::Action::kRefused &&
        (*registry)->List(sync.model).empty()) {
      ++failed_loads;
    }
    ReportStoreSync(**registry, metrics, sync);
    (*server)->UpdateModelHealth(sync.model);
  };
  // A shutdown signal may come while models still load (a rollout replacing a pod
  // that is starting): it stops the startup too.
  int signal_number = 0;
  absl::Notification stop_requested;
  absl::Mutex reload_mu;
  headway::StoreFollower* reload_follower = nullptr;  // guarded by reload_mu
  std::thread signal_waiter([&] {
    while (sigwait(&HandledSignals(), &signal_number) == 0 && signal_number == SIGHUP) {
      headway::LogEvent(headway::LogLevel::kInfo, "reload_requested",
                        {{"signal", "SIGHUP"}, {"reads", "credentials,model_store"}});
      credential_reloader.CheckNow();
      absl::MutexLock lock(&reload_mu);
      if (reload_follower != nullptr) reload_follower->SyncNow();
    }
    stop_requested.Notify();
  });
  auto follower = std::make_unique<headway::StoreFollower>(follow);
  {
    absl::MutexLock lock(&reload_mu);
    reload_follower = follower.get();
  }
  const auto stop_following = [&] {
    {
      absl::MutexLock lock(&reload_mu);
      reload_follower = nullptr;
    }
    follower.reset();
  };
  while (!follower->WaitStartedFor(absl::Milliseconds(50)) &&
         !stop_requested.HasBeenNotified()) {
  }
  if (!stop_requested.HasBeenNotified()) {
    if (absl::GetFlag(FLAGS_strict_startup) && failed_loads > 0) {
      stop_following();
      (*server)->Shutdown(absl::ZeroDuration());
      // Nothing else ends the signal waiter.
      pthread_kill(signal_waiter.native_handle(), SIGTERM);
      signal_waiter.join();
      return Fail(absl::FailedPreconditionError(
          absl::StrCat(failed_loads.load(),
                       " model(s) failed to load (--strict_startup); see the "
                       "model_load_failed events")));
    }
    (*server)->MarkServing();
    headway::LogEvent(
        headway::LogLevel::kInfo, "serving",
        {{"models", absl::StrCat((*registry)->List().size())},
         {"failed", absl::StrCat(failed_loads.load())},
         {"duration_ms",
          absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - load_start))}});
  }
  signal_waiter.join();

  const absl::Duration drain_delay = absl::GetFlag(FLAGS_drain_delay);
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  headway::LogEvent(headway::LogLevel::kInfo, "draining",
                    {{"signal", absl::StrCat(signal_number)},
                     {"drain_delay", absl::FormatDuration(drain_delay)},
                     {"grace", absl::FormatDuration(grace)}});
  (*server)->Drain();
  absl::SleepFor(drain_delay);
  (*server)->Shutdown(grace);
  (*server)->Wait();
  http.reset();  // its requests in progress were answered by the stopped services
  stop_following();
  server->reset();
  metrics.StopExposing();  // before the registry it reads goes away
  headway::LogEvent(headway::LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

constexpr char kServerUsage[] =
    "Serves Headway models over gRPC (headway.v1, the Open Inference Protocol) and "
    "HTTP/JSON.\n"
    "Usage: headway_server [--model_store=models] [--port=50051] [--http_port=8000] "
    "[flags]\n"
    "Exit codes: 0 stopped by SIGTERM or SIGINT after draining; 1 a bad flag, or it "
    "could not start (a port in use, an unreadable store, --strict_startup with a "
    "failed model). SIGHUP reads the TLS and admin token files and the model store "
    "again at once.";

int main(int argc, char** argv) {
  if (headway::PrintHelpIfAsked(argc, argv, kServerUsage,
                                [](absl::string_view, absl::string_view file) {
                                  return absl::EndsWith(file, "headway_server_main.cc");
                                })) {
    return 0;
  }
  headway::SetVersionFlag("headway_server");
  absl::SetProgramUsageMessage(kServerUsage);
  if (absl::Status units = headway::CheckDurationUnits(
          argc, argv,
          {"store_poll_interval", "shutdown_grace", "drain_delay", "http_request_timeout",
           "http_max_queue_wait", "credentials_poll_interval"});
      !units.ok()) {
    return Fail(units);
  }
  absl::ParseCommandLine(argc, argv);
  headway::ApplyBuildTypeDefaults();
  // Block the shutdown signals in every thread (before any starts); Serve waits for
  // them.
  pthread_sigmask(SIG_BLOCK, &HandledSignals(), nullptr);
  // Image decoders' stderr diagnostics become parts of error messages (before any
  // thread starts: see cerr_capture.h).
  headway::InstallCerrRouting();
  // Protobuf's own messages (one per request with invalid UTF-8, say) as events, at a
  // bounded rate (before any thread starts: SetLogHandler is not thread-safe).
  headway::RouteProtobufLogs();
  // Before any thread lowers its priority (loads, swaps, the store follower).
  headway::StartBasePriorityThreads();
  const int64_t retain_mb = absl::GetFlag(FLAGS_malloc_retain_mb);
  if (retain_mb < 0) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--malloc_retain_mb must be 0 or more, not ", retain_mb)));
  }
  if (absl::Status status = headway::RetainFreedTensorMemory(retain_mb << 20);
      !status.ok()) {  // serving works, each pass faulting its memory in
    headway::LogEvent(headway::LogLevel::kWarning, "malloc_options_ignored",
                      {{"message", std::string(status.message())}});
  }
  headway::ConfigureTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  // LibTorch's warnings as events, each place at most once a minute with a count.
  headway::RouteTorchWarnings(
      [](absl::string_view where, absl::string_view message, int64_t repeats) {
        headway::LogEvent(headway::LogLevel::kWarning, "torch_warning",
                          {{"where", std::string(where)},
                           {"repeats_since_last", absl::StrCat(repeats)},
                           {"message", std::string(message.substr(0, 1000))}});
      });
  const int code = Serve();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Everything of the server's is stopped and destroyed by now; what is left are
  // LibTorch's and gRPC's static objects, whose destructors take ~0.1 s and do nothing
  // a stopping process needs. (Sanitized builds run them: LeakSanitizer checks at exit.)
  std::fflush(nullptr);
  std::_Exit(code);
#endif
  return code;
}
