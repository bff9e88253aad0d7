#include "service/common/retry_info.h"

#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

TEST(RetryInfoTest, RoundTripsDelay) {
  absl::Status status = absl::UnavailableError("rate limited");
  SetRetryAfter(status, absl::Seconds(7));
  ASSERT_TRUE(GetRetryAfter(status).has_value());
  EXPECT_EQ(*GetRetryAfter(status), absl::Seconds(7));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "rate limited");
}

TEST(RetryInfoTest, NegativeDelayBecomesZero) {
  absl::Status status = absl::UnavailableError("x");
  SetRetryAfter(status, absl::Seconds(-3));
  EXPECT_EQ(*GetRetryAfter(status), absl::ZeroDuration());
}

TEST(RetryInfoTest, AbsentWithoutPayloadAndOnOk) {
  EXPECT_FALSE(GetRetryAfter(absl::UnavailableError("x")).has_value());
  absl::Status ok;
  SetRetryAfter(ok, absl::Seconds(1));
  EXPECT_FALSE(GetRetryAfter(ok).has_value());
}

}  // namespace
}  // namespace tokenbroker
