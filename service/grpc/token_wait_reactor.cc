#include "service/grpc/token_wait_reactor.h"

#include <utility>

#include "service/grpc/status.h"

namespace tokenbroker {

TokenWaitReactor* TokenWaitReactor::Start(Starter start, Completion complete) {
  auto* reactor = new TokenWaitReactor();
  std::shared_ptr<State> state = reactor->state_;
  {
    absl::MutexLock lock(&state->mu);
    state->reactor = reactor;
    state->complete = std::move(complete);
  }
  // Not under the lock: a hit answers inline.
  TokenWait wait = start([state](absl::StatusOr<TokenPtr> result) {
    absl::MutexLock lock(&state->mu);
    state->FinishLocked(std::move(result));
  });
  TokenWait answered;  // Dropped outside the lock.
  absl::MutexLock lock(&state->mu);
  if (state->finished) {
    answered = std::move(wait);
  } else {
    state->wait = std::move(wait);
  }
  return reactor;
}

void TokenWaitReactor::State::FinishLocked(absl::StatusOr<TokenPtr> result) {
  if (reactor == nullptr || finished) return;
  finished = true;
  absl::Status status = complete(std::move(result));
  reactor->Finish(ToGrpcStatus(status));
}

void TokenWaitReactor::OnCancel() {
  TokenWait wait;
  {
    absl::MutexLock lock(&state_->mu);
    wait = std::move(state_->wait);
    state_->FinishLocked(absl::CancelledError(
        "cancelled while waiting for a token from Anypoint"));
  }
  wait.Cancel();
}

void TokenWaitReactor::OnDone() {
  TokenWait wait;
  {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = nullptr;
    wait = std::move(state_->wait);
    state_->complete = nullptr;
  }
  wait.Cancel();  // Outside the lock: it may wait for a running callback.
  delete this;
}

}  // namespace tokenbroker
