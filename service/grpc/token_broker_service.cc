#include "service/grpc/token_broker_service.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "service/cache/token_request.h"
#include "service/auth/policy.h"
#include "service/grpc/request_context.h"
#include "service/grpc/status.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

constexpr int kMaxMinTtlSeconds = 24 * 3600;

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& field) {
  return std::vector<std::string>(field.begin(), field.end());
}

// A unary reactor finished exactly once by whichever comes first: the
// token, or the RPC's cancellation (including its deadline).
class GetTokenReactor final : public grpc::ServerUnaryReactor {
 public:
  GetTokenReactor(pb::GetTokenResponse* response,
                  std::unique_ptr<RequestContext> request)
      : response_(response), request_(std::move(request)) {}

  // Finishes with `result` unless the RPC was already finished.
  void Complete(const absl::StatusOr<TokenPtr>& result,
                const std::string& app) {
    if (finished_.exchange(true)) return;
    if (result.ok()) {
      request_->record().token_fingerprint =
          TokenFingerprint((*result)->access_token);
    }
    absl::Status status = request_->Use(result.status());
    if (!status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    FillTokenResponse(**result, app, response_);
    Finish(grpc::Status::OK);
  }

  void OnCancel() override {
    if (finished_.exchange(true)) return;
    absl::Status cancelled =
        absl::CancelledError("cancelled while waiting for a token from Anypoint");
    Finish(ToGrpcStatus(request_->Use(cancelled)));
  }

  void OnDone() override { delete this; }

 private:
  pb::GetTokenResponse* response_;
  std::unique_ptr<RequestContext> request_;
  std::atomic<bool> finished_{false};
};

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Authenticates, resolves and authorizes a token request (GetToken,
// WatchToken). Denials are audited.
absl::StatusOr<ResolvedTokenRequest> AuthorizeTokenRequest(
    RequestContext& request, const std::string& app,
    const google::protobuf::RepeatedPtrField<std::string>& scope_field) {
  if (absl::Status s = request.Authenticate(); !s.ok()) return s;
  std::vector<std::string> scopes = ToVector(scope_field);
  AuditRecord& record = request.record();
  record.app = app;
  record.scopes = scopes;
  const CallerConfig& caller = request.caller();
  absl::StatusOr<ResolvedTokenRequest> resolved = ResolveTokenRequest(
      request.config(), app, scopes, [&](const AppConfig& candidate) {
        return AuthorizeToken(caller, candidate, scopes).ok();
      });
  if (!resolved.ok()) return request.Deny(resolved.status());
  record.app = resolved->app->name;
  if (absl::Status s = AuthorizeToken(caller, *resolved->app, scopes);
      !s.ok()) {
    return request.Deny(s);
  }
  return resolved;
}

// Streams the tokens of one cache key. The cache's listener may fire from
// any thread, even while the RPC is being torn down; `State` outlives the
// reactor and tells the listener when to stop.
class WatchReactor final
    : public grpc::ServerWriteReactor<pb::GetTokenResponse> {
 public:
  WatchReactor(TokenCache& cache, TokenRequest request)
      : cache_(cache), state_(std::make_shared<State>()) {
    state_->reactor = this;
    state_->app = request.app;
    std::shared_ptr<State> state = state_;
    watch_id_ =
        cache_.Watch(request, [state](const absl::StatusOr<TokenPtr>& result) {
          absl::MutexLock lock(&state->mu);
          if (state->reactor != nullptr) state->reactor->OnToken(result);
        });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                "the stream broke while writing"));
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    cache_.Unwatch(watch_id_);
    delete this;
  }

 private:
  struct State {
    absl::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::string app;
  };

  // Called by the cache's listener with the State's lock held (the analysis
  // cannot see that `state->reactor->state_` is `state`).
  void OnToken(const absl::StatusOr<TokenPtr>& result) {
    state_->mu.AssertHeld();
    if (finishing_) return;
    if (!result.ok()) {
      pending_status_ = ToGrpcStatus(result.status());
      pending_finish_ = true;
    } else {
      if (*result == last_sent_) return;
      pending_token_ = *result;
    }
    MaybeWriteLocked();
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (writing_ || finishing_) return;
    if (pending_token_ != nullptr) {
      response_.Clear();
      FillTokenResponse(*pending_token_, state_->app, &response_);
      last_sent_ = std::move(pending_token_);
      pending_token_ = nullptr;
      writing_ = true;
      StartWrite(&response_);
      return;
    }
    if (pending_finish_) FinishLocked(pending_status_);
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finishing_) return;
    finishing_ = true;
    Finish(status);
  }

  TokenCache& cache_;
  std::shared_ptr<State> state_;
  uint64_t watch_id_ = 0;
  // Guarded by state_->mu (not annotated: the lock lives in State).
  pb::GetTokenResponse response_;
  TokenPtr last_sent_;
  TokenPtr pending_token_;
  grpc::Status pending_status_;
  bool pending_finish_ = false;
  bool writing_ = false;
  bool finishing_ = false;
};

}  // namespace

void FillTokenResponse(const Token& token, const std::string& app,
                       pb::GetTokenResponse* response) {
  response->set_access_token(token.access_token);
  response->set_token_type("Bearer");
  *response->mutable_expires_at() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(token.expires_at));
  for (const std::string& scope : token.scopes) response->add_scopes(scope);
  response->set_app(app);
}

TokenBrokerService::TokenBrokerService(const ConfigStore& config,
                                       TokenCache& cache, AuditSink& audit,
                                       const Clock& clock)
    : config_(config), cache_(cache), audit_(audit), clock_(clock) {}

grpc::ServerUnaryReactor* TokenBrokerService::GetToken(
    grpc::CallbackServerContext* context, const pb::GetTokenRequest* request,
    pb::GetTokenResponse* response) {
  auto rpc = std::make_unique<RequestContext>(
      *context, config_.Get(), audit_, clock_, "TokenBroker.GetToken");
  if (request->min_ttl_seconds() < 0 ||
      request->min_ttl_seconds() > kMaxMinTtlSeconds) {
    return FinishUnary(
        context, rpc->Deny(absl::InvalidArgumentError(absl::StrCat(
                     "min_ttl_seconds: must be between 0 and ",
                     kMaxMinTtlSeconds))));
  }
  absl::StatusOr<ResolvedTokenRequest> resolved =
      AuthorizeTokenRequest(*rpc, request->app(), request->scopes());
  if (!resolved.ok()) return FinishUnary(context, resolved.status());
  absl::Duration min_ttl = request->min_ttl_seconds() > 0
                               ? absl::Seconds(request->min_ttl_seconds())
                               : rpc->config().cache.min_ttl;
  const std::string& app = resolved->app->name;

  // Hit: answer inline on this thread.
  if (TokenPtr token = cache_.Lookup(CacheKey(resolved->upstream), min_ttl)) {
    rpc->record().token_fingerprint = TokenFingerprint(token->access_token);
    absl::Status status = rpc->Use(absl::OkStatus());
    if (status.ok()) FillTokenResponse(*token, app, response);
    return FinishUnary(context, status);
  }

  // Miss: park the RPC on the key's single-flight fetch.
  TokenRequest upstream = resolved->upstream;
  auto* reactor = new GetTokenReactor(response, std::move(rpc));
  cache_.Get(upstream, min_ttl,
             [reactor, app](absl::StatusOr<TokenPtr> result) {
               reactor->Complete(result, app);
             });
  return reactor;
}

grpc::ServerWriteReactor<pb::GetTokenResponse>* TokenBrokerService::WatchToken(
    grpc::CallbackServerContext* context,
    const pb::WatchTokenRequest* request) {
  RequestContext rpc(*context, config_.Get(), audit_, clock_,
                     "TokenBroker.WatchToken");
  absl::StatusOr<ResolvedTokenRequest> resolved =
      request->app().empty()
          ? rpc.Deny(absl::InvalidArgumentError("app: required for WatchToken"))
          : AuthorizeTokenRequest(rpc, request->app(), request->scopes());
  if (resolved.ok()) {
    // A watch is one decision; each token it streams is not audited again.
    if (absl::Status s = rpc.AllowDecision("watch started"); !s.ok()) {
      resolved = s;
    }
  }
  if (!resolved.ok()) {
    class ErrorReactor final
        : public grpc::ServerWriteReactor<pb::GetTokenResponse> {
     public:
      explicit ErrorReactor(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    return new ErrorReactor(ToGrpcStatus(resolved.status()));
  }
  return new WatchReactor(cache_, resolved->upstream);
}

grpc::ServerUnaryReactor* TokenBrokerService::Call(
    grpc::CallbackServerContext* context, const pb::CallRequest* request,
    pb::CallResponse* response) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED,
      "Call is not implemented yet; use GetToken and send the request "
      "yourself"));
  return reactor;
}

}  // namespace tokenbroker
