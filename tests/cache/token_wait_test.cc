// Cancellable waiters of the token cache (TokenCache::Await, TokenWait), the
// backoff wait, the waiter limit and the refresh floor.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cache/token_cache.h"
#include "service/common/retry_info.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_token_source.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::FakeTokenSource;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

// What one waiter saw. Shared with the callback, so a callback that runs
// late touches live memory (the tests below check it never runs at all).
struct Seen {
  std::atomic<int> calls{0};
  std::optional<absl::StatusOr<TokenPtr>> result;
};

TokenResultCallback Record(std::shared_ptr<Seen> seen) {
  return [seen](absl::StatusOr<TokenPtr> result) {
    seen->result = std::move(result);
    seen->calls.fetch_add(1);
  };
}

class TokenWaitTest : public ::testing::Test {
 protected:
  TokenWaitTest() : source_(clock_) { Reset(CachePolicy()); }

  void Reset(CachePolicy policy) {
    cache_ = std::make_unique<TokenCache>(source_, clock_, policy,
                                          [] { return 0.5; });
  }

  TokenWait Await(std::shared_ptr<Seen> seen,
                  absl::Time deadline = absl::InfiniteFuture()) {
    return cache_->Await(request_, absl::Seconds(30), deadline,
                         Record(std::move(seen)));
  }

  FakeClock clock_;
  FakeTokenSource source_;
  std::unique_ptr<TokenCache> cache_;
  TokenRequest request_{"exchange-reader", {}};
};

TEST_F(TokenWaitTest, CancelledWaiterIsNeverCalledAndLeavesNothingBehind) {
  auto cancelled = std::make_shared<Seen>();
  auto waiting = std::make_shared<Seen>();
  TokenWait first = Await(cancelled);
  TokenWait second = Await(waiting);
  ASSERT_EQ(source_.fetch_count(), 1);
  EXPECT_TRUE(first.Cancel());
  EXPECT_FALSE(first.Cancel());  // Twice is harmless.
  EXPECT_EQ(cache_->stats().withdrawn, 1);

  std::string token = source_.Succeed();
  EXPECT_EQ(cancelled->calls.load(), 0);
  ASSERT_EQ(waiting->calls.load(), 1);
  ASSERT_THAT(*waiting->result, IsOk());
  EXPECT_EQ((**waiting->result)->access_token, token);
  EXPECT_FALSE(second.Cancel()) << "an answered waiter cannot be withdrawn";
}

TEST_F(TokenWaitTest, DestroyingTheHandleWithdrawsTheWaiter) {
  auto seen = std::make_shared<Seen>();
  { TokenWait wait = Await(seen); }
  source_.Succeed();
  EXPECT_EQ(seen->calls.load(), 0);
  EXPECT_EQ(cache_->stats().withdrawn, 1);
}

TEST_F(TokenWaitTest, MovedHandleStillWithdraws) {
  auto seen = std::make_shared<Seen>();
  TokenWait wait = Await(seen);
  TokenWait moved = std::move(wait);
  EXPECT_FALSE(wait.Cancel());  // NOLINT: the moved-from handle is empty.
  EXPECT_TRUE(moved.Cancel());
  source_.Succeed();
  EXPECT_EQ(seen->calls.load(), 0);
}

TEST_F(TokenWaitTest, HitAnswersInlineWithAnEmptyHandle) {
  cache_->Get(request_, absl::Seconds(30), [](absl::StatusOr<TokenPtr>) {});
  source_.Succeed();
  auto seen = std::make_shared<Seen>();
  TokenWait wait = Await(seen);
  EXPECT_EQ(seen->calls.load(), 1);
  EXPECT_FALSE(wait.Cancel());
}

TEST_F(TokenWaitTest, ACallbackMayCancelItsOwnHandle) {
  auto holder = std::make_shared<TokenWait>();
  std::atomic<int> calls{0};
  *holder = cache_->Await(request_, absl::Seconds(30), absl::InfiniteFuture(),
                          [holder, &calls](absl::StatusOr<TokenPtr>) {
                            ++calls;
                            EXPECT_FALSE(holder->Cancel());
                          });
  source_.Succeed();
  EXPECT_EQ(calls.load(), 1);
  holder->Cancel();
}

// A reactor's memory is freed right after its Cancel() returns: the cache
// must never call into it afterwards. Under ASan a late call is a
// use-after-free; without it, the poisoned flag catches it.
TEST_F(TokenWaitTest, CancelRacingCompletionNeverCallsAWithdrawnWaiter) {
  constexpr int kRounds = 300;
  constexpr int kWaiters = 16;
  for (int round = 0; round < kRounds; ++round) {
    struct Victim {
      std::atomic<bool> alive{true};
      std::atomic<int> calls{0};
    };
    std::vector<std::unique_ptr<Victim>> victims;
    std::vector<TokenWait> waits;
    for (int i = 0; i < kWaiters; ++i) {
      victims.push_back(std::make_unique<Victim>());
      Victim* victim = victims.back().get();
      waits.push_back(cache_->Await(
          request_, absl::Seconds(30), absl::InfiniteFuture(),
          [victim](absl::StatusOr<TokenPtr>) {
            ASSERT_TRUE(victim->alive.load()) << "called after Cancel()";
            victim->calls.fetch_add(1);
          }));
    }
    ASSERT_EQ(source_.pending_count(), 1);
    absl::Notification go;
    std::thread completer([&] {
      go.WaitForNotification();
      source_.Succeed(absl::Seconds(60));
    });
    go.Notify();
    for (int i = 0; i < kWaiters; ++i) {
      bool withdrawn = waits[i].Cancel();
      // Once Cancel() returns the callback has run exactly once or never.
      EXPECT_EQ(victims[i]->calls.load(), withdrawn ? 0 : 1);
      victims[i]->alive.store(false);
      victims[i].reset();  // Freed: a late call would touch freed memory.
    }
    completer.join();
    // The next round starts cold.
    cache_->DropApp(request_.app);
  }
}

TEST_F(TokenWaitTest, DestroyingTheCacheAnswersParkedWaitersCancelled) {
  auto seen = std::make_shared<Seen>();
  TokenWait wait = Await(seen);
  cache_.reset();
  ASSERT_EQ(seen->calls.load(), 1);
  EXPECT_THAT(*seen->result, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_FALSE(wait.Cancel());  // Does not reach the destroyed cache.
}

TEST_F(TokenWaitTest, TooManyWaitersOnOneKeyAreRefused) {
  CachePolicy policy;
  policy.max_waiters_per_key = 2;
  Reset(policy);
  auto a = std::make_shared<Seen>();
  auto b = std::make_shared<Seen>();
  auto c = std::make_shared<Seen>();
  TokenWait wa = Await(a);
  TokenWait wb = Await(b);
  TokenWait wc = Await(c);
  ASSERT_EQ(c->calls.load(), 1);
  EXPECT_THAT(*c->result, StatusIs(absl::StatusCode::kResourceExhausted,
                                   HasSubstr("cache.max_waiters_per_key = 2")));
  EXPECT_EQ(cache_->stats().waiters_refused, 1);
  // A withdrawn waiter frees its place.
  EXPECT_TRUE(wa.Cancel());
  auto d = std::make_shared<Seen>();
  TokenWait wd = Await(d);
  EXPECT_EQ(d->calls.load(), 0);
  source_.Succeed();
  EXPECT_EQ(b->calls.load(), 1);
  EXPECT_EQ(d->calls.load(), 1);
}

TEST_F(TokenWaitTest, CallerWhoseDeadlineCoversTheNextTryWaitsForIt) {
  auto first = std::make_shared<Seen>();
  TokenWait w1 = Await(first);
  absl::Status busy =
      absl::UnavailableError("503 Back-end server is at capacity");
  SetRetryAfter(busy, absl::Seconds(1));
  source_.Fail(busy);
  ASSERT_EQ(first->calls.load(), 1);
  ASSERT_THAT(*first->result, StatusIs(absl::StatusCode::kUnavailable));
  absl::Time next_try = cache_->NextDue();
  ASSERT_EQ(next_try, clock_.Now() + absl::Seconds(1));

  // Deadline before the next try: told at once, with when it is.
  auto hurried = std::make_shared<Seen>();
  TokenWait w2 = Await(hurried, clock_.Now() + absl::Milliseconds(500));
  ASSERT_EQ(hurried->calls.load(), 1);
  EXPECT_THAT(*hurried->result, StatusIs(absl::StatusCode::kUnavailable,
                                         HasSubstr("next upstream try in 1s")));

  // Deadline past it: parked, no upstream traffic before the try is due.
  auto patient = std::make_shared<Seen>();
  TokenWait w3 = Await(patient, clock_.Now() + absl::Seconds(10));
  EXPECT_EQ(patient->calls.load(), 0);
  EXPECT_EQ(source_.fetch_count(), 1);

  clock_.Set(next_try);
  cache_->RunDue();
  ASSERT_EQ(source_.fetch_count(), 2);
  std::string token = source_.Succeed();
  ASSERT_EQ(patient->calls.load(), 1);
  ASSERT_THAT(*patient->result, IsOk());
  EXPECT_EQ((**patient->result)->access_token, token);
}

TEST_F(TokenWaitTest, RejectedCredentialsAreAnsweredAtOnceWhateverTheDeadline) {
  auto first = std::make_shared<Seen>();
  TokenWait w1 = Await(first);
  source_.Fail(absl::FailedPreconditionError("invalid_client"));
  auto patient = std::make_shared<Seen>();
  TokenWait w2 = Await(patient, clock_.Now() + absl::Hours(1));
  ASSERT_EQ(patient->calls.load(), 1);
  EXPECT_THAT(*patient->result,
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(TokenWaitTest, ARefreshIsNeverScheduledSoonerThanTheBackoffFloor) {
  auto seen = std::make_shared<Seen>();
  TokenWait wait = Await(seen);
  absl::Time now = clock_.Now();
  source_.Succeed(absl::Milliseconds(1));
  EXPECT_GE(cache_->NextDue(), now + CachePolicy().backoff_base);
}

}  // namespace
}  // namespace tokenbroker
