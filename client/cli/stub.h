// The broker's RPCs as the CLI sees them: one interface returning
// absl::Status(Or), and its gRPC implementation.
#ifndef TOKENBROKER_CLIENT_CLI_STUB_H_
#define TOKENBROKER_CLIENT_CLI_STUB_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/broker_admin.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.pb.h"

namespace tokenbroker::cli {

// The RPCs of TokenBroker and BrokerAdmin. Errors are the broker's gRPC status
// converted one to one (absl and gRPC codes share their values); messages never
// carry a token or a secret.
//
// Thread safety: one call at a time per instance.
class BrokerStub {
 public:
  virtual ~BrokerStub() = default;

  // Errors: the broker's; also UNIMPLEMENTED when `request.user` is set and
  // the answer names no user (a broker that predates apps acting on behalf
  // of users), INTERNAL when it names another user.
  virtual absl::StatusOr<anypoint::tokenbroker::v1::GetTokenResponse> GetToken(
      const anypoint::tokenbroker::v1::GetTokenRequest& request) = 0;

  // Streams tokens into `on_token` until the broker ends the stream or
  // `on_token` returns false (then the stream is cancelled and OK returned).
  // The stream has no deadline.
  virtual absl::Status WatchToken(
      const anypoint::tokenbroker::v1::WatchTokenRequest& request,
      const std::function<bool(
          const anypoint::tokenbroker::v1::GetTokenResponse&)>& on_token) = 0;

  virtual absl::StatusOr<anypoint::tokenbroker::v1::CallResponse> Call(
      const anypoint::tokenbroker::v1::CallRequest& request) = 0;

  // TokenBroker.CallStream: hands each message to `on_message` as it
  // arrives (the first carries the status and headers). A non-OK result of
  // `on_message` cancels the stream and is returned. The deadline bounds the
  // whole stream. An error after the first message means the body is
  // incomplete.
  virtual absl::Status CallStream(
      const anypoint::tokenbroker::v1::CallRequest& request,
      const std::function<
          absl::Status(const anypoint::tokenbroker::v1::CallStreamResponse&)>&
          on_message) = 0;

  virtual absl::StatusOr<anypoint::tokenbroker::v1::ListAppsResponse> ListApps(
      const anypoint::tokenbroker::v1::ListAppsRequest& request) = 0;

  virtual absl::StatusOr<anypoint::tokenbroker::v1::RefreshTokenResponse>
  RefreshToken(
      const anypoint::tokenbroker::v1::RefreshTokenRequest& request) = 0;

  virtual absl::StatusOr<anypoint::tokenbroker::v1::RevokeTokenResponse>
  RevokeToken(const anypoint::tokenbroker::v1::RevokeTokenRequest& request) = 0;

  virtual absl::StatusOr<anypoint::tokenbroker::v1::ReloadConfigResponse>
  ReloadConfig(
      const anypoint::tokenbroker::v1::ReloadConfigRequest& request) = 0;

  virtual absl::StatusOr<anypoint::tokenbroker::v1::CreateConnectLinkResponse>
  CreateConnectLink(
      const anypoint::tokenbroker::v1::CreateConnectLinkRequest& request) = 0;
};

// How to reach the broker. Either `plaintext`, or TLS verified with the PEM
// bundle in `ca_file` (system roots when empty); `cert_file` and `key_file`
// (both or neither) add a client certificate for mTLS.
struct ConnectionOptions {
  std::string addr = "127.0.0.1:50051";
  bool plaintext = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // File holding a bearer key, sent as `authorization: Bearer <key>`.
  std::string bearer_file;
  // Deadline of each unary RPC and of each CallStream as a whole.
  absl::Duration timeout = absl::Seconds(10);
};

// Returns a BrokerStub over a gRPC channel to `options.addr`. The channel
// connects lazily: an unreachable broker shows as UNAVAILABLE on the first
// call. Errors: INVALID_ARGUMENT when a CA, certificate, key or bearer file
// cannot be read or is malformed.
absl::StatusOr<std::unique_ptr<BrokerStub>> MakeGrpcBrokerStub(
    const ConnectionOptions& options);

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_STUB_H_
