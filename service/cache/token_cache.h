#ifndef TOKENBROKER_SERVICE_CACHE_TOKEN_CACHE_H_
#define TOKENBROKER_SERVICE_CACHE_TOKEN_CACHE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/cache/token_provider.h"
#include "service/cache/token_wait.h"
#include "service/common/backoff_policy.h"
#include "service/common/clock.h"
#include "service/common/token_fingerprint.h"  // IWYU pragma: export
#include "service/config/config.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

using TokenListener = std::function<void(const absl::StatusOr<TokenPtr>&)>;

// The cache key of a token request: the app name and the sorted scopes
// requested upstream, joined so that distinct requests never collide.
std::string CacheKey(const TokenRequest& request);

// The state of one cache entry, for ListApps. Holds no token.
struct TokenEntryInfo {
  std::string app;
  std::vector<std::string> scopes;
  std::string user;  // User id, for user apps.
  bool valid = false;
  absl::Time valid_until = absl::InfinitePast();
  absl::Time last_refresh = absl::InfinitePast();
  absl::Time next_refresh = absl::InfiniteFuture();
  absl::Status last_error;
  int64_t refreshes = 0;
  int64_t failures = 0;
  std::string token_fingerprint;
};

// Counters over the cache's lifetime.
struct TokenCacheStats {
  int64_t hits = 0;             // Answered from the cache without waiting.
  int64_t waits = 0;            // Callers that waited on an upstream fetch.
  int64_t fetches = 0;          // Upstream fetches started.
  int64_t fetch_failures = 0;   // Upstream fetches that failed.
  int64_t stale_served = 0;     // Tokens served below min_ttl while failing.
  int64_t evictions = 0;        // Idle entries evicted.
  int64_t withdrawn = 0;        // Waiters withdrawn before their answer.
  int64_t waiters_refused = 0;  // Over max_waiters_per_key.
};

// Told about the cache's work; fixed at construction. Each runs outside the
// cache's lock and must not block.
struct TokenCacheHooks {
  // Whenever a refresh is scheduled, so that a timer can re-arm.
  std::function<void()> on_schedule;
  // After every upstream fetch, with its outcome (e.g. per-app health).
  std::function<void(const TokenRequest&, const absl::Status&)> on_fetch;
};

// Caches access tokens per (app, scopes) and keeps them fresh.
//
// - Hit: a token with at least `min_ttl` left is returned at once, under a
//   reader lock, with no I/O and no allocation.
// - Miss: one upstream fetch per key at a time; concurrent callers of the
//   key wait on it (single flight).
// - Refresh ahead: each fetched token is scheduled for a background refresh
//   at `refresh_fraction` of its lifetime, +-`refresh_jitter`. RunDue()
//   starts due refreshes; the Refresher thread calls it on time.
// - Failure: a token that has not expired keeps being served; retries follow
//   exponential backoff with full jitter, never sooner than a server-given
//   Retry-After. A rejection of the credentials (FAILED_PRECONDITION) is
//   returned to callers at once and retried only after `rejected_retry`.
//   While a key is backing off and has no valid token, a caller whose
//   deadline lies past the next try waits for that try (parked like a cold
//   miss); one whose deadline ends first gets the last error at once, with
//   the time of the next try. Rejected credentials are answered at once.
// - A refresh is never scheduled sooner than `backoff_base` after a fetch,
//   whatever the token's lifetime.
// - At most `max_waiters_per_key` callers wait on one key; more get
//   RESOURCE_EXHAUSTED.
// - Idle entries (no caller and no watcher for `idle_evict_after`) are not
//   refreshed and are evicted when their refresh comes due.
//
// The effective min_ttl of a request is capped at half of what a token has
// left at its latest refresh point, so that short-lived tokens do not force a
// fetch per call.
//
// Thread-safe. Callbacks and listeners run outside the cache's lock, on the
// caller's thread (hits) or the token source's thread (fetches); they must
// not block. Waiters still parked when the cache is destroyed are answered
// CANCELLED.
class TokenCache final : public TokenProvider,
                         private internal::WaiterRegistry {
 public:
  TokenCache(TokenSource& source, const Clock& clock, CachePolicy policy,
             std::function<double()> uniform01 = nullptr,
             TokenCacheHooks hooks = {});
  ~TokenCache() override;

  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // Returns a cached token with at least `min_ttl` left (capped as above), or
  // nullptr. Never blocks on I/O. `key` is CacheKey(request).
  TokenPtr Lookup(absl::string_view key, absl::Duration min_ttl);

  // Calls `done` with a token for `request`: inline on a hit, otherwise when
  // the key's single upstream fetch completes. `deadline` is the caller's:
  // while the key backs off, it decides between waiting for the next try and
  // an error now. The returned handle withdraws the waiter when cancelled or
  // destroyed (see TokenWait); RPCs must hold it until they finish.
  // Errors: those of the token source (FAILED_PRECONDITION, UNAVAILABLE,
  // DEADLINE_EXCEEDED, NOT_FOUND); RESOURCE_EXHAUSTED over
  // max_waiters_per_key; ABORTED when the app is dropped; CANCELLED when the
  // cache is destroyed first.
  TokenWait Await(const TokenRequest& request, absl::Duration min_ttl,
                  absl::Time deadline, TokenResultCallback done) override;

  // Await() with a waiter that cannot be withdrawn, for callbacks that own
  // everything they touch (tests, benchmarks). It waits for a fetch in
  // flight or a new one, but never for a backoff's next try (as if its
  // deadline were now).
  void Get(const TokenRequest& request, absl::Duration min_ttl,
           TokenResultCallback done);

  // Calls `listener` with the current token (fetching one if needed) and then
  // with every new token of `request`, and with the error when a fetch fails
  // and no valid token is left. A watched key is never idle. Returns an id
  // for Unwatch(). `listener` must stay valid until Unwatch() returns.
  uint64_t Watch(const TokenRequest& request, TokenListener listener);
  void Unwatch(uint64_t watch_id);

  // Starts a fetch of `request` now, even if a valid token is cached, and
  // calls `done` with the result (joins a fetch already in flight). The
  // handle withdraws the waiter, as for Await().
  TokenWait AwaitRefresh(const TokenRequest& request, TokenResultCallback done);
  // AwaitRefresh() whose waiter cannot be withdrawn (tests).
  void Refresh(const TokenRequest& request, TokenResultCallback done);

  // Forgets the cached token of `request` if it is still `access_token`
  // (Anypoint answered 401 to it), so that the next Get() fetches a new one
  // (still one fetch per key). A token already replaced is left alone.
  void Invalidate(const TokenRequest& request,
                  absl::string_view access_token) override;

  // Drops every entry of `app`; waiters get CANCELLED. Returns the tokens
  // that were cached (to be revoked upstream).
  std::vector<TokenPtr> DropApp(absl::string_view app);
  // The same for the entries of one user (id) of a user app: its grant was
  // replaced, revoked or refused.
  std::vector<TokenPtr> DropUser(absl::string_view app, absl::string_view user);

  // The earliest time a scheduled refresh is due (InfiniteFuture if none).
  absl::Time NextDue() const;

  // Starts every refresh that is due at the clock's now; evicts idle entries.
  void RunDue();

  // Applies a new policy (config reload) to later decisions.
  void SetPolicy(const CachePolicy& policy);

  std::vector<TokenEntryInfo> Snapshot() const;
  TokenCacheStats stats() const;

 private:
  struct Entry;
  struct Pending;  // Work to do once the lock is released.
  using WaiterPtr = std::shared_ptr<internal::TokenWaiter>;

  // Parks or answers a new waiter; the common part of Await() and Get().
  WaiterPtr Enqueue(const TokenRequest& request, absl::Duration min_ttl,
                    absl::Time deadline, TokenResultCallback done);
  WaiterPtr EnqueueRefresh(const TokenRequest& request,
                           TokenResultCallback done);
  WaiterPtr NewWaiter(const std::string& key, bool accept_valid_on_failure,
                      TokenResultCallback done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `waiter` to `entry`, or answers it RESOURCE_EXHAUSTED when the key
  // has max_waiters_per_key already.
  void Park(Entry& entry, WaiterPtr waiter, Pending& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // internal::WaiterRegistry.
  void Withdraw(const std::string& key, uint64_t id) override;

  Entry& FindOrCreate(const TokenRequest& request, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration EffectiveMinTtl(const Token& token,
                                 absl::Duration min_ttl) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Marks `entry` as fetching and records the fetch to start in `pending`.
  void BeginFetch(Entry& entry, Pending& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Schedule(Entry& entry, absl::Time when, Pending& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unschedule(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFetchDone(const std::string& key, uint64_t generation,
                   absl::StatusOr<Token> result);
  void RunPending(Pending& pending) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<TokenPtr> DropWhere(
      const std::function<bool(const TokenRequest&)>& matches,
      const std::string& message) ABSL_LOCKS_EXCLUDED(mu_);

  TokenSource& source_;
  const Clock& clock_;

  mutable absl::Mutex mu_;
  CachePolicy policy_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ExponentialBackoffPolicy> backoff_prototype_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> entries_
      ABSL_GUARDED_BY(mu_);
  // Refresh timer queue, earliest first.
  std::set<std::pair<absl::Time, std::string>> schedule_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::string> watch_keys_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_waiter_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::function<double()> uniform01_ ABSL_GUARDED_BY(mu_);
  const TokenCacheHooks hooks_;

  // Statistics, updated without the lock.
  std::atomic<int64_t> hits_{0};
  std::atomic<int64_t> waits_{0};
  std::atomic<int64_t> fetches_{0};
  std::atomic<int64_t> fetch_failures_{0};
  std::atomic<int64_t> stale_served_{0};
  std::atomic<int64_t> evictions_{0};
  std::atomic<int64_t> withdrawn_{0};
  std::atomic<int64_t> waiters_refused_{0};
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_TOKEN_CACHE_H_
