// refresh: simulated time, no network (bench/scenarios.h).

#include <cstdint>
#include <deque>
#include <iostream>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/scenarios.h"
#include "service/cache/token_cache.h"
#include "tests/testing/fake_clock.h"

namespace tokenbroker::bench {

using nlohmann::json;

namespace {

// Answers every fetch `latency` of simulated time later, with a token of
// `lifetime`. The simulation completes due fetches between steps.
class DelayedTokenSource final : public TokenSource {
 public:
  DelayedTokenSource(const Clock& clock, absl::Duration latency,
                     absl::Duration lifetime)
      : clock_(clock), latency_(latency), lifetime_(lifetime) {}

  void Fetch(const TokenRequest& request, TokenCallback done) override {
    absl::MutexLock lock(&mu_);
    ++fetches_;
    pending_.push_back({clock_.Now() + latency_, std::move(done)});
  }

  void CompleteDue() {
    std::vector<TokenCallback> due;
    absl::Time now = clock_.Now();
    {
      absl::MutexLock lock(&mu_);
      while (!pending_.empty() && pending_.front().first <= now) {
        due.push_back(std::move(pending_.front().second));
        pending_.pop_front();
      }
    }
    for (TokenCallback& done : due) {
      Token token;
      token.issued_at = now;
      token.expires_at = now + lifetime_;
      token.access_token = absl::StrCat("sim-", ++issued_);
      done(std::move(token));
    }
  }

  int64_t fetches() {
    absl::MutexLock lock(&mu_);
    return fetches_;
  }

 private:
  const Clock& clock_;
  const absl::Duration latency_;
  const absl::Duration lifetime_;
  absl::Mutex mu_;
  std::deque<std::pair<absl::Time, TokenCallback>> pending_
      ABSL_GUARDED_BY(mu_);
  int64_t fetches_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t issued_ = 0;  // Simulation thread only.
};

}  // namespace

json RunRefresh() {
  const absl::Duration kLifetime = absl::Seconds(60);
  const absl::Duration kUpstreamLatency = absl::Milliseconds(300);
  const absl::Duration kStep = absl::Milliseconds(50);
  const absl::Duration kSimulated = absl::Minutes(10);
  const absl::Duration kWarmup = absl::Seconds(5);
  const int kKeys = 10;
  const int kCallsPerKeyPerStep = 20;

  testing::FakeClock clock;
  DelayedTokenSource source(clock, kUpstreamLatency, kLifetime);
  CachePolicy policy;  // Defaults: refresh at 2/3 +-10 %, min_ttl 30 s.
  TokenCache cache(source, clock, policy);
  std::vector<TokenRequest> requests;
  for (int k = 0; k < kKeys; ++k) {
    TokenRequest request;
    request.app = absl::StrCat("app-", k);
    request.scopes = {"read:exchange"};
    requests.push_back(std::move(request));
  }
  const absl::Time start = clock.Now();
  int64_t calls = 0, waited_after_warmup = 0, failed = 0;
  int64_t waits_at_warmup = -1;
  absl::Time sim_begin = absl::Now();
  while (clock.Now() - start < kSimulated) {
    clock.Advance(kStep);
    source.CompleteDue();
    cache.RunDue();  // What the Refresher thread does when a refresh is due.
    bool warm = clock.Now() - start >= kWarmup;
    if (warm && waits_at_warmup < 0) waits_at_warmup = cache.stats().waits;
    for (const TokenRequest& request : requests) {
      for (int i = 0; i < kCallsPerKeyPerStep; ++i) {
        bool answered = false;
        cache.Get(request, policy.min_ttl,
                  [&answered, &failed](absl::StatusOr<TokenPtr> token) {
                    answered = true;
                    if (!token.ok()) ++failed;
                  });
        ++calls;
        // A caller that was not answered inline waited on a fetch.
        if (!answered && warm) ++waited_after_warmup;
      }
    }
  }
  source.CompleteDue();
  TokenCacheStats stats = cache.stats();
  json result{
      {"simulated_seconds", absl::ToDoubleSeconds(kSimulated)},
      {"token_lifetime_s", absl::ToDoubleSeconds(kLifetime)},
      {"upstream_latency_ms", absl::ToDoubleMilliseconds(kUpstreamLatency)},
      {"keys", kKeys},
      {"calls", calls},
      {"warmup_s", absl::ToDoubleSeconds(kWarmup)},
      {"waited_after_warmup", waited_after_warmup},
      {"cache_waits_after_warmup", stats.waits - waits_at_warmup},
      {"cache_waits_total", stats.waits},
      {"failed", failed},
      {"upstream_fetches", source.fetches()},
      {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - sim_begin)}};
  std::cerr << "refresh " << result.dump() << "\n";
  return result;
}

}  // namespace tokenbroker::bench
