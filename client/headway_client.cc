#include "client/headway_client.h"

#include <grpcpp/client_context.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace headway {
namespace {

absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// Runs one call on `channel`, waiting for a ready server (one that is up and, where
// the channel checks health, SERVING) until the deadline rather than failing at once:
// a server that is starting or loading models gets `timeout` to come up. When the
// deadline passes with no ready server, the error says what was waited for.
template <typename Response, typename Call>
absl::StatusOr<Response> Invoke(grpc::Channel& channel,
                                const HeadwayClient::Options& options, Call call,
                                const std::string& admin_token = "") {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
  context.set_wait_for_ready(options.wait_for_ready);
  if (!admin_token.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", admin_token));
  }
  Response response;
  const grpc::Status status = call(&context, &response);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel.GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
    return absl::DeadlineExceededError(absl::StrCat(
        "waited ", absl::FormatDuration(options.timeout), " (--timeout) for a server at ",
        options.target,
        " that is up and SERVING (gRPC health), and found none (check the target and "
        "TLS settings; a server loading its models is NOT_SERVING): ",
        status.error_message()));
  }
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

// `what` failed with the errno the stream left (EIO when it left none).
absl::Status FileError(absl::string_view what, const std::filesystem::path& path) {
  return absl::ErrnoToStatus(errno != 0 ? errno : EIO,
                             absl::StrCat(what, " ", path.string()));
}

}  // namespace

HeadwayClient::HeadwayClient(const Options& options,
                             std::shared_ptr<grpc::Channel> channel,
                             std::shared_ptr<grpc::Channel> health_channel)
    : options_(options),
      channel_(std::move(channel)),
      health_channel_(std::move(health_channel)),
      inference_(v1::InferenceService::NewStub(channel_)),
      management_(v1::ManagementService::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(health_channel_)) {}

absl::StatusOr<std::unique_ptr<HeadwayClient>> HeadwayClient::Create(
    const Options& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(
      options.target, options.tls, options.max_message_bytes, Replicas::kServingOnly);
  if (!channel.ok()) return channel.status();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> health_channel =
      MakeChannel(options.target, options.tls, options.max_message_bytes, Replicas::kAll);
  if (!health_channel.ok()) return health_channel.status();
  return std::unique_ptr<HeadwayClient>(
      new HeadwayClient(options, *std::move(channel), *std::move(health_channel)));
}

absl::StatusOr<v1::EmbedResponse> HeadwayClient::Embed(
    const v1::EmbedRequest& request) const {
  return Invoke<v1::EmbedResponse>(*channel_, options_,
                                   [&](auto* context, auto* response) {
                                     return inference_->Embed(context, request, response);
                                   });
}

absl::StatusOr<v1::ClassifyResponse> HeadwayClient::Classify(
    const v1::ClassifyRequest& request) const {
  return Invoke<v1::ClassifyResponse>(
      *channel_, options_, [&](auto* context, auto* response) {
        return inference_->Classify(context, request, response);
      });
}

absl::StatusOr<v1::FitHeadResponse> HeadwayClient::FitHead(
    const v1::FitHeadRequest& request) const {
  return Invoke<v1::FitHeadResponse>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->FitHead(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::StartFineTuneResponse> HeadwayClient::StartFineTune(
    const v1::StartFineTuneRequest& request) const {
  return Invoke<v1::StartFineTuneResponse>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->StartFineTune(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::Job> HeadwayClient::GetJob(const std::string& id) const {
  v1::GetJobRequest request;
  request.set_id(id);
  return Invoke<v1::Job>(*channel_, options_, [&](auto* context, auto* response) {
    return management_->GetJob(context, request, response);
  });
}

absl::StatusOr<v1::Job> HeadwayClient::CancelJob(const std::string& id) const {
  v1::CancelJobRequest request;
  request.set_id(id);
  return Invoke<v1::Job>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->CancelJob(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::ListJobsResponse> HeadwayClient::ListJobs() const {
  const v1::ListJobsRequest request;
  return Invoke<v1::ListJobsResponse>(
      *channel_, options_, [&](auto* context, auto* response) {
        return management_->ListJobs(context, request, response);
      });
}

absl::Status HeadwayClient::WatchJob(
    const std::string& id, const std::function<void(const v1::Job&)>& on_update) const {
  grpc::ClientContext context;
  context.set_wait_for_ready(options_.wait_for_ready);
  v1::GetJobRequest request;
  request.set_id(id);
  std::unique_ptr<grpc::ClientReader<v1::Job>> reader =
      management_->WatchJob(&context, request);
  v1::Job job;
  while (reader->Read(&job)) on_update(job);
  return ToAbslStatus(reader->Finish());
}

absl::StatusOr<v1::HotSwapHeadResponse> HeadwayClient::HotSwapHead(
    const v1::HotSwapHeadRequest& request) const {
  return Invoke<v1::HotSwapHeadResponse>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->HotSwapHead(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::RemoveHeadResponse> HeadwayClient::RemoveHead(
    const v1::RemoveHeadRequest& request) const {
  return Invoke<v1::RemoveHeadResponse>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->RemoveHead(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::LoadModelResponse> HeadwayClient::LoadModel(
    const v1::LoadModelRequest& request) const {
  return Invoke<v1::LoadModelResponse>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->LoadModel(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::UnloadModelResponse> HeadwayClient::UnloadModel(
    const v1::UnloadModelRequest& request) const {
  return Invoke<v1::UnloadModelResponse>(
      *channel_, options_,
      [&](auto* context, auto* response) {
        return management_->UnloadModel(context, request, response);
      },
      options_.admin_token);
}

absl::StatusOr<v1::GetModelMetadataResponse> HeadwayClient::GetModelMetadata(
    const std::string& model) const {
  v1::GetModelMetadataRequest request;
  request.set_model(model);
  return Invoke<v1::GetModelMetadataResponse>(
      *channel_, options_, [&](auto* context, auto* response) {
        return inference_->GetModelMetadata(context, request, response);
      });
}

absl::StatusOr<v1::ListModelsResponse> HeadwayClient::ListModels(
    const std::string& model) const {
  v1::ListModelsRequest request;
  request.set_model(model);
  return Invoke<v1::ListModelsResponse>(
      *channel_, options_, [&](auto* context, auto* response) {
        return management_->ListModels(context, request, response);
      });
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
HeadwayClient::CheckHealth(const std::string& service) const {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  absl::StatusOr<grpc::health::v1::HealthCheckResponse> response =
      Invoke<grpc::health::v1::HealthCheckResponse>(
          *health_channel_, options_, [&](auto* context, auto* response) {
            return health_->Check(context, request, response);
          });
  if (!response.ok()) return response.status();
  return response->status();
}

absl::StatusOr<std::string> ReadFileBytes(const std::filesystem::path& path) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is a folder; name the files in it"));
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileError("cannot open", path);
  std::ostringstream bytes;
  if (in.peek() != std::ifstream::traits_type::eof()) bytes << in.rdbuf();
  if (in.bad() || !bytes) return FileError("cannot read", path);
  return bytes.str();
}

absl::StatusOr<v1::Input> ImageInputFromFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFileBytes(path);
  if (!bytes.ok()) return bytes.status();
  v1::Input input;
  input.set_image(*std::move(bytes));
  return input;
}

}  // namespace headway
