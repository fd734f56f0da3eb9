#include "client/channel.h"

#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/service_config.h"

namespace headway {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read PEM file ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const TlsOptions& tls) {
  if (!tls.enabled()) {
    if (!tls.cert_file.empty() || !tls.key_file.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate needs the server's CA file too (--tls_ca_file)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "give both a client certificate and its key, or neither");
  }
  grpc::SslCredentialsOptions ssl;
  absl::StatusOr<std::string> ca = ReadPem(tls.ca_file);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = *std::move(ca);
  if (!tls.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(tls.cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(tls.key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

// The shared service config (kSharedServiceConfigJson). With `serving_only`, gRPC's
// client-side health checking also keeps calls off replicas whose health is not
// SERVING (still loading, or draining).
std::string ServiceConfig(bool serving_only) {
  std::string config = kSharedServiceConfigJson;
  if (serving_only) {
    config.insert(config.find('{') + 1,
                  R"json("healthCheckConfig": {"serviceName": ""},)json");
  }
  return config;
}

}  // namespace

absl::StatusOr<std::string> ChannelTarget(const std::string& target) {
  const bool has_scheme =
      absl::StartsWith(target, "ipv4:") || absl::StartsWith(target, "ipv6:") ||
      absl::StartsWith(target, "dns:") || absl::StartsWith(target, "unix:");
  if (target.find(',') == std::string::npos || target.find("://") != std::string::npos ||
      has_scheme) {
    return target;
  }
  const bool ipv6 = target.front() == '[';
  for (absl::string_view replica : absl::StrSplit(target, ',', absl::SkipWhitespace())) {
    replica = absl::StripAsciiWhitespace(replica);
    // "IP:port", or "[IPv6]:port"; gRPC's ipv4:/ipv6: lists take addresses only.
    const size_t colon = replica.rfind(':');
    absl::string_view host = replica.substr(0, std::min(colon, replica.size()));
    const bool bracketed =
        absl::ConsumePrefix(&host, "[") && absl::ConsumeSuffix(&host, "]");
    unsigned char address[sizeof(in6_addr)];
    const std::string host_text(host);
    if (colon == absl::string_view::npos || bracketed != ipv6 ||
        inet_pton(ipv6 ? AF_INET6 : AF_INET, host_text.c_str(), address) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a list of replicas names each by ", ipv6 ? "[IPv6]:port" : "IP:port",
          ", and \"", replica.substr(0, 100),
          "\" is not; for replicas behind one name, give the name alone "
          "(dns:///NAME:PORT resolves to every address)"));
    }
  }
  return absl::StrCat(ipv6 ? "ipv6:" : "ipv4:", target);
}

absl::StatusOr<std::vector<ReplicaTarget>> ReplicaTargets(const std::string& target) {
  std::vector<ReplicaTarget> replicas;
  if (!absl::StartsWith(target, "dns:")) {
    if (target.find("://") != std::string::npos ||
        target.find(',') == std::string::npos) {
      return std::vector<ReplicaTarget>{{target, ""}};
    }
    for (absl::string_view address :
         absl::StrSplit(target, ',', absl::SkipWhitespace())) {
      replicas.push_back({std::string(absl::StripAsciiWhitespace(address)), ""});
    }
    return replicas;
  }
  // dns:host:port, dns:///host:port or dns://authority/host:port.
  absl::string_view name = absl::string_view(target).substr(4);
  if (absl::ConsumePrefix(&name, "//"))
    name = name.substr(std::min(name.find('/'), name.size()));
  absl::ConsumePrefix(&name, "/");
  const size_t colon = name.rfind(':');
  const std::string host(name.substr(0, colon));
  const std::string port =
      colon == absl::string_view::npos ? "443" : std::string(name.substr(colon + 1));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
      error != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot resolve ", host, " (", target, "): ", gai_strerror(error)));
  }
  for (const addrinfo* address = found; address != nullptr; address = address->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    const bool ipv6 = address->ai_family == AF_INET6;
    const void* raw =
        ipv6 ? static_cast<const void*>(
                   &reinterpret_cast<const sockaddr_in6*>(address->ai_addr)->sin6_addr)
             : static_cast<const void*>(
                   &reinterpret_cast<const sockaddr_in*>(address->ai_addr)->sin_addr);
    if (inet_ntop(address->ai_family, raw, ip, sizeof(ip)) == nullptr) continue;
    ReplicaTarget replica{
        ipv6 ? absl::StrCat("[", ip, "]:", port) : absl::StrCat(ip, ":", port), host};
    const bool seen =
        std::any_of(replicas.begin(), replicas.end(),
                    [&](const auto& other) { return other.target == replica.target; });
    if (!seen) replicas.push_back(std::move(replica));
  }
  freeaddrinfo(found);
  return replicas;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& target, const TlsOptions& tls, int max_message_bytes,
    Replicas replicas, grpc::ChannelArguments arguments) {
  if (target.empty()) return absl::InvalidArgumentError("no target");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  arguments.SetMaxReceiveMessageSize(max_message_bytes);
  arguments.SetMaxSendMessageSize(max_message_bytes);
  arguments.SetServiceConfigJSON(ServiceConfig(replicas == Replicas::kServingOnly));
  if (tls.enabled() && !tls.server_name.empty()) {
    arguments.SetSslTargetNameOverride(tls.server_name);
  }
  absl::StatusOr<std::string> channel_target = ChannelTarget(target);
  if (!channel_target.ok()) return channel_target.status();
  return grpc::CreateCustomChannel(*channel_target, *credentials, arguments);
}

}  // namespace headway
