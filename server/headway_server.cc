#include "server/headway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "model_store/base_priority_thread.h"
#include "model_store/thread_name.h"
#include "model_store/torch_runtime.h"
#include "server/event_log.h"
#include "server/unparsed_request_interceptor.h"

namespace headway {

FineTuneJobs::Options HeadwayServer::FineTuneJobsOptions(const Options& options,
                                                         HeadwayServer* server) {
  FineTuneJobs::Options jobs;
  jobs.model_store = options.registry->model_store();
  jobs.threads_per_job = options.fine_tune_threads;
  jobs.niceness = kBackgroundNiceness;
  jobs.max_examples = options.max_fit_examples;
  jobs.limits = options.registry->input_limits();
  jobs.serve = [server](const std::string& model) {
    const absl::Status loaded = server->management_.Load(model, "").status();
    // The store follower may have loaded the new folder first: it serves either way.
    return loaded.code() == absl::StatusCode::kAlreadyExists ? absl::OkStatus() : loaded;
  };
  ServerMetrics* metrics = options.metrics;
  jobs.on_progress = [metrics](const v1::Job& job) {
    const double steps = static_cast<double>(job.epochs()) * job.steps_per_epoch();
    const double done =
        static_cast<double>(job.epoch() - 1) * job.steps_per_epoch() + job.step();
    metrics->SetFineTuneProgress(steps > 0 ? done / steps : 0, job.examples_per_second());
  };
  jobs.on_finished = [metrics](const v1::Job& job) {
    metrics->RecordFineTuneJob(v1::Job::State_Name(job.state()));
    LogEvent(job.state() == v1::Job::SUCCEEDED ? LogLevel::kInfo : LogLevel::kWarning,
             "fine_tune_finished",
             {{"job", job.id()},
              {"model", job.model()},
              {"output_model", job.output_model()},
              {"state", v1::Job::State_Name(job.state())},
              {"epochs", absl::StrCat(job.epoch())},
              {"train_accuracy", absl::StrCat(job.train_accuracy())},
              {"validation_accuracy", absl::StrCat(job.validation_accuracy())},
              {"elapsed_s", absl::StrCat(job.elapsed_seconds())},
              {"serving", job.serving() ? "true" : "false"},
              {"message", job.error()}});
  };
  return jobs;
}

HeadwayServer::HeadwayServer(const Options& options)
    : registry_(options.registry),
      admin_(options.admin),
      workers_(std::make_unique<WorkerPool>(options.worker_threads, 0,
                                            [] { NameThisThread("hw-request"); })),
      management_workers_(
          // One intra-op thread each: a load's passes (checks, timing, warm-up)
          // stay on the low-priority thread instead of fanning out to OpenMP
          // threads that compete with inference as equals.
          std::make_unique<WorkerPool>(options.management_threads, kBackgroundNiceness,
                                       [] {
                                         NameThisThread("hw-manage");
                                         SetThreadsOfThisThread(1);
                                       })),
      gate_(options.max_requests_in_flight, options.metrics),
      jobs_(std::make_unique<FineTuneJobs>(FineTuneJobsOptions(options, this))),
      inference_(options.registry, workers_.get(), &gate_, options.metrics),
      management_(
          options.registry, management_workers_.get(), &admin_, options.metrics,
          [this](const std::string& model, bool) { UpdateModelHealth(model); },
          options.max_fit_examples, jobs_.get()),
      open_inference_(options.registry, workers_.get(), &gate_, options.metrics,
                      &management_, [this] { return ready_.load(); }) {}

void HeadwayServer::UpdateModelHealth(const std::string& model) {
  if (server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(model, !registry_->List(model).empty());
  }
}

HeadwayServer::~HeadwayServer() {
  jobs_.reset();  // cancels a running job and waits for it
  Shutdown(absl::ZeroDuration());
  Wait();
  // Finish every queued call before the services go away.
  management_workers_.reset();
  workers_.reset();
}

namespace {

// Listens on `path` too (see Options::local_socket), after removing a stale socket
// a previous run left there.
void AddLocalSocket(const std::string& path, grpc::ServerBuilder& builder) {
  const std::filesystem::path socket(path);
  const std::filesystem::path folder =
      socket.has_parent_path() ? socket.parent_path() : std::filesystem::path(".");
  if (access(folder.c_str(), W_OK) != 0) {
    LogEvent(LogLevel::kWarning, "local_socket_skipped",
             {{"path", path},
              {"message", absl::StrCat("cannot create a socket in ", folder.string(),
                                       ": ", strerror(errno))}});
    return;
  }
  std::error_code error;
  if (std::filesystem::is_socket(socket, error)) std::filesystem::remove(socket, error);
  builder.AddListeningPort(absl::StrCat("unix:", path),
                           grpc::InsecureServerCredentials());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HeadwayServer>> HeadwayServer::Start(
    const Options& options) {
  if (options.registry == nullptr || options.metrics == nullptr) {
    return absl::InvalidArgumentError("a server needs a model registry and metrics");
  }
  std::unique_ptr<HeadwayServer> server(new HeadwayServer(options));
  server->max_message_bytes_ = options.max_message_bytes;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(
      address,
      options.credentials ? options.credentials : grpc::InsecureServerCredentials(),
      &server->port_);
  if (!options.local_socket.empty()) AddLocalSocket(options.local_socket, builder);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options.max_concurrent_streams);
  }
  if (options.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(std::min<int64_t>(
            absl::ToInt64Milliseconds(options.max_connection_age), INT_MAX)));
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<UnparsedRequestInterceptorFactory>(
      options.metrics, &server->unparsed_requests_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(&server->inference_);
  builder.RegisterService(&server->management_);
  builder.RegisterService(&server->open_inference_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  // Nothing serves until MarkServing.
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  health->SetServingStatus("", false);
  for (const std::string& model : options.registry->StoreModels()) {
    health->SetServingStatus(model, false);
  }
  return server;
}

void HeadwayServer::MarkServing() {
  for (const ModelRecord& record : registry_->Records()) UpdateModelHealth(record.name);
  server_->GetHealthCheckService()->SetServingStatus("", true);
  ready_ = true;
}

void HeadwayServer::Drain() {
  if (server_ == nullptr) return;
  ready_ = false;
  server_->GetHealthCheckService()->SetServingStatus(false);
}

namespace {

// How long no call may arrive at the held gate before gRPC is stopped (the calls a
// closed-loop client sends on its answers are then held, not on the wire), and how
// long the server waits for that at most (an open-loop client never pauses).
constexpr absl::Duration kQuietBeforeStopping = absl::Milliseconds(50);
constexpr absl::Duration kMostSettlingBeforeStopping = absl::Seconds(1);
// How long after gRPC's shutdown begins the held calls are refused.
constexpr absl::Duration kGoawayMargin = absl::Milliseconds(20);

}  // namespace

void HeadwayServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  Drain();
  const absl::Time deadline = absl::Now() + grace;
  gate_.Hold();
  gate_.WaitIdle(deadline);
  gate_.WaitQuiet(kQuietBeforeStopping,
                  std::min(deadline, absl::Now() + kMostSettlingBeforeStopping));
  // gRPC's Shutdown returns once every call is answered, the held ones included: they
  // are refused once it has told the clients to go away, so that their next calls go
  // elsewhere. (gRPC cancels what runs past its deadline: give the held calls time to
  // be refused.)
  const absl::Time stop_deadline = std::max(deadline, absl::Now() + absl::Seconds(1));
  absl::Notification stopping_started;
  std::thread stopping([this, stop_deadline, &stopping_started] {
    stopping_started.Notify();
    server_->Shutdown(absl::ToChronoTime(stop_deadline));
  });
  // gRPC's Shutdown stops listening and sends the GOAWAY first thing; the answers
  // written after it reach each client behind it. (A health probe over the in-process
  // channel would show when gRPC refuses calls, but gRPC 1.51 crashes creating a call
  // on an in-process channel while its server shuts down.)
  stopping_started.WaitForNotification();
  absl::SleepFor(kGoawayMargin);
  gate_.RefuseAll();
  stopping.join();
}

std::shared_ptr<grpc::Channel> HeadwayServer::InProcessChannel() const {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(max_message_bytes_);
  arguments.SetMaxSendMessageSize(max_message_bytes_);
  return server_->InProcessChannel(arguments);
}

void HeadwayServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace headway
