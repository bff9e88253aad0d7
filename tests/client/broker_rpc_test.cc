#include "client/lib/broker_rpc.h"

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::client_internal {
namespace {

using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

RpcDescription GetToken() {
  RpcDescription rpc;
  rpc.rpc_name = "TokenBroker.GetToken";
  rpc.target = "broker:50051";
  rpc.timeout = absl::Seconds(10);
  return rpc;
}

TEST(FromGrpcStatusTest, AddsNotesToTerseMessages) {
  EXPECT_THAT(FromGrpcStatus(grpc::Status::OK, GetToken()), IsOk());
  EXPECT_THAT(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"),
                     GetToken()),
      StatusIs(absl::StatusCode::kUnavailable,
               "down (TokenBroker.GetToken to the broker at broker:50051)"));
  EXPECT_THAT(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                  "Deadline Exceeded"),
                     GetToken()),
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               "Deadline Exceeded (TokenBroker.GetToken took more than 10s)"));
  EXPECT_THAT(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""),
                             GetToken()),
              StatusIs(absl::StatusCode::kUnimplemented,
                       "the broker at broker:50051 does not implement "
                       "TokenBroker.GetToken (is it older than this client?)"));
  // The broker's own message is kept as it is.
  EXPECT_THAT(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "later"),
                     GetToken()),
      StatusIs(absl::StatusCode::kUnimplemented, "later"));
  EXPECT_THAT(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "no app"),
                     GetToken()),
      StatusIs(absl::StatusCode::kNotFound, "no app"));
}

TEST(FromGrpcStatusTest, CallerAndDeadlineHint) {
  RpcDescription rpc = GetToken();
  rpc.caller = "tokenbrokerctl";
  rpc.deadline_hint = "; raise --timeout";
  EXPECT_THAT(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"),
                     rpc),
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               "late (TokenBroker.GetToken took more than 10s; raise "
               "--timeout)"));
  EXPECT_THAT(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""), rpc),
      StatusIs(absl::StatusCode::kUnimplemented,
               ::testing::HasSubstr("older than this tokenbrokerctl?")));
}

TEST(RetryPolicyForTest, OnlyIdempotentRpcsRetryAndOnlyUnavailable) {
  ClientRetryOptions options;
  options.max_attempts = 3;
  RetryPolicy idempotent = RetryPolicyFor(options, true);
  EXPECT_EQ(idempotent.max_attempts, 3);
  ASSERT_TRUE(idempotent.retryable);
  EXPECT_TRUE(idempotent.retryable(absl::UnavailableError("")));
  EXPECT_FALSE(idempotent.retryable(absl::DeadlineExceededError("")));
  EXPECT_FALSE(idempotent.retryable(absl::FailedPreconditionError("")));
  EXPECT_FALSE(RetryPolicyFor(options, false).retryable);
}

TEST(BackoffPolicyForTest, TruncatedExponentialWithTheMultiplier) {
  ClientRetryOptions options;
  options.initial_backoff = absl::Milliseconds(100);
  options.max_backoff = absl::Milliseconds(1000);
  options.multiplier = 3.0;
  ExponentialBackoffPolicy policy =
      BackoffPolicyFor(options, [] { return 1.0; });
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(100));
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(300));
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(900));
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(1000));

  // A maximum below the initial backoff bounds every wait.
  options.max_backoff = absl::Milliseconds(50);
  ExponentialBackoffPolicy capped =
      BackoffPolicyFor(options, [] { return 1.0; });
  EXPECT_EQ(capped.OnCompletion(), absl::Milliseconds(50));
  EXPECT_EQ(capped.OnCompletion(), absl::Milliseconds(50));
}

TEST(BackoffDelayTest, AnyAttemptStaysWithinTheBounds) {
  ClientRetryOptions options;  // 100 ms, doubling, at most 5 s.
  absl::BitGen gen;
  EXPECT_LE(BackoffDelay(options, 0, gen), options.initial_backoff);
  EXPECT_LE(BackoffDelay(options, 1'000'000, gen), options.max_backoff);
  EXPECT_GE(BackoffDelay(options, 1'000'000, gen), absl::ZeroDuration());
}

}  // namespace
}  // namespace tokenbroker::client_internal
