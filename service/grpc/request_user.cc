#include "service/grpc/request_user.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/auth/policy.h"
#include "service/config/config.h"

namespace tokenbroker {
namespace {

constexpr size_t kMaxUserLength = 256;

bool IsPrintableAscii(absl::string_view text) {
  for (char c : text) {
    if (!absl::ascii_isprint(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::Status ResolveRequestUser(RequestContext& rpc, const UserGrants* grants,
                                absl::string_view user,
                                ResolvedTokenRequest& resolved) {
  const AppConfig& app = *resolved.app;
  if (user.size() > kMaxUserLength || !IsPrintableAscii(user)) {
    return rpc.Deny(absl::InvalidArgumentError(
        "user: must be a username or user id of at most 256 printable "
        "characters"));
  }
  if (app.grant_type != GrantType::kAuthorizationCode) {
    if (user.empty()) return absl::OkStatus();
    return rpc.Deny(absl::InvalidArgumentError(absl::StrCat(
        "user: app ", app.name, " acts on its own behalf; leave user empty")));
  }
  rpc.record().user = std::string(user);
  if (grants == nullptr) {
    return rpc.Deny(absl::FailedPreconditionError(
        absl::StrCat("app ", app.name,
                     " acts on behalf of users, but the broker has no "
                     "grant_store configured")));
  }
  absl::StatusOr<UserGrantSummary> grant = grants->Resolve(app.name, user);
  if (!grant.ok()) {
    if (!absl::IsNotFound(grant.status())) return rpc.Deny(grant.status());
    // Say that a user has not connected only to a caller that could act for
    // them once they do.
    const AppGrant* caller_grant = rpc.caller().FindGrant(app.name);
    const bool may_know =
        caller_grant != nullptr &&
        (caller_grant->all_users ||
         (!user.empty() && GrantCoversUser(*caller_grant, user, user)));
    if (!may_know) {
      return rpc.Deny(AuthorizeUser(rpc.caller(), app.name, user, user));
    }
    return rpc.Deny(absl::FailedPreconditionError(grant.status().message()));
  }
  rpc.set_user(grant->user_id, grant->username);
  if (absl::Status allowed = AuthorizeUser(rpc.caller(), app.name,
                                           grant->user_id, grant->username);
      !allowed.ok()) {
    return rpc.Deny(allowed);
  }
  if (grant->needs_reauthorization) {
    return rpc.Deny(absl::FailedPreconditionError(absl::StrCat(
        "app ", app.name, ": the grant of user ", grant->username,
        " needs re-authorization (", grant->reason,
        "); connect the user again: tokenbrokerctl connect ", app.name)));
  }
  resolved.upstream.user = grant->user_id;
  return absl::OkStatus();
}

}  // namespace tokenbroker
