#ifndef TOKENBROKER_SERVICE_GRPC_REACTORS_H_
#define TOKENBROKER_SERVICE_GRPC_REACTORS_H_

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "service/grpc/status.h"

// The reactor pattern of this module. Every reactor that hands a callback to
// another component (cache, proxy, registry) keeps what that callback may
// touch in a `State` shared with it: a mutex, a back-pointer to the reactor
// and the fields the callback reads or writes, all ABSL_GUARDED_BY(mu).
// Callbacks reach the reactor only through the back-pointer, under `mu`;
// OnDone() clears it under `mu` before deleting the reactor, then cancels
// what the reactor still waits for (outside `mu`: a cancel may wait for a
// callback that takes `mu`). Finish() is called exactly once, under `mu`.

namespace tokenbroker {

// Finishes a unary RPC at once with `status`.
inline grpc::ServerUnaryReactor* FinishUnary(
    grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A server-streaming reactor that finishes at once with an error.
template <typename Response>
class FinishedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriteReactor(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_REACTORS_H_
