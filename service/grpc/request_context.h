#ifndef TOKENBROKER_SERVICE_GRPC_REQUEST_CONTEXT_H_
#define TOKENBROKER_SERVICE_GRPC_REQUEST_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "service/auth/audit.h"
#include "service/auth/identity.h"
#include "service/common/clock.h"
#include "service/config/config.h"

namespace tokenbroker {

// Reads the peer's certificate identity (when verified) and bearer key from
// a gRPC call.
PeerCredentials PeerFromContext(const grpc::ServerContextBase& context);

// What every RPC needs to authenticate its caller and audit its outcome:
// the config in force when it started, the caller, and the record being
// built. Not thread-safe; one per RPC.
class RequestContext {
 public:
  RequestContext(const grpc::ServerContextBase& context,
                 std::shared_ptr<const Config> config, AuditSink& audit,
                 const Clock& clock, std::string rpc);

  // Identifies the caller. On failure the denial is audited and the error
  // (UNAUTHENTICATED) returned.
  absl::Status Authenticate();

  // For a stream still open when the config is reloaded: identifies the
  // same peer under `config` (which is used from then on). Errors:
  // UNAUTHENTICATED if its credentials no longer name the same caller.
  // Not audited here: the caller of this denies or goes on.
  absl::Status Reauthenticate(std::shared_ptr<const Config> config);

  const Config& config() const { return *config_; }
  std::shared_ptr<const Config> config_ptr() const { return config_; }
  const CallerConfig& caller() const { return *identity_.caller; }
  AuditRecord& record() { return record_; }

  // The user of a user app the request acts for (ResolveRequestUser), so
  // that a stream's recheck under a reloaded config can ask again.
  void set_user(std::string user_id, std::string username) {
    user_id_ = std::move(user_id);
    record_.user = std::move(username);
  }
  const std::string& user_id() const { return user_id_; }
  const std::string& username() const { return record_.user; }

  // For a stream still open when the config is reloaded, after
  // Reauthenticate(): whether the caller may still act for its user
  // (AuthorizeUser); OK for requests without a user.
  absl::Status RecheckUser(absl::string_view app) const;

  // Audits a refusal ("decision" event, decision "deny") and returns
  // `status` unchanged, for `return Deny(...)`.
  absl::Status Deny(const absl::Status& status);

  // Audits an allowed request before acting on it ("decision" event). With
  // audit.fail_closed, a failed write refuses the request (UNAVAILABLE).
  absl::Status AllowDecision(const std::string& reason);

  // Audits the outcome of an allowed request ("use" event) with `status`.
  // With audit.fail_closed, a failed write turns an OK outcome into
  // UNAVAILABLE: the answer is withheld. Returns the status to send.
  absl::Status Use(const absl::Status& status);

 private:
  absl::Status WriteRecord();

  std::shared_ptr<const Config> config_;
  AuditSink& audit_;
  const Clock& clock_;
  absl::Time start_;
  PeerCredentials peer_;
  CallerIdentity identity_;
  AuditRecord record_;
  std::string user_id_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_REQUEST_CONTEXT_H_
