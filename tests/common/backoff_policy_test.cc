#include "service/common/backoff_policy.h"

#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

TEST(ExponentialBackoffPolicyTest, FullJitterBelowDoublingCeiling) {
  ExponentialBackoffPolicy policy(absl::Seconds(1), absl::Seconds(10),
                                  [] { return 0.5; });
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(500));
  EXPECT_EQ(policy.OnCompletion(), absl::Seconds(1));
  EXPECT_EQ(policy.OnCompletion(), absl::Seconds(2));
  EXPECT_EQ(policy.OnCompletion(), absl::Seconds(4));
  EXPECT_EQ(policy.OnCompletion(), absl::Seconds(5));  // Ceiling capped at 10.
  EXPECT_EQ(policy.OnCompletion(), absl::Seconds(5));
}

TEST(ExponentialBackoffPolicyTest, CloneStartsAfresh) {
  ExponentialBackoffPolicy policy(absl::Seconds(1), absl::Seconds(10),
                                  [] { return 1.0; });
  policy.OnCompletion();
  policy.OnCompletion();
  std::unique_ptr<BackoffPolicy> fresh = policy.clone();
  EXPECT_EQ(fresh->OnCompletion(), absl::Seconds(1));
}

TEST(ExponentialBackoffPolicyTest, DefaultRandomStaysInRange) {
  ExponentialBackoffPolicy policy(absl::Seconds(2), absl::Seconds(60));
  for (int i = 0; i < 100; ++i) {
    absl::Duration ceiling = policy.current_ceiling();
    absl::Duration delay = policy.OnCompletion();
    EXPECT_GE(delay, absl::ZeroDuration());
    EXPECT_LE(delay, ceiling);
  }
}

}  // namespace
}  // namespace tokenbroker
