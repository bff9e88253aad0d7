#include "service/cache/token_cache.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
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

// Collects the result of one Get(). The callback shares the state rather
// than pointing at the Result, which may be a discarded temporary (`Get();`)
// or a copy by the time a pending fetch completes.
struct Result {
  std::shared_ptr<std::optional<absl::StatusOr<TokenPtr>>> state =
      std::make_shared<std::optional<absl::StatusOr<TokenPtr>>>();
  TokenResultCallback Callback() {
    return
        [state = state](absl::StatusOr<TokenPtr> r) { *state = std::move(r); };
  }
  const std::optional<absl::StatusOr<TokenPtr>>& value() const {
    return *state;
  }
  bool done() const { return state->has_value(); }
  std::string token() const {
    return done() && value()->ok() ? (**value())->access_token : "";
  }
};

class TokenCacheTest : public ::testing::Test {
 protected:
  TokenCacheTest() : source_(clock_) { Reset(CachePolicy()); }

  // uniform01 = 0.5 makes the refresh jitter zero and backoff delays half
  // their ceiling.
  void Reset(CachePolicy policy, double uniform = 0.5) {
    policy_ = policy;
    cache_ = std::make_unique<TokenCache>(source_, clock_, policy,
                                          [uniform] { return uniform; });
  }

  Result Get(absl::Duration min_ttl = absl::Seconds(30)) {
    Result result;
    cache_->Get(request_, min_ttl, result.Callback());
    return result;
  }

  FakeClock clock_;
  FakeTokenSource source_;
  CachePolicy policy_;
  std::unique_ptr<TokenCache> cache_;
  TokenRequest request_{"design-center", {}};
};

TEST_F(TokenCacheTest, ConcurrentMissesShareOneFetch) {
  std::vector<Result> results(200);
  for (Result& r : results) {
    cache_->Get(request_, absl::Seconds(30), r.Callback());
  }
  EXPECT_EQ(source_.fetch_count(), 1);
  for (const Result& r : results) EXPECT_FALSE(r.done());

  std::string token = source_.Succeed();
  for (const Result& r : results) {
    ASSERT_TRUE(r.done());
    EXPECT_EQ(r.token(), token);
  }
  EXPECT_EQ(cache_->stats().waits, 200);
}

TEST_F(TokenCacheTest, HitIsAnsweredInlineWithoutFetch) {
  Result first = Get();
  std::string token = source_.Succeed();
  ASSERT_EQ(first.token(), token);

  clock_.Advance(absl::Minutes(10));
  Result second = Get();
  ASSERT_TRUE(second.done());
  EXPECT_EQ(second.token(), token);
  EXPECT_EQ(source_.fetch_count(), 1);
  EXPECT_NE(cache_->Lookup(CacheKey(request_), absl::Seconds(30)), nullptr);
  EXPECT_GE(cache_->stats().hits, 2);
}

TEST_F(TokenCacheTest, RefreshesAheadAtTwoThirdsOfLifetime) {
  Get();
  absl::Time issued = clock_.Now();
  std::string first = source_.Succeed(absl::Hours(1));
  EXPECT_EQ(cache_->NextDue(), issued + absl::Minutes(40));

  clock_.Advance(absl::Minutes(39));
  cache_->RunDue();
  EXPECT_EQ(source_.fetch_count(), 1);

  clock_.Advance(absl::Minutes(1));
  cache_->RunDue();
  EXPECT_EQ(source_.fetch_count(), 2);
  // While the refresh is in flight, callers get the current token at once.
  Result during = Get();
  ASSERT_TRUE(during.done());
  EXPECT_EQ(during.token(), first);

  std::string second = source_.Succeed(absl::Hours(1));
  Result after = Get();
  EXPECT_EQ(after.token(), second);
  EXPECT_EQ(cache_->stats().waits, 1);  // Only the cold miss waited.
}

TEST_F(TokenCacheTest, RefreshPointIsJitteredWithinBounds) {
  for (double uniform : {0.0, 0.999}) {
    Reset(CachePolicy(), uniform);
    Get();
    absl::Time issued = clock_.Now();
    source_.Succeed(absl::Hours(1));
    absl::Duration at = cache_->NextDue() - issued;
    EXPECT_GE(at, absl::Minutes(40) * 0.9 - absl::Seconds(1));
    EXPECT_LE(at, absl::Minutes(40) * 1.1 + absl::Seconds(1));
    EXPECT_NE(at, absl::Minutes(40));
  }
}

TEST_F(TokenCacheTest, ServesValidTokenWhileUpstreamFailsThenUnavailable) {
  Get();
  std::string token = source_.Succeed(absl::Hours(1));
  clock_.Advance(absl::Minutes(40));
  cache_->RunDue();
  source_.Fail(absl::UnavailableError("token endpoint answered 503"));

  // Still valid with 10 s left, below the caller's min_ttl, and the backoff
  // (0.5 s) long over: the call tries upstream once more and waits for it;
  // that fails, and it is served the valid token.
  clock_.Advance(absl::Minutes(19) + absl::Seconds(50));
  Result late = Get(absl::Seconds(30));
  EXPECT_FALSE(late.done());
  ASSERT_EQ(source_.pending_count(), 1);
  EXPECT_EQ(source_.fetch_count(), 3);
  source_.Fail(absl::UnavailableError("still down"));
  ASSERT_TRUE(late.done());
  EXPECT_EQ(late.token(), token);
  EXPECT_EQ(cache_->stats().stale_served, 1);

  // Expired and still failing, past the backoff (1 s): the call tries
  // upstream, which fails: UNAVAILABLE with the cause.
  clock_.Advance(absl::Minutes(1));
  Result expired = Get();
  EXPECT_FALSE(expired.done());
  ASSERT_EQ(source_.pending_count(), 1);
  source_.Fail(absl::UnavailableError("token endpoint answered 503"));
  ASSERT_TRUE(expired.done());
  EXPECT_THAT(*expired.value(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("503")));
  EXPECT_EQ(source_.fetch_count(), 4);
  EXPECT_EQ(source_.pending_count(), 0);
}

TEST_F(TokenCacheTest, BackoffGrowsExponentiallyAndCallersAreNotQueued) {
  Reset(CachePolicy(), /*uniform=*/0.999);
  Result first = Get();
  source_.Fail(absl::UnavailableError("down"));
  ASSERT_TRUE(first.done());
  EXPECT_THAT(*first.value(), StatusIs(absl::StatusCode::kUnavailable));

  // Within the backoff, callers fail fast without another upstream try.
  Result fast = Get();
  ASSERT_TRUE(fast.done());
  EXPECT_THAT(*fast.value(), StatusIs(absl::StatusCode::kUnavailable,
                                      HasSubstr("next upstream try")));
  EXPECT_EQ(source_.fetch_count(), 1);

  std::vector<absl::Duration> delays;
  for (int i = 0; i < 12; ++i) {
    absl::Time failed_at = clock_.Now();
    delays.push_back(cache_->NextDue() - failed_at);
    clock_.Set(cache_->NextDue());
    cache_->RunDue();
    ASSERT_EQ(source_.pending_count(), 1);
    source_.Fail(absl::UnavailableError("down"));
  }
  // Base 1 s doubling, capped at 5 minutes (uniform ~1: near the ceiling).
  EXPECT_NEAR(absl::ToDoubleSeconds(delays[0]), 1.0, 0.01);
  EXPECT_NEAR(absl::ToDoubleSeconds(delays[1]), 2.0, 0.01);
  EXPECT_NEAR(absl::ToDoubleSeconds(delays[2]), 4.0, 0.01);
  EXPECT_NEAR(absl::ToDoubleSeconds(delays[8]), 256.0, 0.5);
  EXPECT_NEAR(absl::ToDoubleSeconds(delays[9]), 300.0, 0.5);
  EXPECT_NEAR(absl::ToDoubleSeconds(delays[11]), 300.0, 0.5);
}

TEST_F(TokenCacheTest, HonoursServerRetryAfter) {
  Get();
  absl::Status limited = absl::UnavailableError("429 Too Many Requests");
  SetRetryAfter(limited, absl::Seconds(120));
  absl::Time failed_at = clock_.Now();
  source_.Fail(limited);
  EXPECT_EQ(cache_->NextDue(), failed_at + absl::Seconds(120));

  clock_.Advance(absl::Seconds(119));
  cache_->RunDue();
  Get();
  EXPECT_EQ(source_.fetch_count(), 1);
  clock_.Advance(absl::Seconds(1));
  cache_->RunDue();
  EXPECT_EQ(source_.fetch_count(), 2);
}

TEST_F(TokenCacheTest, RejectedCredentialsSurfaceAtOnceAndRetrySlowly) {
  Result first = Get();
  absl::Time failed_at = clock_.Now();
  source_.Fail(absl::FailedPreconditionError(
      "Anypoint rejected the client credentials (invalid_client)"));
  ASSERT_TRUE(first.done());
  EXPECT_THAT(*first.value(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("invalid_client")));

  for (int i = 0; i < 100; ++i) {
    Result again = Get();
    ASSERT_TRUE(again.done());
    EXPECT_THAT(*again.value(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  EXPECT_EQ(source_.fetch_count(), 1);
  EXPECT_EQ(cache_->NextDue(), failed_at + policy_.rejected_retry);
}

TEST_F(TokenCacheTest, MinTtlForcesFetchWhenTokenIsTooShort) {
  Get();
  source_.Succeed(absl::Hours(1));
  clock_.Advance(absl::Minutes(59) + absl::Seconds(40));  // 20 s left.
  EXPECT_EQ(cache_->Lookup(CacheKey(request_), absl::Seconds(30)), nullptr);
  EXPECT_NE(cache_->Lookup(CacheKey(request_), absl::Seconds(10)), nullptr);
  Result r = Get(absl::Seconds(30));
  EXPECT_FALSE(r.done());
  EXPECT_EQ(source_.fetch_count(), 2);
}

TEST_F(TokenCacheTest, ShortLivedTokensDoNotForceAFetchPerCall) {
  Get();
  source_.Succeed(absl::Seconds(3));
  clock_.Advance(absl::Milliseconds(500));
  Result r = Get(absl::Seconds(30));
  EXPECT_TRUE(r.done());
  EXPECT_EQ(source_.fetch_count(), 1);
}

TEST_F(TokenCacheTest, IdleEntriesAreEvictedInsteadOfRefreshed) {
  CachePolicy policy;
  policy.idle_evict_after = absl::Minutes(30);
  Reset(policy);
  Get();
  source_.Succeed(absl::Hours(1));
  clock_.Advance(absl::Minutes(40));
  cache_->RunDue();
  EXPECT_EQ(source_.fetch_count(), 1);
  EXPECT_TRUE(cache_->Snapshot().empty());
  EXPECT_EQ(cache_->stats().evictions, 1);
}

TEST_F(TokenCacheTest, WatchSeesCurrentAndRefreshedTokens) {
  std::vector<std::string> seen;
  uint64_t id = cache_->Watch(request_, [&](const absl::StatusOr<TokenPtr>& r) {
    ASSERT_THAT(r, IsOk());
    seen.push_back((*r)->access_token);
  });
  std::string first = source_.Succeed(absl::Hours(1));
  clock_.Advance(absl::Minutes(40));
  cache_->RunDue();
  std::string second = source_.Succeed(absl::Hours(1));
  EXPECT_THAT(seen, ::testing::ElementsAre(first, second));

  // A watched key is never idle.
  clock_.Advance(absl::Hours(3));
  cache_->RunDue();
  EXPECT_EQ(source_.fetch_count(), 3);
  cache_->Unwatch(id);
  source_.Succeed(absl::Hours(1));
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(TokenCacheTest, DropAppCancelsWaitersAndForgetsTokens) {
  Get();
  std::string token = source_.Succeed();
  Result waiting;
  cache_->Refresh(request_, waiting.Callback());
  std::vector<TokenPtr> dropped = cache_->DropApp("design-center");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0]->access_token, token);
  ASSERT_TRUE(waiting.done());
  EXPECT_THAT(*waiting.value(), StatusIs(absl::StatusCode::kAborted));
  // The late result of the dropped fetch is ignored.
  source_.Succeed();
  EXPECT_EQ(cache_->Lookup(CacheKey(request_), absl::Seconds(30)), nullptr);
}

TEST_F(TokenCacheTest, InvalidateDropsOnlyTheRejectedToken) {
  Get();
  std::string first = source_.Succeed();
  cache_->Invalidate(request_, "some-other-token");
  EXPECT_TRUE(Get().done());
  cache_->Invalidate(request_, first);
  Result a = Get();
  Result b = Get();
  EXPECT_FALSE(a.done());
  EXPECT_EQ(source_.fetch_count(), 2);  // One fetch for both callers.
  std::string second = source_.Succeed();
  EXPECT_EQ(a.token(), second);
  EXPECT_EQ(b.token(), second);
}

TEST_F(TokenCacheTest, SnapshotNeverHoldsTheToken) {
  Get();
  std::string token = source_.Succeed();
  std::vector<TokenEntryInfo> infos = cache_->Snapshot();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_TRUE(infos[0].valid);
  EXPECT_EQ(infos[0].refreshes, 1);
  EXPECT_EQ(infos[0].token_fingerprint, TokenFingerprint(token));
  EXPECT_EQ(infos[0].token_fingerprint.size(), 12u);
  EXPECT_EQ(infos[0].token_fingerprint.find(token), std::string::npos);
}

TEST(TokenFingerprintTest, IsSha256Prefix) {
  // sha256("abc") = ba7816bf8f01cfea...
  EXPECT_EQ(TokenFingerprint("abc"), "ba7816bf8f01");
}

}  // namespace
}  // namespace tokenbroker
