#include "service/grpc/token_broker_service.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/auth/policy.h"
#include "service/cache/token_request.h"
#include "service/common/status_macros.h"
#include "service/grpc/call_reactors.h"
#include "service/grpc/reactors.h"
#include "service/grpc/request_context.h"
#include "service/grpc/request_user.h"
#include "service/grpc/status.h"
#include "service/grpc/token_response.h"
#include "service/grpc/token_wait_reactor.h"
#include "service/grpc/watch_reactor.h"
#include "service/proxy/call_request.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

constexpr int kMaxMinTtlSeconds = 24 * 3600;

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& field) {
  return std::vector<std::string>(field.begin(), field.end());
}

// Authenticates and authorizes a token request (GetToken, WatchToken).
// Denials are audited.
absl::StatusOr<ResolvedTokenRequest> AuthorizeTokenRpc(
    RequestContext& request, const UserGrants* grants, const std::string& app,
    const google::protobuf::RepeatedPtrField<std::string>& scope_field,
    const std::string& user) {
  TB_RETURN_IF_ERROR(request.Authenticate());
  std::vector<std::string> scopes = ToVector(scope_field);
  AuditRecord& record = request.record();
  record.app = app;
  record.scopes = scopes;
  absl::StatusOr<ResolvedTokenRequest> resolved = AuthorizeTokenRequest(
      request.caller(), request.config(), app, std::move(scopes));
  if (!resolved.ok()) return request.Deny(resolved.status());
  record.app = resolved->app->name;
  TB_RETURN_IF_ERROR(ResolveRequestUser(request, grants, user, *resolved));
  return resolved;
}

}  // namespace

TokenBrokerService::TokenBrokerService(const ConfigStore& config,
                                       TokenCache& cache, Proxy& proxy,
                                       ActiveRpcs& active, AuditSink& audit,
                                       const Clock& clock,
                                       const UserGrants* grants)
    : config_(config),
      cache_(cache),
      proxy_(proxy),
      active_(active),
      audit_(audit),
      clock_(clock),
      grants_(grants) {}

grpc::ServerUnaryReactor* TokenBrokerService::GetToken(
    grpc::CallbackServerContext* context, const pb::GetTokenRequest* request,
    pb::GetTokenResponse* response) {
  auto rpc = std::make_unique<RequestContext>(*context, config_.Get(), audit_,
                                              clock_, "TokenBroker.GetToken");
  if (request->min_ttl_seconds() < 0 ||
      request->min_ttl_seconds() > kMaxMinTtlSeconds) {
    return FinishUnary(
        context,
        rpc->Deny(absl::InvalidArgumentError(absl::StrCat(
            "min_ttl_seconds: must be between 0 and ", kMaxMinTtlSeconds))));
  }
  absl::StatusOr<ResolvedTokenRequest> resolved = AuthorizeTokenRpc(
      *rpc, grants_, request->app(), request->scopes(), request->user());
  if (!resolved.ok()) return FinishUnary(context, resolved.status());
  absl::Duration min_ttl = request->min_ttl_seconds() > 0
                               ? absl::Seconds(request->min_ttl_seconds())
                               : rpc->config().cache.min_ttl;
  const std::string& app = resolved->app->name;

  // Hit: answer inline on this thread.
  if (TokenPtr token = cache_.Lookup(CacheKey(resolved->upstream), min_ttl)) {
    rpc->record().token_fingerprint = token->fingerprint;
    absl::Status status = rpc->Use(absl::OkStatus());
    if (status.ok()) FillTokenResponse(*token, app, *rpc, response);
    return FinishUnary(context, status);
  }

  // Miss: audit the decision before it can cause upstream traffic (so that
  // fail-closed stops it here), then park the RPC on the key's single-flight
  // fetch.
  if (absl::Status s = rpc->AllowDecision("cache miss"); !s.ok()) {
    return FinishUnary(context, s);
  }
  absl::Time deadline = absl::FromChrono(context->deadline());
  return TokenWaitReactor::Start(
      [&](TokenResultCallback done) {
        return cache_.Await(resolved->upstream, min_ttl, deadline,
                            std::move(done));
      },
      [rpc = std::move(rpc), app,
       response](absl::StatusOr<TokenPtr> result) -> absl::Status {
        if (result.ok()) {
          rpc->record().token_fingerprint = (*result)->fingerprint;
        }
        absl::Status status = rpc->Use(result.status());
        if (status.ok()) FillTokenResponse(**result, app, *rpc, response);
        return status;
      });
}

grpc::ServerWriteReactor<pb::GetTokenResponse>* TokenBrokerService::WatchToken(
    grpc::CallbackServerContext* context,
    const pb::WatchTokenRequest* request) {
  auto rpc = std::make_unique<RequestContext>(*context, config_.Get(), audit_,
                                              clock_, "TokenBroker.WatchToken");
  absl::StatusOr<ResolvedTokenRequest> resolved =
      request->app().empty()
          ? rpc->Deny(
                absl::InvalidArgumentError("app: required for WatchToken"))
          : AuthorizeTokenRpc(*rpc, grants_, request->app(), request->scopes(),
                              request->user());
  if (resolved.ok()) {
    // A watch is one decision; each token it streams is not audited again.
    if (absl::Status s = rpc->AllowDecision("watch started"); !s.ok()) {
      resolved = s;
    }
  }
  if (!resolved.ok()) {
    return new FinishedWriteReactor<pb::GetTokenResponse>(resolved.status());
  }
  std::string app = resolved->app->name;
  return StartWatchReactor(cache_, active_, resolved->upstream, std::move(app),
                           std::move(rpc));
}

absl::StatusOr<ProxyRequest> TokenBrokerService::PrepareCall(
    RequestContext& rpc, const grpc::CallbackServerContext& context,
    const pb::CallRequest& request) {
  TB_RETURN_IF_ERROR(rpc.Authenticate());
  const Config& config = rpc.config();
  std::vector<std::string> scopes = ToVector(request.scopes());
  AuditRecord& record = rpc.record();
  record.app = request.app();
  record.scopes = scopes;
  record.http_method = request.method();
  record.path = request.path();

  HttpHeaders headers;
  headers.reserve(request.headers_size());
  for (const pb::Header& header : request.headers()) {
    headers.emplace_back(header.name(), header.value());
  }
  CallLimits limits;
  limits.max_request_body_bytes = config.upstream.max_request_bytes;
  limits.max_response_body_bytes = config.upstream.max_response_bytes;
  if (absl::Status s =
          ValidateCallRequest(request.method(), request.path(), headers,
                              request.body().size(), limits);
      !s.ok()) {
    return rpc.Deny(s);
  }
  absl::StatusOr<ResolvedTokenRequest> resolved =
      AuthorizeCallRequest(rpc.caller(), config, request.app(), scopes,
                           request.method(), request.path());
  if (!resolved.ok()) return rpc.Deny(resolved.status());
  TB_RETURN_IF_ERROR(
      ResolveRequestUser(rpc, grants_, request.user(), *resolved));
  // Audited before any upstream traffic; fail-closed stops it here.
  TB_RETURN_IF_ERROR(rpc.AllowDecision("route granted"));

  ProxyRequest proxied;
  proxied.token = resolved->upstream;
  proxied.base_url = resolved->app->base_url;
  proxied.method = request.method();
  proxied.path = request.path();
  proxied.headers = std::move(headers);
  proxied.body = request.body();
  absl::Time deadline = absl::FromChrono(context.deadline());
  proxied.deadline =
      std::min(deadline, clock_.Now() + config.upstream.request_timeout);
  return proxied;
}

grpc::ServerUnaryReactor* TokenBrokerService::Call(
    grpc::CallbackServerContext* context, const pb::CallRequest* request,
    pb::CallResponse* response) {
  auto rpc = std::make_unique<RequestContext>(*context, config_.Get(), audit_,
                                              clock_, "TokenBroker.Call");
  absl::StatusOr<ProxyRequest> proxied = PrepareCall(*rpc, *context, *request);
  if (!proxied.ok()) return FinishUnary(context, proxied.status());
  return StartCallReactor(context, proxy_, active_, *std::move(proxied),
                          std::move(rpc), response);
}

grpc::ServerWriteReactor<pb::CallStreamResponse>*
TokenBrokerService::CallStream(grpc::CallbackServerContext* context,
                               const pb::CallRequest* request) {
  auto rpc = std::make_unique<RequestContext>(*context, config_.Get(), audit_,
                                              clock_, "TokenBroker.CallStream");
  absl::StatusOr<ProxyRequest> proxied = PrepareCall(*rpc, *context, *request);
  if (!proxied.ok()) {
    return new FinishedWriteReactor<pb::CallStreamResponse>(proxied.status());
  }
  return StartCallStreamReactor(proxy_, active_, *std::move(proxied),
                                std::move(rpc));
}

}  // namespace tokenbroker
