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

TEST(ExponentialBackoffPolicyTest, ScalingSetsTheGrowth) {
  ExponentialBackoffPolicy policy(absl::Seconds(1), absl::Seconds(30), 3.0,
                                  [] { return 0.5; });
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(500));
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(1500));
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(4500));
  EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(13500));
  EXPECT_EQ(policy.OnCompletion(), absl::Seconds(15));  // Ceiling capped.
  std::unique_ptr<BackoffPolicy> fresh = policy.clone();
  EXPECT_EQ(fresh->OnCompletion(), absl::Milliseconds(500));
  EXPECT_EQ(fresh->OnCompletion(), absl::Milliseconds(1500));
}

TEST(ExponentialBackoffPolicyTest, NonPositiveScalingNeverGivesANegativeDelay) {
  for (double scaling : {0.0, -2.0}) {
    ExponentialBackoffPolicy policy(absl::Seconds(1), absl::Seconds(10),
                                    scaling, [] { return 0.5; });
    EXPECT_EQ(policy.OnCompletion(), absl::Milliseconds(500));
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(policy.OnCompletion(), absl::ZeroDuration()) << scaling;
    }
  }
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
