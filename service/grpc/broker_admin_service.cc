#include "service/grpc/broker_admin_service.h"

#include <map>
#include <string>
#include <vector>

#include "google/protobuf/util/time_util.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(t));
}

grpc::ServerUnaryReactor* Unimplemented(grpc::CallbackServerContext* context,
                                        const char* rpc) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED,
      std::string(rpc) +
          " is not implemented yet; it arrives with caller authorization "
          "(admin role)"));
  return reactor;
}

}  // namespace

BrokerAdminService::BrokerAdminService(const ConfigStore& config,
                                       TokenCache& cache)
    : config_(config), cache_(cache) {}

grpc::ServerUnaryReactor* BrokerAdminService::ListApps(
    grpc::CallbackServerContext* context, const pb::ListAppsRequest* request,
    pb::ListAppsResponse* response) {
  std::shared_ptr<const Config> config = config_.Get();
  std::map<std::string, std::vector<TokenEntryInfo>> entries_by_app;
  for (TokenEntryInfo& info : cache_.Snapshot()) {
    entries_by_app[info.app].push_back(std::move(info));
  }
  for (const AppConfig& app : config->apps) {
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
    for (const TokenEntryInfo& info : entries_by_app[app.name]) {
      pb::TokenState* state = out->add_tokens();
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
  }
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* BrokerAdminService::RefreshToken(
    grpc::CallbackServerContext* context,
    const pb::RefreshTokenRequest* request,
    pb::RefreshTokenResponse* response) {
  return Unimplemented(context, "RefreshToken");
}

grpc::ServerUnaryReactor* BrokerAdminService::RevokeToken(
    grpc::CallbackServerContext* context, const pb::RevokeTokenRequest* request,
    pb::RevokeTokenResponse* response) {
  return Unimplemented(context, "RevokeToken");
}

grpc::ServerUnaryReactor* BrokerAdminService::ReloadConfig(
    grpc::CallbackServerContext* context,
    const pb::ReloadConfigRequest* request,
    pb::ReloadConfigResponse* response) {
  return Unimplemented(context, "ReloadConfig");
}

}  // namespace tokenbroker
