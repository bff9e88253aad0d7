#include "service/grpc/watch_reactor.h"

#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/auth/policy.h"
#include "service/grpc/reactors.h"
#include "service/grpc/status.h"
#include "service/grpc/token_response.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

class WatchReactor final
    : public grpc::ServerWriteReactor<pb::GetTokenResponse> {
 public:
  // What the cache's listener and the registry share with the reactor.
  struct State final : ActiveRpcs::Stream {
    absl::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::unique_ptr<RequestContext> rpc ABSL_GUARDED_BY(mu);
    std::string app;  // Set before sharing; read-only after.
    std::vector<std::string> scopes;
    pb::GetTokenResponse response ABSL_GUARDED_BY(mu);
    TokenPtr last_sent ABSL_GUARDED_BY(mu);
    TokenPtr pending_token ABSL_GUARDED_BY(mu);
    absl::Status pending_status ABSL_GUARDED_BY(mu);
    bool pending_finish ABSL_GUARDED_BY(mu) = false;
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool finishing ABSL_GUARDED_BY(mu) = false;

    void OnToken(const absl::StatusOr<TokenPtr>& result)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finishing) return;
      if (!result.ok()) {
        pending_status = result.status();
        pending_finish = true;
      } else {
        if (*result == last_sent) return;
        pending_token = *result;
      }
      MaybeWriteLocked();
    }

    void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || writing || finishing) return;
      if (pending_token != nullptr) {
        response.Clear();
        FillTokenResponse(*pending_token, app, *rpc, &response);
        last_sent = std::move(pending_token);
        pending_token = nullptr;
        writing = true;
        reactor->StartWrite(&response);
        return;
      }
      if (pending_finish) FinishLocked(pending_status);
    }

    void FinishLocked(const absl::Status& status)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finishing) return;
      finishing = true;
      reactor->Finish(ToGrpcStatus(status));
    }

    bool Recheck(const std::shared_ptr<const Config>& config) override {
      absl::MutexLock lock(&mu);
      if (reactor == nullptr || finishing) return false;
      absl::Status allowed = rpc->Reauthenticate(config);
      if (allowed.ok()) {
        allowed =
            AuthorizeTokenRequest(rpc->caller(), *config, app, scopes).status();
      }
      if (allowed.ok()) allowed = rpc->RecheckUser(app);
      if (allowed.ok()) return false;
      FinishLocked(rpc->Deny(allowed));
      return true;
    }

    void End(const absl::Status& status) override {
      absl::MutexLock lock(&mu);
      if (reactor == nullptr || finishing) return;
      FinishLocked(rpc->Use(status));
    }
  };

  WatchReactor(TokenCache& cache, std::shared_ptr<State> state)
      : cache_(cache), state_(std::move(state)) {}

  void Begin(const TokenRequest& request,
             ActiveRpcs::Registration registration) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = this;
    }
    registration_ = std::move(registration);
    std::shared_ptr<State> state = state_;
    watch_id_ =
        cache_.Watch(request, [state](const absl::StatusOr<TokenPtr>& result) {
          absl::MutexLock lock(&state->mu);
          state->OnToken(result);
        });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->writing = false;
    if (!ok) {
      state_->FinishLocked(
          absl::UnavailableError("the stream broke while writing"));
      return;
    }
    state_->MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    state_->FinishLocked(absl::CancelledError("watch cancelled"));
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    // Outside the lock: both may wait for a listener or timer that takes it.
    cache_.Unwatch(watch_id_);
    registration_.Reset();
    delete this;
  }

 private:
  TokenCache& cache_;
  const std::shared_ptr<State> state_;
  // Written by Begin() before any callback can run, read by OnDone().
  uint64_t watch_id_ = 0;
  ActiveRpcs::Registration registration_;
};

}  // namespace

grpc::ServerWriteReactor<pb::GetTokenResponse>* StartWatchReactor(
    TokenCache& cache, ActiveRpcs& active, const TokenRequest& request,
    std::string app, std::unique_ptr<RequestContext> rpc) {
  auto state = std::make_shared<WatchReactor::State>();
  state->app = std::move(app);
  state->scopes = rpc->record().scopes;
  std::string caller = rpc->caller().name;
  absl::StatusOr<ActiveRpcs::Registration> registration =
      active.Register(ActiveRpcs::Kind::kWatch, caller, state);
  if (!registration.ok()) {
    return new FinishedWriteReactor<pb::GetTokenResponse>(
        rpc->Deny(registration.status()));
  }
  {
    absl::MutexLock lock(&state->mu);
    state->rpc = std::move(rpc);
  }
  auto* reactor = new WatchReactor(cache, state);
  reactor->Begin(request, *std::move(registration));
  return reactor;
}

}  // namespace tokenbroker
