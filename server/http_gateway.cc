#include "server/http_gateway.h"

#include <civetweb.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/event_log.h"
#include "server/http_json.h"
#include "server/listener_waker.h"

namespace headway {
namespace {

int LogCivetweb(const mg_connection*, const char* message) {
  LogEvent(LogLevel::kWarning, "http_server_message",
           {{"message", std::string(message).substr(0, 500)}});
  return 1;
}

std::string HeaderOf(mg_connection* connection, const char* name) {
  const char* value = mg_get_header(connection, name);
  return value == nullptr ? "" : value;
}

void Send(mg_connection* connection, const HttpResponse& response) {
  std::string head = absl::StrCat(
      "HTTP/1.1 ", response.status, " ",
      mg_get_response_code_text(connection, response.status),
      "\r\nContent-Type: application/json\r\nContent-Length: ", response.body.size(),
      "\r\nConnection: close\r\n");
  if (!response.allow.empty()) absl::StrAppend(&head, "Allow: ", response.allow, "\r\n");
  head += "\r\n";
  mg_write(connection, head.data(), head.size());
  mg_write(connection, response.body.data(), response.body.size());
}

HttpResponse Refusal(int status, const absl::Status& why) {
  return {status, ErrorJson(why), ""};
}

}  // namespace

HttpGateway::HttpGateway(const Options& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      api_(std::move(channel), options.call_timeout),
      handlers_(std::make_unique<WorkerPool>(options.threads)) {}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    const Options& options, std::shared_ptr<grpc::Channel> channel) {
  static std::once_flag initialized;
  std::call_once(initialized, [] { mg_init_library(0); });
  std::unique_ptr<HttpGateway> gateway(new HttpGateway(options, std::move(channel)));
  const std::string ports = absl::StrCat(options.host, ":", options.port);
  const std::string threads = absl::StrCat(options.threads);
  const std::string timeout_ms =
      absl::StrCat(absl::ToInt64Milliseconds(options.request_timeout));
  const char* settings[] = {"listening_ports",
                            ports.c_str(),
                            "num_threads",
                            threads.c_str(),
                            "request_timeout_ms",
                            timeout_ms.c_str(),
                            "enable_keep_alive",
                            "no",
                            nullptr};
  mg_callbacks callbacks = {};
  callbacks.log_message = &LogCivetweb;
  gateway->context_ = mg_start(&callbacks, gateway.get(), settings);
  if (gateway->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", ports));
  }
  mg_set_request_handler(gateway->context_, "/", &HttpGateway::HandleRequest,
                         gateway.get());
  std::vector<mg_server_port> bound(4);
  if (mg_get_server_ports(gateway->context_, static_cast<int>(bound.size()),
                          bound.data()) > 0) {
    gateway->port_ = bound[0].port;
  }
  return gateway;
}

HttpGateway::~HttpGateway() {
  if (context_ != nullptr) {
    StopWhileWaking(options_.host, port_, [this] { mg_stop(context_); });
  }
  handlers_.reset();
}

int HttpGateway::HandleRequest(mg_connection* connection, void* gateway) {
  return static_cast<const HttpGateway*>(gateway)->Handle(connection);
}

int HttpGateway::Handle(mg_connection* connection) const {
  const mg_request_info* info = mg_get_request_info(connection);
  HttpRequest request;
  request.method = info->request_method == nullptr ? "" : info->request_method;
  request.path = info->local_uri == nullptr ? "" : info->local_uri;
  request.query = info->query_string == nullptr ? "" : info->query_string;
  request.content_type = HeaderOf(connection, "Content-Type");
  request.authorization = HeaderOf(connection, "Authorization");

  HttpResponse response;
  if (info->content_length > options_.max_body_bytes) {
    response =
        Refusal(413, absl::ResourceExhaustedError(absl::StrCat(
                         "the body has ", info->content_length, " bytes; the limit is ",
                         options_.max_body_bytes, " (--http_max_body_bytes)")));
  } else {
    // Read into the body itself: civetweb's threads have small stacks (100 KiB).
    constexpr size_t kChunk = 64 << 10;
    bool too_long = false;
    while (true) {
      const size_t size = request.body.size();
      request.body.resize(size + kChunk);
      const int read = mg_read(connection, request.body.data() + size, kChunk);
      request.body.resize(size + std::max(read, 0));
      if (read <= 0) break;
      if (static_cast<int64_t>(request.body.size()) > options_.max_body_bytes) {
        too_long = true;
        break;
      }
    }
    if (too_long) {
      response =
          Refusal(413, absl::ResourceExhaustedError(absl::StrCat(
                           "the body is over the limit of ", options_.max_body_bytes,
                           " bytes (--http_max_body_bytes)")));
    } else if (info->content_length > 0 &&
               static_cast<int64_t>(request.body.size()) < info->content_length) {
      response =
          Refusal(408, absl::DeadlineExceededError(absl::StrCat(
                           "the body ended after ", request.body.size(), " of its ",
                           info->content_length, " bytes (or did not arrive within ",
                           absl::FormatDuration(options_.request_timeout), ")")));
    } else {
      // The call and the JSON work run on a thread with a full-size stack.
      absl::Notification done;
      handlers_->Schedule([this, &request, &response, &done] {
        response = api_.Handle(request);
        done.Notify();
      });
      done.WaitForNotification();
    }
  }
  Send(connection, response);
  return response.status;
}

}  // namespace headway
