// MakeChannel: the one place Headway's client tools open a gRPC channel to Headway
// servers: plaintext, TLS (the server's CA) or mutual TLS (plus a client certificate
// and key), with message size limits. Used by the client library, the CLI and the load
// generator, so all of them speak the same transport.
//
// Many replicas: the target may be one address, a comma-separated list of IP:port
// addresses, or a name gRPC resolves to several (dns:///headway:50051, a headless
// Kubernetes Service). Calls are spread with gRPC's round_robin policy over the
// replicas whose gRPC health says SERVING (kServingOnly: none that is loading or
// draining), or over all of them (kAll: for asking a replica's health itself), and
// the idempotent inference RPCs (Embed, Classify) and health checks are retried on
// another replica when one is UNAVAILABLE (a replica going away).
//
// Stateless; thread-safe.
#ifndef HEADWAY_CLIENT_CHANNEL_H_
#define HEADWAY_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace headway {

struct TlsOptions {
  // PEM file of the CA that signed the server's certificate; set means TLS.
  std::string ca_file;
  // PEM client certificate chain and key, for servers that require mutual TLS.
  std::string cert_file;
  std::string key_file;
  // Name to check the server's certificate against, when it differs from the target's
  // host (for example an IP target and a certificate for a DNS name).
  std::string server_name;

  bool enabled() const { return !ca_file.empty(); }
};

// The gRPC target for `target`: a comma-separated list of IP:port addresses becomes an
// "ipv4:" (or "ipv6:") target URI; anything else is returned unchanged.
// INVALID_ARGUMENT, naming the entry, for a list holding anything but addresses (a
// host name: gRPC's lists take addresses only).
absl::StatusOr<std::string> ChannelTarget(const std::string& target);

// One replica of a fleet, addressed on its own.
struct ReplicaTarget {
  std::string target;  // "ip:port", or the target as given
  // The host name the replica was found under (a dns: target), for TLS name checks;
  // empty when the target is an address.
  std::string host_name;
};

// The replicas `target` names, each to be addressed on its own (management commands
// go to each): the addresses of a comma-separated list, every address a dns: name
// resolves to, or else the target itself. NOT_FOUND when a dns: name does not resolve.
absl::StatusOr<std::vector<ReplicaTarget>> ReplicaTargets(const std::string& target);

enum class Replicas { kServingOnly, kAll };

// A channel to `target` (see ChannelTarget). INVALID_ARGUMENT for an empty target or a
// client certificate without its key (or the reverse); NOT_FOUND for a PEM file that
// cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& target, const TlsOptions& tls, int max_message_bytes,
    Replicas replicas = Replicas::kServingOnly,
    grpc::ChannelArguments arguments = grpc::ChannelArguments());

}  // namespace headway

#endif  // HEADWAY_CLIENT_CHANNEL_H_
