// Connecting to the token broker: one gRPC channel per process, set up for
// mTLS, TLS with a bearer key, or plaintext (development only), optionally
// load-balanced over every broker replica.
//
// Load balancing: in Kubernetes, give the broker a headless Service (one DNS
// A record per ready pod) and set
//   target = "dns:///token-broker.NAMESPACE.svc.cluster.local:50051"
//   load_balancing_policy = "round_robin"
// gRPC then resolves every pod address and spreads RPCs over them (service
// config {"loadBalancingConfig":[{"round_robin":{}}]}), re-resolving when a
// connection drops. With a normal (ClusterIP) Service all RPCs of a channel go
// to one pod, because a gRPC channel keeps one long-lived HTTP/2 connection.
#ifndef TOKENBROKER_CLIENT_LIB_CHANNEL_H_
#define TOKENBROKER_CLIENT_LIB_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"

namespace tokenbroker {

// How to reach the broker. Either `plaintext`, or TLS verified with the PEM
// bundle in `ca_file` (the system roots when empty); `cert_file` and
// `key_file` (both or neither) add a client certificate for mTLS. A bearer key
// (from `bearer_key`, or else the file `bearer_file`) is sent on every RPC as
// `authorization: Bearer <key>`.
struct ClientChannelOptions {
  // A gRPC target: "HOST:PORT", "dns:///NAME:PORT", "unix:PATH", ...
  std::string target = "127.0.0.1:50051";
  bool plaintext = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string bearer_key;
  std::string bearer_file;
  // "" (gRPC's default, pick_first) or "round_robin".
  std::string load_balancing_policy;
  // Prepended to gRPC's user agent, to tell callers apart in broker logs.
  std::string user_agent_prefix = "tokenbroker-client";
  // Largest response accepted (Call bodies can be large).
  int max_receive_message_bytes = 64 << 20;
};

// A channel and the bearer key to attach to each of its RPCs.
struct ClientConnection {
  std::shared_ptr<grpc::Channel> channel;
  std::string target;      // As given in ClientChannelOptions, for messages.
  std::string bearer_key;  // Empty: none.
};

// Creates the channel. It connects lazily: an unreachable broker shows as
// UNAVAILABLE on the first RPC. Errors: INVALID_ARGUMENT when a CA,
// certificate, key or bearer file cannot be read, only one of cert and key is
// given, the bearer key is empty or not printable ASCII, TLS files are given
// with `plaintext`, or the load balancing policy is unknown. Thread-safe.
absl::StatusOr<ClientConnection> MakeClientConnection(
    const ClientChannelOptions& options);

// The service config that selects `policy` ("round_robin"), as JSON.
std::string LoadBalancingServiceConfig(const std::string& policy);

}  // namespace tokenbroker

#endif  // TOKENBROKER_CLIENT_LIB_CHANNEL_H_
