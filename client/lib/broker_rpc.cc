#include "client/lib/broker_rpc.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tokenbroker::client_internal {

absl::Status FromGrpcStatus(const grpc::Status& status,
                            const RpcDescription& rpc) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  std::string message = status.error_message();
  switch (code) {
    case absl::StatusCode::kUnimplemented:
      if (message.empty()) {
        message = absl::StrCat("the broker at ", rpc.target,
                               " does not implement ", rpc.rpc_name,
                               " (is it older than this ", rpc.caller, "?)");
      }
      break;
    case absl::StatusCode::kUnavailable:
      absl::StrAppend(&message, " (", rpc.rpc_name, " to the broker at ",
                      rpc.target, ")");
      break;
    case absl::StatusCode::kDeadlineExceeded:
      absl::StrAppend(&message, " (", rpc.rpc_name, " took more than ",
                      absl::FormatDuration(rpc.timeout), rpc.deadline_hint,
                      ")");
      break;
    default:
      break;
  }
  return absl::Status(code, message);
}

void PrepareContext(const ClientConnection& connection, absl::Time deadline,
                    grpc::ClientContext* context) {
  if (deadline != absl::InfiniteFuture()) {
    context->set_deadline(absl::ToChronoTime(deadline));
  }
  if (!connection.bearer_key.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", connection.bearer_key));
  }
}

absl::Status CheckTokenUser(
    absl::string_view user,
    const anypoint::tokenbroker::v1::GetTokenResponse& token,
    const RpcDescription& rpc) {
  if (user.empty() || token.user_id() == user ||
      absl::EqualsIgnoreCase(token.username(), user)) {
    return absl::OkStatus();
  }
  if (token.user_id().empty() && token.username().empty()) {
    return absl::UnimplementedError(absl::StrCat(
        "the broker at ", rpc.target, " answered ", rpc.rpc_name,
        " for user \"", user,
        "\" with a token that names no user: it does not act on behalf of "
        "users (is it older than this ",
        rpc.caller, "?)"));
  }
  return absl::InternalError(absl::StrCat(
      "the broker at ", rpc.target, " answered ", rpc.rpc_name, " for user \"",
      user, "\" with a token of another user (", token.username(), ", id ",
      token.user_id(), "); the token was discarded"));
}

bool IsRetryable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable;
}

RetryPolicy RetryPolicyFor(const ClientRetryOptions& retry, bool idempotent) {
  RetryPolicy policy;
  policy.max_attempts = retry.max_attempts;
  if (idempotent) policy.retryable = IsRetryable;
  return policy;
}

ExponentialBackoffPolicy BackoffPolicyFor(const ClientRetryOptions& retry,
                                          std::function<double()> uniform01) {
  // A maximum below the initial backoff bounds every wait, as it always did.
  return ExponentialBackoffPolicy(
      std::min(retry.initial_backoff, retry.max_backoff), retry.max_backoff,
      retry.multiplier, std::move(uniform01));
}

}  // namespace tokenbroker::client_internal
