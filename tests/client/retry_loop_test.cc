#include "client/lib/retry_loop.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/backoff_policy.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

bool IsUnavailableError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable;
}

// A clock that only moves when the loop sleeps; records each sleep.
class FakeTime {
 public:
  RetryClock clock() {
    RetryClock clock;
    clock.now = [this] { return now_; };
    clock.sleep = [this](absl::Duration delay) {
      sleeps_.push_back(delay);
      now_ += delay;
    };
    return clock;
  }
  absl::Time now() const { return now_; }
  const std::vector<absl::Duration>& sleeps() const { return sleeps_; }

 private:
  absl::Time now_ = kStart;
  std::vector<absl::Duration> sleeps_;
};

// Hands out the results in order, then OK; counts the attempts.
class ScriptedAttempt {
 public:
  explicit ScriptedAttempt(std::vector<absl::Status> failures)
      : failures_(std::move(failures)) {}
  absl::StatusOr<std::string> operator()() {
    ++attempts_;
    if (attempts_ <= static_cast<int>(failures_.size())) {
      return failures_[attempts_ - 1];
    }
    return std::string("answer");
  }
  int attempts() const { return attempts_; }

 private:
  std::vector<absl::Status> failures_;
  int attempts_ = 0;
};

// Delays of 0.5 s, 1 s, 2 s, ...: half of the doubling ceiling from 1 s.
ExponentialBackoffPolicy HalfCeilingBackoff() {
  return ExponentialBackoffPolicy(absl::Seconds(1), absl::Seconds(60),
                                  [] { return 0.5; });
}

RetryPolicy RetryUnavailable(int max_attempts) {
  RetryPolicy retry;
  retry.max_attempts = max_attempts;
  retry.retryable = IsUnavailableError;
  return retry;
}

std::vector<absl::Status> ThreeUnavailable() {
  return {absl::UnavailableError("first"), absl::UnavailableError("second"),
          absl::UnavailableError("third")};
}

class RetryLoopTest : public ::testing::Test {
 protected:
  // The loop with the half-ceiling backoff and the fake time.
  absl::StatusOr<std::string> Run(const RetryPolicy& retry,
                                  ScriptedAttempt& attempt,
                                  absl::Time deadline = kStart +
                                                        absl::Minutes(1)) {
    return RetryLoop(retry, backoff_, deadline, time_.clock(), attempt);
  }

  FakeTime time_;
  ExponentialBackoffPolicy backoff_ = HalfCeilingBackoff();
};

TEST_F(RetryLoopTest, SuccessNeedsOneAttemptAndNoSleep) {
  ScriptedAttempt attempt({});
  absl::StatusOr<std::string> result = Run(RetryUnavailable(4), attempt);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(*result, "answer");
  EXPECT_EQ(attempt.attempts(), 1);
  EXPECT_THAT(time_.sleeps(), IsEmpty());
}

TEST_F(RetryLoopTest, RetriesRetryableErrorsAfterTheBackoffDelays) {
  ScriptedAttempt attempt(
      {absl::UnavailableError("down"), absl::UnavailableError("down")});
  ASSERT_THAT(Run(RetryUnavailable(4), attempt), IsOk());
  EXPECT_EQ(attempt.attempts(), 3);
  EXPECT_THAT(time_.sleeps(),
              ElementsAre(absl::Milliseconds(500), absl::Seconds(1)));
}

TEST_F(RetryLoopTest, NonRetryableErrorsAreReturnedAtOnce) {
  for (absl::Status error :
       {absl::NotFoundError("no app"), absl::PermissionDeniedError("no"),
        absl::FailedPreconditionError("invalid_client"),
        absl::DeadlineExceededError("slow"), absl::InternalError("bug")}) {
    ScriptedAttempt attempt({error, absl::UnavailableError("later")});
    EXPECT_THAT(Run(RetryUnavailable(4), attempt),
                StatusIs(error.code(), error.message()));
    EXPECT_EQ(attempt.attempts(), 1) << error;
  }
  EXPECT_THAT(time_.sleeps(), IsEmpty());
}

TEST_F(RetryLoopTest, WithoutAPredicateNothingIsRetried) {
  ScriptedAttempt attempt({absl::UnavailableError("down")});
  RetryPolicy retry;
  retry.max_attempts = 4;
  EXPECT_THAT(Run(retry, attempt), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(attempt.attempts(), 1);
}

TEST_F(RetryLoopTest, GivesUpAfterMaxAttemptsWithTheLastError) {
  ScriptedAttempt attempt(ThreeUnavailable());
  EXPECT_THAT(Run(RetryUnavailable(2), attempt),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("second")));
  EXPECT_EQ(attempt.attempts(), 2);
  EXPECT_THAT(time_.sleeps(), ElementsAre(absl::Milliseconds(500)));

  ScriptedAttempt single(ThreeUnavailable());
  EXPECT_THAT(Run(RetryUnavailable(1), single),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("first")));
  EXPECT_EQ(single.attempts(), 1);
}

TEST_F(RetryLoopTest, NoRetryWhoseWaitWouldReachTheDeadline) {
  ScriptedAttempt attempt(ThreeUnavailable());
  // The first wait (0.5 s) fits; the second (1 s) would end at 1.5 s.
  EXPECT_THAT(
      Run(RetryUnavailable(10), attempt, kStart + absl::Milliseconds(1200)),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("second")));
  EXPECT_EQ(attempt.attempts(), 2);
  EXPECT_THAT(time_.sleeps(), ElementsAre(absl::Milliseconds(500)));
}

TEST_F(RetryLoopTest, AWaitEndingExactlyAtTheDeadlineDoesNotFit) {
  ScriptedAttempt attempt(ThreeUnavailable());
  EXPECT_THAT(
      Run(RetryUnavailable(10), attempt, kStart + absl::Milliseconds(500)),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("first")));
  EXPECT_EQ(attempt.attempts(), 1);
  EXPECT_THAT(time_.sleeps(), IsEmpty());
}

TEST_F(RetryLoopTest, PredicateSeesWhatTheAttemptDid) {
  // As CallStream: an attempt that began the answer is not repeated.
  bool answer_begun = false;
  int attempts = 0;
  RetryPolicy retry = RetryUnavailable(4);
  retry.retryable = [&answer_begun](const absl::Status& status) {
    return !answer_begun && IsUnavailableError(status);
  };
  // An attempt returning absl::Status.
  absl::Status result =
      RetryLoop(retry, backoff_, kStart + absl::Minutes(1), time_.clock(), [&] {
        ++attempts;
        if (attempts == 2) answer_begun = true;
        return absl::UnavailableError("reset");
      });
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(time_.sleeps().size(), 1u);
}

// Counts the delays asked for.
class CountingBackoff final : public BackoffPolicy {
 public:
  std::unique_ptr<BackoffPolicy> clone() const override {
    return std::make_unique<CountingBackoff>();
  }
  absl::Duration OnCompletion() override {
    ++completions;
    return absl::Milliseconds(10);
  }
  int completions = 0;
};

TEST(RetryLoopBackoffTest, AskedOncePerRetriedFailure) {
  FakeTime time;
  CountingBackoff backoff;
  ScriptedAttempt attempt({absl::UnavailableError("a"),
                           absl::UnavailableError("b"),
                           absl::NotFoundError("final")});
  EXPECT_THAT(RetryLoop(RetryUnavailable(10), backoff,
                        kStart + absl::Minutes(1), time.clock(), attempt),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(attempt.attempts(), 3);
  EXPECT_EQ(backoff.completions, 2);
  EXPECT_EQ(time.now(), kStart + absl::Milliseconds(20));
}

}  // namespace
}  // namespace tokenbroker
