#include "service/grpc/broker_admin_service.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "service/auth/policy.h"
#include "service/cache/token_request.h"
#include "service/common/status_macros.h"
#include "service/grpc/reactors.h"
#include "service/grpc/request_context.h"
#include "service/grpc/status.h"
#include "service/grpc/token_wait_reactor.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(t));
}

// Authenticates an admin RPC and checks the admin role; denials audited.
absl::Status AuthorizeAdminRequest(RequestContext& request,
                                   absl::string_view rpc) {
  TB_RETURN_IF_ERROR(request.Authenticate());
  if (absl::Status s = AuthorizeAdmin(request.caller(), rpc); !s.ok()) {
    return request.Deny(s);
  }
  return absl::OkStatus();
}

void FillTokenState(const TokenEntryInfo& info, pb::TokenState* state) {
  for (const std::string& scope : info.scopes) state->add_scopes(scope);
  state->set_valid(info.valid);
  if (info.valid_until != absl::InfinitePast()) {
    *state->mutable_valid_until() = ToTimestamp(info.valid_until);
  }
  if (info.last_refresh != absl::InfinitePast()) {
    *state->mutable_last_refresh() = ToTimestamp(info.last_refresh);
  }
  if (info.next_refresh != absl::InfiniteFuture()) {
    *state->mutable_next_refresh() = ToTimestamp(info.next_refresh);
  }
  if (!info.last_error.ok()) {
    state->set_last_error(std::string(info.last_error.message()));
  }
  state->set_refreshes(info.refreshes);
  state->set_failures(info.failures);
  state->set_token_fingerprint(info.token_fingerprint);
}

void FillUserGrant(const UserGrantSummary& grant,
                   const std::vector<TokenEntryInfo>& entries,
                   pb::UserGrantInfo* out) {
  out->set_user_id(grant.user_id);
  out->set_username(grant.username);
  for (const std::string& scope : grant.scopes) out->add_scopes(scope);
  if (grant.connected_at != absl::InfinitePast()) {
    *out->mutable_connected_at() = ToTimestamp(grant.connected_at);
  }
  if (grant.updated_at != absl::InfinitePast()) {
    *out->mutable_updated_at() = ToTimestamp(grant.updated_at);
  }
  out->set_state(grant.needs_reauthorization
                     ? pb::USER_GRANT_STATE_NEEDS_REAUTHORIZATION
                     : pb::USER_GRANT_STATE_CONNECTED);
  out->set_reason(grant.reason);
  for (const TokenEntryInfo& info : entries) {
    if (info.user == grant.user_id) FillTokenState(info, out->mutable_token());
  }
}

// The user a RefreshToken or RevokeToken names, for `app`: required for a
// user app (NOT_FOUND names it when it has no grant; admins may know),
// refused for another app.
absl::StatusOr<UserGrantSummary> AdminUser(const UserGrants* grants,
                                           const AppConfig& app,
                                           const std::string& user,
                                           bool required) {
  if (app.grant_type != GrantType::kAuthorizationCode) {
    if (!user.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "user: app ", app.name, " acts on its own behalf; leave user empty"));
    }
    return UserGrantSummary();
  }
  if (grants == nullptr) {
    return absl::FailedPreconditionError("no grant_store is configured");
  }
  if (user.empty() && required) {
    return absl::InvalidArgumentError(
        absl::StrCat("user: required for app ", app.name,
                     " (it acts on behalf of users; ListApps shows them)"));
  }
  return grants->Resolve(app.name, user);
}

}  // namespace

BrokerAdminService::BrokerAdminService(const ConfigStore& config,
                                       TokenCache& cache,
                                       BrokerControl& control, AuditSink& audit,
                                       const Clock& clock,
                                       const UserGrants* grants)
    : config_(config),
      cache_(cache),
      control_(control),
      audit_(audit),
      clock_(clock),
      grants_(grants) {}

grpc::ServerUnaryReactor* BrokerAdminService::ListApps(
    grpc::CallbackServerContext* context, const pb::ListAppsRequest* request,
    pb::ListAppsResponse* response) {
  RequestContext rpc(*context, config_.Get(), audit_, clock_,
                     "BrokerAdmin.ListApps");
  if (absl::Status s = AuthorizeAdminRequest(rpc, "ListApps"); !s.ok()) {
    return FinishUnary(context, s);
  }
  const Config& config = rpc.config();
  std::map<std::string, std::vector<TokenEntryInfo>> entries_by_app;
  for (TokenEntryInfo& info : cache_.Snapshot()) {
    entries_by_app[info.app].push_back(std::move(info));
  }
  for (const AppConfig& app : config.apps) {
    pb::AppInfo* out = response->add_apps();
    out->set_name(app.name);
    out->set_grant_type(app.grant_type == GrantType::kClientCredentials
                            ? pb::GRANT_TYPE_CLIENT_CREDENTIALS
                            : pb::GRANT_TYPE_AUTHORIZATION_CODE);
    out->set_control_plane(app.control_plane);
    out->set_base_url(app.base_url);
    // A client id is not a secret, but show it only when it is written in
    // the config; one read from a file or the environment stays there.
    out->set_client_id(app.client_id.value);
    for (const std::string& scope : app.scopes) out->add_scopes(scope);
    out->set_org_id(app.org_id);
    for (const std::string& env : app.environment_ids) {
      out->add_environment_ids(env);
    }
    const std::vector<TokenEntryInfo>& entries = entries_by_app[app.name];
    if (app.grant_type == GrantType::kAuthorizationCode) {
      if (grants_ == nullptr) continue;
      for (const UserGrantSummary& grant : grants_->List(app.name)) {
        FillUserGrant(grant, entries, out->add_users());
      }
      continue;
    }
    for (const TokenEntryInfo& info : entries) {
      FillTokenState(info, out->add_tokens());
    }
  }
  return FinishUnary(context, rpc.Use(absl::OkStatus()));
}

grpc::ServerUnaryReactor* BrokerAdminService::RefreshToken(
    grpc::CallbackServerContext* context,
    const pb::RefreshTokenRequest* request,
    pb::RefreshTokenResponse* response) {
  auto rpc = std::make_shared<RequestContext>(
      *context, config_.Get(), audit_, clock_, "BrokerAdmin.RefreshToken");
  if (absl::Status s = AuthorizeAdminRequest(*rpc, "RefreshToken"); !s.ok()) {
    return FinishUnary(context, s);
  }
  std::vector<std::string> scopes(request->scopes().begin(),
                                  request->scopes().end());
  rpc->record().app = request->app();
  rpc->record().scopes = scopes;
  absl::StatusOr<ResolvedTokenRequest> resolved =
      request->app().empty()
          ? absl::InvalidArgumentError("app: required")
          : ResolveTokenRequest(rpc->config(), request->app(), scopes);
  if (!resolved.ok()) return FinishUnary(context, rpc->Deny(resolved.status()));
  absl::StatusOr<UserGrantSummary> user =
      AdminUser(grants_, *resolved->app, request->user(), /*required=*/false);
  if (!user.ok()) return FinishUnary(context, rpc->Deny(user.status()));
  if (!user->user_id.empty()) {
    rpc->set_user(user->user_id, user->username);
    resolved->upstream.user = user->user_id;
  }
  // Audited before acting: fail-closed stops the refresh here.
  if (absl::Status s = rpc->AllowDecision("admin"); !s.ok()) {
    return FinishUnary(context, s);
  }

  return TokenWaitReactor::Start(
      [&](TokenResultCallback done) {
        return cache_.AwaitRefresh(resolved->upstream, std::move(done));
      },
      [rpc, response](absl::StatusOr<TokenPtr> result) -> absl::Status {
        if (result.ok()) {
          rpc->record().token_fingerprint = (*result)->fingerprint;
          *response->mutable_expires_at() = ToTimestamp((*result)->expires_at);
        }
        return rpc->Use(result.status());
      });
}

grpc::ServerUnaryReactor* BrokerAdminService::RevokeToken(
    grpc::CallbackServerContext* context, const pb::RevokeTokenRequest* request,
    pb::RevokeTokenResponse* response) {
  auto rpc = std::make_shared<RequestContext>(
      *context, config_.Get(), audit_, clock_, "BrokerAdmin.RevokeToken");
  if (absl::Status s = AuthorizeAdminRequest(*rpc, "RevokeToken"); !s.ok()) {
    return FinishUnary(context, s);
  }
  rpc->record().app = request->app();
  const AppConfig* app = rpc->config().FindApp(request->app());
  if (app == nullptr) {
    return FinishUnary(context, rpc->Deny(absl::NotFoundError(absl::StrCat(
                                    "unknown app '", request->app(),
                                    "'; ListApps shows the configured apps"))));
  }
  absl::StatusOr<UserGrantSummary> user =
      AdminUser(grants_, *app, request->user(), /*required=*/true);
  if (!user.ok()) return FinishUnary(context, rpc->Deny(user.status()));
  if (!user->user_id.empty()) rpc->set_user(user->user_id, user->username);
  if (absl::Status s = rpc->AllowDecision("admin"); !s.ok()) {
    return FinishUnary(context, s);
  }
  auto* reactor = context->DefaultReactor();
  auto finish = [rpc, reactor, response](absl::StatusOr<int> revoked) {
    rpc->record().event = "revoke";
    if (revoked.ok()) response->set_revoked(*revoked);
    absl::Status status = rpc->Use(revoked.status());
    reactor->Finish(ToGrpcStatus(status));
  };
  if (user->user_id.empty()) {
    control_.Revoke(request->app(), std::move(finish));
  } else {
    control_.RevokeUser(request->app(), user->user_id, std::move(finish));
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerAdminService::CreateConnectLink(
    grpc::CallbackServerContext* context,
    const pb::CreateConnectLinkRequest* request,
    pb::CreateConnectLinkResponse* response) {
  auto rpc = std::make_shared<RequestContext>(
      *context, config_.Get(), audit_, clock_, "BrokerAdmin.CreateConnectLink");
  if (absl::Status s = AuthorizeAdminRequest(*rpc, "CreateConnectLink");
      !s.ok()) {
    return FinishUnary(context, s);
  }
  rpc->record().app = request->app();
  const AppConfig* app = rpc->config().FindApp(request->app());
  if (app == nullptr) {
    return FinishUnary(context, rpc->Deny(absl::NotFoundError(absl::StrCat(
                                    "unknown app '", request->app(),
                                    "'; ListApps shows the configured apps"))));
  }
  if (app->grant_type != GrantType::kAuthorizationCode) {
    return FinishUnary(
        context, rpc->Deny(absl::FailedPreconditionError(absl::StrCat(
                     "app ", app->name,
                     " acts on its own behalf (client credentials): no user "
                     "connects it"))));
  }
  if (absl::Status s = rpc->AllowDecision("admin"); !s.ok()) {
    return FinishUnary(context, s);
  }
  rpc->record().event = "connect";
  // With shared state the link is minted in Redis: the answer comes on the
  // Redis client's thread, never blocking this one.
  auto* reactor = context->DefaultReactor();
  control_.CreateConnectLink(
      app->name, rpc->caller().name,
      [rpc, reactor,
       response](absl::StatusOr<BrokerControl::ConnectLink> link) {
        if (link.ok()) {
          response->set_url(link->url);
          *response->mutable_expires_at() = ToTimestamp(link->expires_at);
        }
        reactor->Finish(ToGrpcStatus(rpc->Use(link.status())));
      });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerAdminService::ReloadConfig(
    grpc::CallbackServerContext* context,
    const pb::ReloadConfigRequest* request,
    pb::ReloadConfigResponse* response) {
  RequestContext rpc(*context, config_.Get(), audit_, clock_,
                     "BrokerAdmin.ReloadConfig");
  if (absl::Status s = AuthorizeAdminRequest(rpc, "ReloadConfig"); !s.ok()) {
    return FinishUnary(context, s);
  }
  if (absl::Status s = rpc.AllowDecision("admin"); !s.ok()) {
    return FinishUnary(context, s);
  }
  rpc.record().event = "reload";
  absl::StatusOr<ReloadSummary> summary = control_.Reload();
  if (summary.ok()) {
    for (const std::string& app : summary->added) response->add_added(app);
    for (const std::string& app : summary->changed) response->add_changed(app);
    for (const std::string& app : summary->removed) response->add_removed(app);
  }
  return FinishUnary(context, rpc.Use(summary.status()));
}

}  // namespace tokenbroker
