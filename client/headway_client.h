// HeadwayClient: a small C++ client for a Headway server: Embed, Classify, the
// management RPCs and health, with per-call deadlines, over plaintext, TLS or mutual
// TLS, returning absl::StatusOr.
// Depends on the wire contract (proto/) only.
//
// Thread-safe: one client may serve many threads (gRPC stubs are thread-safe).
#ifndef HEADWAY_CLIENT_HEADWAY_CLIENT_H_
#define HEADWAY_CLIENT_HEADWAY_CLIENT_H_

#include <grpcpp/channel.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "headway/v1/inference.grpc.pb.h"
#include "headway/v1/management.grpc.pb.h"

namespace headway {

class HeadwayClient {
 public:
  struct Options {
    // gRPC target, e.g. "127.0.0.1:50051".
    std::string target;
    // Deadline of each call.
    absl::Duration timeout = absl::Seconds(30);
    // Calls wait (within `timeout`) for a server that is up and SERVING, as a server
    // that is starting or loading its models will be soon; false fails them at once
    // (UNAVAILABLE) when no server is ready.
    bool wait_for_ready = true;
    int max_message_bytes = 64 << 20;
    // Transport security; plaintext when tls.ca_file is empty.
    TlsOptions tls;
    // Sent as "authorization: Bearer <admin_token>" on the management RPCs that change
    // what is served, when set.
    std::string admin_token;
  };

  static absl::StatusOr<std::unique_ptr<HeadwayClient>> Create(const Options& options);

  absl::StatusOr<v1::EmbedResponse> Embed(const v1::EmbedRequest& request) const;
  absl::StatusOr<v1::ClassifyResponse> Classify(const v1::ClassifyRequest& request) const;
  absl::StatusOr<v1::GetModelMetadataResponse> GetModelMetadata(
      const std::string& model) const;
  absl::StatusOr<v1::FitHeadResponse> FitHead(const v1::FitHeadRequest& request) const;
  // Fine-tuning jobs. A job lives on the replica that runs it: its GetJob, WatchJob
  // and CancelJob go to the same server (one target).
  absl::StatusOr<v1::StartFineTuneResponse> StartFineTune(
      const v1::StartFineTuneRequest& request) const;
  absl::StatusOr<v1::Job> GetJob(const std::string& id) const;
  absl::StatusOr<v1::Job> CancelJob(const std::string& id) const;
  absl::StatusOr<v1::ListJobsResponse> ListJobs() const;
  // Calls `on_update` with the job now and after each change until it ends; returns
  // the stream's status (OK once the job ended, whatever its state). No deadline.
  absl::Status WatchJob(const std::string& id,
                        const std::function<void(const v1::Job&)>& on_update) const;
  absl::StatusOr<v1::HotSwapHeadResponse> HotSwapHead(
      const v1::HotSwapHeadRequest& request) const;
  absl::StatusOr<v1::RemoveHeadResponse> RemoveHead(
      const v1::RemoveHeadRequest& request) const;
  absl::StatusOr<v1::LoadModelResponse> LoadModel(
      const v1::LoadModelRequest& request) const;
  absl::StatusOr<v1::UnloadModelResponse> UnloadModel(
      const v1::UnloadModelRequest& request) const;
  // Every loaded instance, or only `model`'s.
  absl::StatusOr<v1::ListModelsResponse> ListModels(const std::string& model = "") const;
  // The standard gRPC health check; `service` is "" (the whole server) or a model name.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
      const std::string& service) const;

 private:
  HeadwayClient(const Options& options, std::shared_ptr<grpc::Channel> channel,
                std::shared_ptr<grpc::Channel> health_channel);

  Options options_;
  // Calls go to replicas that are SERVING; health checks may reach any replica.
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<grpc::Channel> health_channel_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ManagementService::Stub> management_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// The whole contents of a local file. INVALID_ARGUMENT for a folder; otherwise the
// status of the errno that opening or reading it failed with (NOT_FOUND for a missing
// file, PERMISSION_DENIED for an unreadable one), naming the path and the reason.
absl::StatusOr<std::string> ReadFileBytes(const std::filesystem::path& path);

// An Input holding the bytes of an image file, sent as they are.
absl::StatusOr<v1::Input> ImageInputFromFile(const std::filesystem::path& path);

}  // namespace headway

#endif  // HEADWAY_CLIENT_HEADWAY_CLIENT_H_
