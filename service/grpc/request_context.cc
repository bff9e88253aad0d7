#include "service/grpc/request_context.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpc/grpc_security_constants.h"
#include "service/auth/policy.h"
#include "service/common/log.h"

namespace tokenbroker {
namespace {

// Fills the certificate fields of `peer` from the leaf certificate itself:
// gRPC's own properties hold a SPIFFE id only when the certificate has
// exactly one valid URI SAN, which hides certificates that carry more (or a
// malformed one) and must then name nobody.
void ReadPeerCertificate(const grpc::AuthContext& auth, PeerCredentials* peer) {
  peer->has_certificate = true;
  std::vector<grpc::string_ref> pems =
      auth.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) {
    peer->certificate_error = "the transport did not pass it on";
    return;
  }
  static CertificateNamesCache* const cache = new CertificateNamesCache();
  absl::StatusOr<CertificateNames> names =
      cache->Get(absl::string_view(pems.front().data(), pems.front().size()));
  if (!names.ok()) {
    peer->certificate_error = std::string(names.status().message());
    return;
  }
  peer->uri_sans = std::move(names->uri_sans);
  peer->common_names = std::move(names->common_names);
}

}  // namespace

PeerCredentials PeerFromContext(const grpc::ServerContextBase& context) {
  PeerCredentials peer;
  peer.peer = context.peer();
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    ReadPeerCertificate(*auth, &peer);
  }
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    absl::string_view value(it->second.data(), it->second.size());
    if (value.size() > 7 && absl::StartsWithIgnoreCase(value, "bearer ")) {
      peer.bearer_key =
          std::string(absl::StripAsciiWhitespace(value.substr(7)));
    } else {
      peer.bearer_key = std::string();  // Malformed: never matches a caller.
    }
  }
  return peer;
}

RequestContext::RequestContext(const grpc::ServerContextBase& context,
                               std::shared_ptr<const Config> config,
                               AuditSink& audit, const Clock& clock,
                               std::string rpc)
    : config_(std::move(config)),
      audit_(audit),
      clock_(clock),
      start_(clock.Now()),
      peer_(PeerFromContext(context)) {
  record_.rpc = std::move(rpc);
  record_.peer = peer_.peer;
}

absl::Status RequestContext::Authenticate() {
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(*config_, peer_);
  if (!identity.ok()) return Deny(identity.status());
  identity_ = *std::move(identity);
  record_.caller = identity_.caller->name;
  record_.auth = identity_.method;
  record_.principal = identity_.principal;
  return absl::OkStatus();
}

absl::Status RequestContext::Reauthenticate(
    std::shared_ptr<const Config> config) {
  // identity_ points into config_: both change together, or neither.
  const std::string& before = record_.caller;
  absl::StatusOr<CallerIdentity> identity = IdentifyCaller(*config, peer_);
  if (!identity.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the caller's credentials were withdrawn by a config reload: ",
        identity.status().message()));
  }
  if (identity->caller->name != before) {
    return absl::UnauthenticatedError(
        "after a config reload the caller's credentials name another caller; "
        "open a new stream");
  }
  identity_ = *std::move(identity);
  config_ = std::move(config);
  return absl::OkStatus();
}

absl::Status RequestContext::WriteRecord() {
  record_.time = clock_.Now();
  record_.latency = record_.time - start_;
  absl::Status written = audit_.Write(record_);
  if (!written.ok()) {
    LogError("audit record not written",
             {{"error", std::string(written.message())},
              {"rpc", record_.rpc},
              {"fail_closed", config_->audit.fail_closed}});
  }
  return written;
}

absl::Status RequestContext::RecheckUser(absl::string_view app) const {
  if (user_id_.empty()) return absl::OkStatus();
  return AuthorizeUser(caller(), app, user_id_, record_.user);
}

absl::Status RequestContext::Deny(const absl::Status& status) {
  record_.event = "decision";
  record_.decision = "deny";
  record_.reason = std::string(status.message());
  record_.grpc_status = absl::StatusCodeToString(status.code());
  WriteRecord().IgnoreError();  // A refusal stands whether audited or not.
  return status;
}

absl::Status RequestContext::AllowDecision(const std::string& reason) {
  record_.event = "decision";
  record_.decision = "allow";
  record_.reason = reason;
  record_.grpc_status = "";
  absl::Status written = WriteRecord();
  if (!written.ok() && config_->audit.fail_closed) {
    return absl::UnavailableError(
        "the audit log cannot be written and the broker is fail-closed; "
        "retry later");
  }
  return absl::OkStatus();
}

absl::Status RequestContext::Use(const absl::Status& status) {
  // Revocations and reloads keep their own event names.
  if (record_.event.empty() || record_.event == "decision") {
    record_.event = "use";
  }
  record_.decision = "allow";
  record_.grpc_status = absl::StatusCodeToString(status.code());
  record_.reason = status.ok() ? "" : std::string(status.message());
  absl::Status written = WriteRecord();
  if (!written.ok() && config_->audit.fail_closed && status.ok()) {
    return absl::UnavailableError(
        "the audit log cannot be written and the broker is fail-closed; "
        "retry later");
  }
  return status;
}

}  // namespace tokenbroker
