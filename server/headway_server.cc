#include "server/headway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"

namespace headway {

HeadwayServer::HeadwayServer(const Options& options)
    : registry_(options.registry),
      admin_(options.admin),
      workers_(std::make_unique<WorkerPool>(options.worker_threads)),
      management_workers_(std::make_unique<WorkerPool>(options.management_threads)),
      inference_(options.registry, workers_.get(), options.metrics,
                 options.max_requests_in_flight),
      management_(options.registry, management_workers_.get(), &admin_, options.metrics,
                  [this](const std::string& model, bool) { UpdateModelHealth(model); }) {}

void HeadwayServer::UpdateModelHealth(const std::string& model) {
  if (server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(model, !registry_->List(model).empty());
  }
}

HeadwayServer::~HeadwayServer() {
  Shutdown(absl::ZeroDuration());
  Wait();
  // Finish every queued call before the services go away.
  management_workers_.reset();
  workers_.reset();
}

absl::StatusOr<std::unique_ptr<HeadwayServer>> HeadwayServer::Start(
    const Options& options) {
  if (options.registry == nullptr || options.metrics == nullptr) {
    return absl::InvalidArgumentError("a server needs a model registry and metrics");
  }
  std::unique_ptr<HeadwayServer> server(new HeadwayServer(options));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(
      address,
      options.credentials ? options.credentials : grpc::InsecureServerCredentials(),
      &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(&server->inference_);
  builder.RegisterService(&server->management_);
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
}

void HeadwayServer::Drain() {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
}

void HeadwayServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  Drain();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
}

void HeadwayServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace headway
