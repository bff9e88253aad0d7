#ifndef TOKENBROKER_SERVICE_GRPC_TOKEN_WAIT_REACTOR_H_
#define TOKENBROKER_SERVICE_GRPC_TOKEN_WAIT_REACTOR_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_callback.h"
#include "service/cache/token_wait.h"

namespace tokenbroker {

// A unary RPC parked on the token cache (a GetToken miss, an admin
// RefreshToken): finished exactly once, by the token or by the RPC's
// cancellation (its deadline included), whichever comes first. A cancelled
// RPC withdraws its waiter, so a late fetch never reaches it. Follows the
// pattern in reactors.h.
class TokenWaitReactor final : public grpc::ServerUnaryReactor {
 public:
  // Turns the result (or CANCELLED) into the status to finish with, filling
  // the response; runs once, under the reactor's lock.
  using Completion = absl::AnyInvocable<absl::Status(absl::StatusOr<TokenPtr>)>;
  // Starts the wait with the callback it is given; returns its handle.
  using Starter = absl::FunctionRef<TokenWait(TokenResultCallback)>;

  // Creates the reactor and starts the wait. The result may come inline.
  static TokenWaitReactor* Start(Starter start, Completion complete);

  void OnCancel() override;
  void OnDone() override;

 private:
  struct State {
    absl::Mutex mu;
    TokenWaitReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    bool finished ABSL_GUARDED_BY(mu) = false;
    Completion complete ABSL_GUARDED_BY(mu);
    TokenWait wait ABSL_GUARDED_BY(mu);

    // Finishes the RPC with `result` unless it is finished or gone.
    void FinishLocked(absl::StatusOr<TokenPtr> result)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  };

  TokenWaitReactor() = default;

  const std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_TOKEN_WAIT_REACTOR_H_
