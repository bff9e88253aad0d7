// What every RPC to the broker does around the generated stub, for the
// client library and tokenbrokerctl alike: the context (deadline, bearer
// key), the conversion of gRPC's status to absl::Status with the notes a
// reader needs, one unary attempt, and the retry and backoff policies made
// from ClientRetryOptions.
//
// Internal to the client library (not installed).
#ifndef TOKENBROKER_CLIENT_LIB_BROKER_RPC_H_
#define TOKENBROKER_CLIENT_LIB_BROKER_RPC_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/token_broker.pb.h"
#include "client/lib/channel.h"
#include "client/lib/client.h"
#include "client/lib/retry_loop.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "service/common/backoff_policy.h"

namespace tokenbroker::client_internal {

// An RPC as FromGrpcStatus names it in its notes.
struct RpcDescription {
  absl::string_view rpc_name;  // "TokenBroker.GetToken".
  absl::string_view target;    // The broker's address.
  // The RPC's deadline from its start, retries included.
  absl::Duration timeout = absl::InfiniteDuration();
  // Who calls, in "is it older than this <caller>?".
  absl::string_view caller = "client";
  // Appended inside the DEADLINE_EXCEEDED note (for example how to raise it).
  absl::string_view deadline_hint;
};

// The broker's status as absl::Status (absl and gRPC codes share their
// values). gRPC's own messages for these cases are terse ("", "Deadline
// Exceeded"), so notes are added: the broker's address to UNAVAILABLE, the
// timeout to DEADLINE_EXCEEDED, an explanation to an empty UNIMPLEMENTED.
// Messages never carry a token or a secret.
absl::Status FromGrpcStatus(const grpc::Status& status,
                            const RpcDescription& rpc);

// Sets `deadline` on `context` (none when absl::InfiniteFuture()) and adds
// the connection's bearer key, if any.
void PrepareContext(const ClientConnection& connection, absl::Time deadline,
                    grpc::ClientContext* context);

// One attempt of a unary RPC: `rpc(&context, &response)` with a fresh,
// prepared context; returns grpc::Status.
template <typename Response, typename Rpc>
absl::StatusOr<Response> UnaryAttempt(const ClientConnection& connection,
                                      absl::Time deadline,
                                      const RpcDescription& description,
                                      Rpc& rpc) {
  grpc::ClientContext context;
  PrepareContext(connection, deadline, &context);
  Response response;
  grpc::Status status = rpc(&context, &response);
  if (!status.ok()) return FromGrpcStatus(status, description);
  return response;
}

// Whether `token`, the broker's answer to a GetToken request that named
// `user`, is that user's: its user id equals `user`, or its username does
// (ignoring case). Always OK when `user` is empty. Errors: UNIMPLEMENTED
// when the answer names no user (a broker that predates apps acting on
// behalf of users ignores the field and would hand out the app's own token);
// INTERNAL when it names another user. Never caches nor prints the token.
absl::Status CheckTokenUser(
    absl::string_view user,
    const anypoint::tokenbroker::v1::GetTokenResponse& token,
    const RpcDescription& rpc);

// UNAVAILABLE (broker unreachable or restarting, or Anypoint down with no
// valid token) is the one error worth another try.
bool IsRetryable(const absl::Status& status);

// `retry.max_attempts` attempts of an RPC, retrying IsRetryable errors when
// the RPC is `idempotent`.
RetryPolicy RetryPolicyFor(const ClientRetryOptions& retry, bool idempotent);

// Full jitter over the truncated exponential bound of `retry` (see
// ClientRetryOptions). `uniform01` as for ExponentialBackoffPolicy.
ExponentialBackoffPolicy BackoffPolicyFor(
    const ClientRetryOptions& retry,
    std::function<double()> uniform01 = nullptr);

}  // namespace tokenbroker::client_internal

#endif  // TOKENBROKER_CLIENT_LIB_BROKER_RPC_H_
