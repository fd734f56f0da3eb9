#include "server/http_gateway.h"

#include <httplib.h>

#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/event_log.h"
#include "server/hardened_http_server.h"
#include "server/http_json.h"

namespace headway {
namespace {

// The JSON error body for a status cpp-httplib answers by itself (before a handler).
absl::Status StatusOfHttpError(int status, const HttpGateway::Options& options) {
  switch (status) {
    case 413:
      return absl::ResourceExhaustedError(absl::StrCat("the body is over the limit of ",
                                                       options.max_body_bytes,
                                                       " bytes (--http_max_body_bytes)"));
    case 400:
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed HTTP request, or its body did not arrive in full within ",
          absl::FormatDuration(options.request_timeout), " (--http_request_timeout)"));
    case 414:
      return absl::InvalidArgumentError("the request's URI is too long");
    case 415:
      return absl::InvalidArgumentError(
          "the body's Content-Encoding is not one the server reads (gzip, deflate, br)");
    default:
      return absl::UnknownError(absl::StrCat("HTTP status ", status));
  }
}

std::string QueryOf(const httplib::Request& request) {
  std::vector<std::string> pairs;
  for (const auto& [key, value] : request.params) pairs.push_back(key + "=" + value);
  return absl::StrJoin(pairs, "&");
}

std::chrono::microseconds Chrono(absl::Duration duration) {
  return absl::ToChronoMicroseconds(duration);
}

}  // namespace

HttpGateway::HttpGateway(const Options& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options), api_(std::move(channel), options.call_timeout) {}

absl::Status HttpGateway::ReplaceTls(const TlsMaterial& material) {
  auto* https = dynamic_cast<HardenedHttpsServer*>(server_.get());
  if (https == nullptr) {
    return absl::FailedPreconditionError("the HTTP port does not serve HTTPS");
  }
  absl::StatusOr<SslContextPtr> context = MakeHttpsContext(material);
  if (!context.ok()) return context.status();
  https->ReplaceSslContext(
      std::shared_ptr<SSL_CTX>(context->release(), SslContextFree()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    const Options& options, std::shared_ptr<grpc::Channel> channel) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_threads must be 1 or more, not ", options.threads));
  }
  if (options.max_queue_wait < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_max_queue_wait must be at least 1ms (or inf), not ",
                     absl::FormatDuration(options.max_queue_wait)));
  }
  std::unique_ptr<HttpGateway> gateway(new HttpGateway(options, std::move(channel)));
  const HardenedHttpLimits limits{
      static_cast<size_t>(options.max_header_bytes),
      options.threads,
      options.max_queue_wait == absl::InfiniteDuration()
          ? int64_t{-1}
          : absl::ToInt64Milliseconds(options.max_queue_wait),
      ErrorJson(absl::UnavailableError(absl::StrCat(
          "the server is overloaded: this connection waited ",
          absl::FormatDuration(options.max_queue_wait), " for one of its ",
          options.threads,
          " HTTP threads (--http_max_queue_wait, --http_threads); retry later or on "
          "another replica"))),
      [self = gateway.get()] { self->RecordShed(); },
      ErrorJson(absl::InvalidArgumentError("this port serves HTTPS only: use https://"))};
  if (options.tls_cert_file.empty()) {
    gateway->server_ = std::make_unique<HardenedHttpServer>(limits);
  } else {
    absl::StatusOr<TlsMaterial> material = ReadTlsMaterial(
        {options.tls_cert_file, options.tls_key_file, options.tls_client_ca_file});
    if (!material.ok()) return material.status();
    gateway->server_ = std::make_unique<HardenedHttpsServer>(
        limits, options.tls_cert_file.c_str(), options.tls_key_file.c_str(),
        options.tls_client_ca_file.empty() ? nullptr
                                           : options.tls_client_ca_file.c_str());
    if (!gateway->server_->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "HTTPS cannot use certificate ", options.tls_cert_file, " with key ",
          options.tls_key_file,
          options.tls_client_ca_file.empty()
              ? ""
              : absl::StrCat(" and client CA ", options.tls_client_ca_file)));
    }
    // Every connection handshakes with a context of ours, the first one included,
    // so that a rotation changes nothing but the certificates.
    if (absl::Status replaced = gateway->ReplaceTls(*material); !replaced.ok()) {
      return replaced;
    }
  }
  httplib::Server& server = *gateway->server_;
  server.set_read_timeout(Chrono(options.request_timeout));
  server.set_write_timeout(Chrono(options.request_timeout));
  server.set_keep_alive_timeout(std::max<time_t>(
      1, absl::ToInt64Seconds(std::min(options.request_timeout, absl::Seconds(5)))));
  server.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));

  const HttpGateway* self = gateway.get();
  // Serves a request whose body is `body` (what the library read into `in.body`, or
  // what read_body below read).
  const auto serve = [self](const httplib::Request& in, std::string body,
                            httplib::Response& out) {
    HttpRequest request;
    // HEAD is GET without the body (the library routes it to the GET handlers and
    // sends no body): a HEAD of a health or metadata path answers GET's status.
    request.method = in.method == "HEAD" ? "GET" : in.method;
    request.path = in.path;
    request.query = QueryOf(in);
    request.content_type = in.get_header_value("Content-Type");
    request.authorization = in.get_header_value("Authorization");
    request.inference_header_length =
        in.get_header_value("Inference-Header-Content-Length");
    request.grpc_timeout = in.get_header_value("Grpc-Timeout");
    request.client_socket = ServedConnectionSocket();
    request.body = std::move(body);
    const HttpResponse response = self->api_.Handle(request);
    out.status = response.status;
    if (!response.allow.empty()) out.set_header("Allow", response.allow);
    if (response.json_length.has_value()) {
      out.set_header("Inference-Header-Content-Length",
                     std::to_string(*response.json_length));
    }
    out.set_content(response.body, response.json_length.has_value()
                                       ? "application/octet-stream"
                                       : "application/json");
  };
  const httplib::Server::Handler handle = [serve](const httplib::Request& in,
                                                  httplib::Response& out) {
    serve(in, in.body, out);
  };
  // A request with a body reads it here, the limit counted on what it decompresses
  // to: the library checks --http_max_body_bytes against Content-Length alone, and
  // a gzip body of 9 MB inflated to 2 GB in memory (8 GB at the peak).
  const size_t max_body = static_cast<size_t>(options.max_body_bytes);
  const httplib::Server::HandlerWithContentReader read_body =
      [self, serve, max_body](const httplib::Request& in, httplib::Response& out,
                              const httplib::ContentReader& read) {
        if (in.is_multipart_form_data()) {
          // A form (curl -F): read through, dropped, and refused for its type.
          size_t seen = 0;
          read([](const httplib::MultipartFormData&) { return true; },
               [&](const char*, size_t size) {
                 seen += size;
                 return seen <= max_body;
               });
          serve(in, "", out);
          return;
        }
        std::string body;
        bool over_limit = false;
        const bool complete = read([&](const char* data, size_t size) {
          over_limit = size > max_body - body.size();
          if (!over_limit) body.append(data, size);
          return !over_limit;
        });
        if (!complete) {
          out.status = over_limit ? 413 : (out.status >= 400 ? out.status : 400);
          out.set_header("Connection", "close");
          out.set_content(ErrorJson(StatusOfHttpError(out.status, self->options_)),
                          "application/json");
          return;
        }
        serve(in, std::move(body), out);
      };
  for (auto route : {&httplib::Server::Get, &httplib::Server::Post, &httplib::Server::Put,
                     &httplib::Server::Delete, &httplib::Server::Patch}) {
    (server.*route)(".*", handle);
  }
  server.Post(".*", read_body);
  server.Put(".*", read_body);
  server.Patch(".*", read_body);
  server.Delete(".*", read_body);
  server.Options(".*", handle);
  // A POST with neither Content-Length nor a chunked body (curl -X POST without -d)
  // has no body: answered at once, where the library would wait for the connection
  // to end (the request timeout) to read one.
  // A method no route takes (PRI, HTTP/2's preface) is answered here too, before its
  // body is read: the library would read and inflate it into memory without bound.
  server.set_pre_routing_handler(
      [handle](const httplib::Request& in, httplib::Response& out) {
        const bool bodyless_post =
            (in.method == "POST" || in.method == "PUT" || in.method == "PATCH") &&
            !in.has_header("Content-Length") &&
            in.get_header_value("Transfer-Encoding").find("chunked") == std::string::npos;
        const bool routed_method = in.method == "GET" || in.method == "HEAD" ||
                                   in.method == "POST" || in.method == "PUT" ||
                                   in.method == "DELETE" || in.method == "PATCH" ||
                                   in.method == "OPTIONS";
        if (routed_method && !bodyless_post) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        if (!routed_method) out.set_header("Connection", "close");
        handle(in, out);
        return httplib::Server::HandlerResponse::Handled;
      });
  server.set_error_handler([self](const httplib::Request&, httplib::Response& out) {
    if (!out.body.empty()) return;
    out.set_content(ErrorJson(StatusOfHttpError(out.status, self->options_)),
                    "application/json");
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& out, std::exception_ptr) {
        out.status = 500;
        out.set_content(
            ErrorJson(absl::InternalError("the HTTP request failed inside the server")),
            "application/json");
      });

  if (options.port == 0) {
    gateway->port_ = server.bind_to_any_port(options.host);
  } else if (server.bind_to_port(options.host, options.port)) {
    gateway->port_ = options.port;
  }
  if (gateway->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", options.host, ":", options.port));
  }
  gateway->listener_ = std::thread([&server] { server.listen_after_bind(); });
  return gateway;
}

void HttpGateway::RecordShed() {
  if (options_.metrics != nullptr) options_.metrics->RecordHttpShed();
  int64_t suppressed = 0;
  if (shed_log_.ShouldLog("HTTP", absl::StatusCode::kUnavailable, absl::Now(),
                          suppressed)) {
    LogEvent(LogLevel::kWarning, "http_shed",
             {{"threads", absl::StrCat(options_.threads)},
              {"max_queue_wait", absl::FormatDuration(options_.max_queue_wait)},
              {"suppressed", absl::StrCat(suppressed)}});
  }
}

HttpGateway::~HttpGateway() {
  if (server_ != nullptr) server_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace headway
