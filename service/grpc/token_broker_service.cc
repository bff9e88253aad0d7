#include "service/grpc/token_broker_service.h"

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/timestamp.pb.h"
#include "service/auth/policy.h"
#include "service/cache/token_request.h"
#include "service/grpc/request_context.h"
#include "service/grpc/status.h"
#include "service/proxy/call_request.h"

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
      request_->record().token_fingerprint = (*result)->fingerprint;
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
    absl::Status cancelled = absl::CancelledError(
        "cancelled while waiting for a token from Anypoint");
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

// Forwards one Call; finished exactly once by the upstream answer or the
// RPC's cancellation (which cancels the upstream transfer).
class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  CallReactor(pb::CallResponse* response,
              std::unique_ptr<RequestContext> request)
      : response_(response), request_(std::move(request)) {}

  void Start(Proxy& proxy, ProxyRequest proxied) {
    // The answer may come inline and finish (and delete) this reactor before
    // Start() returns: afterwards touch only the shared state.
    std::shared_ptr<Shared> shared = shared_;
    std::shared_ptr<ProxyCall> call = proxy.Start(
        std::move(proxied), [this](absl::StatusOr<ProxyResult> result) {
          Complete(std::move(result));
        });
    absl::MutexLock lock(&shared->mu);
    if (!shared->completed) shared->call = std::move(call);
  }

  void OnCancel() override {
    std::shared_ptr<ProxyCall> call;
    {
      absl::MutexLock lock(&shared_->mu);
      call = shared_->call;
    }
    // Ends the upstream transfer; Complete() then finishes with CANCELLED.
    if (call != nullptr) call->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  void Complete(absl::StatusOr<ProxyResult> result) {
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->completed = true;
      shared_->call = nullptr;
    }
    if (result.ok()) {
      request_->record().upstream_status = result->response.status;
      request_->record().token_fingerprint = result->token_fingerprint;
    }
    absl::Status status = request_->Use(result.status());
    if (status.ok()) {
      response_->set_status(result->response.status);
      for (auto& [name, value] : result->response.headers) {
        pb::Header* header = response_->add_headers();
        header->set_name(name);
        header->set_value(std::move(value));
      }
      response_->set_body(std::move(result->response.body));
    }
    Finish(ToGrpcStatus(status));
  }

  struct Shared {
    absl::Mutex mu;
    std::shared_ptr<ProxyCall> call ABSL_GUARDED_BY(mu);
    bool completed ABSL_GUARDED_BY(mu) = false;
  };

  pb::CallResponse* response_;
  std::unique_ptr<RequestContext> request_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

// Streams one Call's answer. Pieces of the body are queued and written one
// message at a time; above a high-water mark the upstream transfer is paused
// until the caller has taken enough, so memory stays bounded whatever the
// size of the answer.
class CallStreamReactor final
    : public grpc::ServerWriteReactor<pb::CallStreamResponse> {
 public:
  static CallStreamReactor* Start(Proxy& proxy, ProxyRequest proxied,
                                  std::unique_ptr<RequestContext> request) {
    auto* reactor = new CallStreamReactor(std::move(request));
    std::shared_ptr<State> state = reactor->state_;
    proxied.stream = std::make_shared<Sink>(state);
    std::shared_ptr<ProxyCall> call = proxy.Start(
        std::move(proxied), [state](absl::StatusOr<ProxyResult> result) {
          absl::MutexLock lock(&state->mu);
          if (state->reactor != nullptr) {
            state->reactor->OnProxyDone(std::move(result));
          }
        });
    absl::MutexLock lock(&state->mu);
    state->call = std::move(call);
    return reactor;
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<ProxyCall> resume;
    {
      absl::MutexLock lock(&state_->mu);
      state_->writing = false;
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "the stream to the caller broke"));
        resume = nullptr;
      } else {
        if (state_->paused && state_->queued_bytes < kLowWater) {
          state_->paused = false;
          resume = state_->call;
        }
        WriteNextLocked();
      }
    }
    if (resume != nullptr) resume->Resume();
  }

  void OnCancel() override {
    std::shared_ptr<ProxyCall> call;
    {
      absl::MutexLock lock(&state_->mu);
      call = state_->call;
    }
    if (call != nullptr) call->Cancel();  // Ends in OnProxyDone(CANCELLED).
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      state_->call = nullptr;
    }
    delete this;
  }

 private:
  static constexpr size_t kHighWater = 1 << 20;
  static constexpr size_t kLowWater = 256 << 10;
  static constexpr size_t kMaxMessage = 64 << 10;

  struct State {
    absl::Mutex mu;
    CallStreamReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::shared_ptr<ProxyCall> call ABSL_GUARDED_BY(mu);
    std::deque<pb::CallStreamResponse> queue ABSL_GUARDED_BY(mu);
    size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool paused ABSL_GUARDED_BY(mu) = false;
    bool finishing ABSL_GUARDED_BY(mu) = false;
    bool done ABSL_GUARDED_BY(mu) = false;  // The proxy call ended.
    grpc::Status final_status ABSL_GUARDED_BY(mu);
    pb::CallStreamResponse in_flight ABSL_GUARDED_BY(mu);
  };

  // The proxy's view of the stream; outlives the reactor safely.
  class Sink final : public ProxyBodyStream {
   public:
    explicit Sink(std::shared_ptr<State> state) : state_(std::move(state)) {}

    void OnHead(int status, const HttpHeaders& headers) override {
      absl::MutexLock lock(&state_->mu);
      pb::CallStreamResponse head;
      head.set_status(status);
      for (const auto& [name, value] : headers) {
        pb::Header* header = head.add_headers();
        header->set_name(name);
        header->set_value(value);
      }
      state_->queue.push_back(std::move(head));
      if (state_->reactor != nullptr) state_->reactor->WriteNextLocked();
    }

    bool OnData(absl::string_view data) override {
      absl::MutexLock lock(&state_->mu);
      std::deque<pb::CallStreamResponse>& queue = state_->queue;
      state_->queued_bytes += data.size();
      // Fill the last queued message up to kMaxMessage, then start new ones.
      while (!data.empty()) {
        if (queue.empty() || queue.back().body_chunk().size() >= kMaxMessage) {
          queue.emplace_back();
        }
        std::string* chunk = queue.back().mutable_body_chunk();
        size_t n = std::min(data.size(), kMaxMessage - chunk->size());
        chunk->append(data.data(), n);
        data.remove_prefix(n);
      }
      if (state_->reactor != nullptr) state_->reactor->WriteNextLocked();
      if (state_->queued_bytes >= kHighWater) {
        state_->paused = true;
        return false;
      }
      return true;
    }

   private:
    std::shared_ptr<State> state_;
  };

  explicit CallStreamReactor(std::unique_ptr<RequestContext> request)
      : request_(std::move(request)), state_(std::make_shared<State>()) {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = this;
  }

  void OnProxyDone(absl::StatusOr<ProxyResult> result) {
    state_->mu.AssertHeld();
    if (result.ok()) {
      request_->record().upstream_status = result->response.status;
      request_->record().token_fingerprint = result->token_fingerprint;
    }
    state_->done = true;
    state_->final_status = ToGrpcStatus(request_->Use(result.status()));
    if (!result.ok()) {
      // A failed attempt's partial body is not worth sending.
      state_->queue.clear();
      state_->queued_bytes = 0;
    }
    WriteNextLocked();
  }

  void WriteNextLocked() {
    state_->mu.AssertHeld();
    if (state_->writing || state_->finishing) return;
    if (!state_->queue.empty()) {
      state_->in_flight = std::move(state_->queue.front());
      state_->queue.pop_front();
      state_->queued_bytes -= state_->in_flight.body_chunk().size();
      state_->writing = true;
      StartWrite(&state_->in_flight);
      return;
    }
    if (state_->done) FinishLocked(state_->final_status);
  }

  void FinishLocked(const grpc::Status& status) {
    state_->mu.AssertHeld();
    if (state_->finishing) return;
    state_->finishing = true;
    Finish(status);
  }

  std::unique_ptr<RequestContext> request_;
  std::shared_ptr<State> state_;
};

}  // namespace

void FillTokenResponse(const Token& token, const std::string& app,
                       pb::GetTokenResponse* response) {
  response->set_access_token(token.access_token);
  response->set_token_type("Bearer");
  // Set in place (TimeUtil would build a Timestamp and copy it): whole
  // seconds and non-negative nanoseconds.
  constexpr int64_t kNanosPerSecond = 1000000000;
  int64_t unix_nanos = absl::ToUnixNanos(token.expires_at);
  int64_t seconds = unix_nanos / kNanosPerSecond;
  int64_t nanos = unix_nanos % kNanosPerSecond;
  if (nanos < 0) {
    --seconds;
    nanos += kNanosPerSecond;
  }
  google::protobuf::Timestamp* expires_at = response->mutable_expires_at();
  expires_at->set_seconds(seconds);
  expires_at->set_nanos(static_cast<int32_t>(nanos));
  for (const std::string& scope : token.scopes) response->add_scopes(scope);
  response->set_app(app);
}

TokenBrokerService::TokenBrokerService(const ConfigStore& config,
                                       TokenCache& cache, Proxy& proxy,
                                       AuditSink& audit, const Clock& clock)
    : config_(config),
      cache_(cache),
      proxy_(proxy),
      audit_(audit),
      clock_(clock) {}

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
  absl::StatusOr<ResolvedTokenRequest> resolved =
      AuthorizeTokenRequest(*rpc, request->app(), request->scopes());
  if (!resolved.ok()) return FinishUnary(context, resolved.status());
  absl::Duration min_ttl = request->min_ttl_seconds() > 0
                               ? absl::Seconds(request->min_ttl_seconds())
                               : rpc->config().cache.min_ttl;
  const std::string& app = resolved->app->name;

  // Hit: answer inline on this thread.
  if (TokenPtr token = cache_.Lookup(CacheKey(resolved->upstream), min_ttl)) {
    rpc->record().token_fingerprint = token->fingerprint;
    absl::Status status = rpc->Use(absl::OkStatus());
    if (status.ok()) FillTokenResponse(*token, app, response);
    return FinishUnary(context, status);
  }

  // Miss: audit the decision before it can cause upstream traffic (so that
  // fail-closed stops it here), then park the RPC on the key's single-flight
  // fetch.
  if (absl::Status s = rpc->AllowDecision("cache miss"); !s.ok()) {
    return FinishUnary(context, s);
  }
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

absl::StatusOr<ProxyRequest> TokenBrokerService::PrepareCall(
    RequestContext& rpc, const grpc::CallbackServerContext& context,
    const pb::CallRequest& request) {
  if (absl::Status s = rpc.Authenticate(); !s.ok()) return s;
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
  absl::StatusOr<ResolvedTokenRequest> resolved =
      request.app().empty()
          ? absl::InvalidArgumentError("app: required for Call")
          : ResolveTokenRequest(config, request.app(), scopes);
  if (!resolved.ok()) return rpc.Deny(resolved.status());
  if (absl::Status s =
          ValidateCallRequest(request.method(), request.path(), headers,
                              request.body().size(), limits);
      !s.ok()) {
    return rpc.Deny(s);
  }
  if (absl::Status s = AuthorizeCall(rpc.caller(), *resolved->app, scopes,
                                     request.method(), request.path());
      !s.ok()) {
    return rpc.Deny(s);
  }
  // Audited before any upstream traffic; fail-closed stops it here.
  if (absl::Status s = rpc.AllowDecision("route granted"); !s.ok()) return s;

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
  auto* reactor = new CallReactor(response, std::move(rpc));
  reactor->Start(proxy_, *std::move(proxied));
  return reactor;
}

grpc::ServerWriteReactor<pb::CallStreamResponse>*
TokenBrokerService::CallStream(grpc::CallbackServerContext* context,
                               const pb::CallRequest* request) {
  auto rpc = std::make_unique<RequestContext>(*context, config_.Get(), audit_,
                                              clock_, "TokenBroker.CallStream");
  absl::StatusOr<ProxyRequest> proxied = PrepareCall(*rpc, *context, *request);
  if (!proxied.ok()) {
    class ErrorReactor final
        : public grpc::ServerWriteReactor<pb::CallStreamResponse> {
     public:
      explicit ErrorReactor(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    return new ErrorReactor(ToGrpcStatus(proxied.status()));
  }
  return CallStreamReactor::Start(proxy_, *std::move(proxied), std::move(rpc));
}

}  // namespace tokenbroker
