#ifndef TOKENBROKER_SERVICE_GRPC_BROKER_CONTROL_H_
#define TOKENBROKER_SERVICE_GRPC_BROKER_CONTROL_H_

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace tokenbroker {

// What a config reload changed.
struct ReloadSummary {
  std::vector<std::string> added;
  std::vector<std::string> changed;
  std::vector<std::string> removed;
};

// Broker-wide operations behind the admin RPCs (and SIGHUP). Thread-safe.
class BrokerControl {
 public:
  virtual ~BrokerControl() = default;

  // Drops every cached token of `app` and revokes each at the app's revoke
  // endpoint; `done` gets how many were dropped, or UNAVAILABLE naming the
  // revocations Anypoint did not confirm (the tokens are dropped anyway).
  virtual void Revoke(const std::string& app,
                      absl::AnyInvocable<void(absl::StatusOr<int>)> done) = 0;

  // For a user app: deletes the grant of `user_id` (durably), drops its
  // cached tokens and revokes its refresh token at the app's revoke
  // endpoint (RFC 7009, token_type_hint refresh_token). `done` gets how
  // many cached tokens were dropped, or NOT_FOUND when the user has no
  // grant, or UNAVAILABLE when the server did not confirm the revocation
  // (the grant is deleted anyway).
  virtual void RevokeUser(
      const std::string& app, const std::string& user_id,
      absl::AnyInvocable<void(absl::StatusOr<int>)> done) = 0;

  // A one-time link to start the browser sign-in of a user for the user app
  // `app`, minted for the admin caller `minted_by` (audited with the
  // grant), given to `done`. Never blocks: `done` runs exactly once, inline
  // or on another thread (the Redis client's, with shared state), and must
  // not block. Errors: FAILED_PRECONDITION when the OAuth pages are not
  // served; RESOURCE_EXHAUSTED when too many sign-ins are pending;
  // UNAVAILABLE when the shared state (Redis) cannot be reached.
  struct ConnectLink {
    std::string url;  // A bearer credential until used or expired.
    absl::Time expires_at;
  };
  virtual void CreateConnectLink(
      const std::string& app, const std::string& minted_by,
      absl::AnyInvocable<void(absl::StatusOr<ConnectLink>)> done) = 0;

  // Re-reads the config file and applies it atomically; tokens of apps whose
  // config is unchanged are kept. A broken file changes nothing:
  // FAILED_PRECONDITION with the reason.
  virtual absl::StatusOr<ReloadSummary> Reload() = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_BROKER_CONTROL_H_
