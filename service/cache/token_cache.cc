#include "service/cache/token_cache.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/log.h"
#include "service/common/retry_info.h"

namespace tokenbroker {

struct TokenCache::Entry {
  TokenRequest request;
  std::string key;
  TokenPtr token;  // May have expired; Lookup() checks.

  bool fetching = false;
  uint64_t generation = 0;  // Of the fetch in flight; stale results dropped.
  // Parked callers, by waiter id.
  std::map<uint64_t, std::shared_ptr<internal::TokenWaiter>> waiters;

  std::unique_ptr<BackoffPolicy> backoff;  // Set while failing.
  absl::Time retry_not_before = absl::InfinitePast();
  absl::Status last_error;
  absl::Time last_refresh = absl::InfinitePast();
  int64_t refreshes = 0;
  int64_t failures = 0;
  absl::Time scheduled = absl::InfiniteFuture();  // Key in schedule_.

  // Written under the reader lock by hits, hence atomic.
  std::atomic<int64_t> last_access_ns{0};
  std::map<uint64_t, TokenListener> watchers;
};

struct TokenCache::Pending {
  struct Fetch {
    TokenRequest request;
    std::string key;
    uint64_t generation;
  };
  std::vector<Fetch> fetches;
  std::vector<std::pair<std::shared_ptr<internal::TokenWaiter>,
                        absl::StatusOr<TokenPtr>>>
      completions;
  // Answers to callers that were never parked (hits, refusals).
  std::vector<std::pair<TokenResultCallback, absl::StatusOr<TokenPtr>>>
      immediate;
  std::vector<std::pair<TokenListener, absl::StatusOr<TokenPtr>>> notifications;
  bool schedule_changed = false;
  std::vector<std::pair<TokenRequest, absl::Status>> fetch_outcomes;
};

namespace {

// The error a caller sees when no valid token is cached and the key's last
// fetch failed. `waited`: the caller waited for that fetch (otherwise it is
// answered at once, its deadline ending before the next try).
absl::Status CallerError(const TokenRequest& request, const absl::Status& error,
                         absl::Time now, absl::Time retry_not_before,
                         bool waited = false) {
  absl::StatusCode code = error.code();
  // A fetch's own timeout is an upstream outage from the caller's view; the
  // caller's deadline is reported by gRPC itself.
  if (code == absl::StatusCode::kDeadlineExceeded ||
      code == absl::StatusCode::kCancelled) {
    code = absl::StatusCode::kUnavailable;
  }
  std::string message(error.message());
  if (retry_not_before > now) {
    absl::StrAppend(
        &message, " (no valid token cached for app ", request.app,
        waited ? "; the upstream try this call waited for failed, the next is "
                 "in "
               : "; next upstream try in ",
        absl::FormatDuration(
            absl::Ceil(retry_not_before - now, absl::Seconds(1))),
        ")");
  }
  return absl::Status(code, message);
}

// Rejected credentials (or an unknown app): retrying soon cannot help.
bool IsRejection(const absl::Status& error) {
  return error.code() == absl::StatusCode::kFailedPrecondition ||
         error.code() == absl::StatusCode::kNotFound;
}

}  // namespace

std::string CacheKey(const TokenRequest& request) {
  // '\x1f' (unit separator) cannot appear in app names or scopes, so the
  // first two separators are always where the app and the scopes end and
  // the user id (last, whatever it holds) cannot make two keys collide.
  if (request.user.empty()) {
    return absl::StrCat(request.app, "\x1f",
                        absl::StrJoin(request.scopes, " "));
  }
  return absl::StrCat(request.app, "\x1f", absl::StrJoin(request.scopes, " "),
                      "\x1f", request.user);
}

TokenCache::TokenCache(TokenSource& source, const Clock& clock,
                       CachePolicy policy, std::function<double()> uniform01,
                       TokenCacheHooks hooks)
    : source_(source),
      clock_(clock),
      policy_(policy),
      hooks_(std::move(hooks)) {
  absl::MutexLock lock(&mu_);
  uniform01_ = uniform01 ? std::move(uniform01) : RandomUniform01;
  backoff_prototype_ = std::make_unique<ExponentialBackoffPolicy>(
      policy_.backoff_base, policy_.backoff_max, uniform01_);
}

TokenCache::~TokenCache() {
  // Fetches still in flight report to a cache that is gone: their owner
  // (the HTTP client) must be stopped first. Waiters still parked are
  // answered here, and their handles no longer reach this cache.
  std::vector<WaiterPtr> waiters;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, entry] : entries_) {
      for (auto& [id, waiter] : entry->waiters) waiters.push_back(waiter);
      entry->waiters.clear();
    }
  }
  for (const WaiterPtr& waiter : waiters) {
    waiter->Detach();
    waiter->Complete(absl::CancelledError(
        "the broker is shutting down; no token was fetched"));
  }
}

TokenCache::WaiterPtr TokenCache::NewWaiter(const std::string& key,
                                            bool accept_valid_on_failure,
                                            TokenResultCallback done) {
  internal::WaiterRegistry* registry = this;
  return std::make_shared<internal::TokenWaiter>(std::move(done), registry, key,
                                                 next_waiter_id_++,
                                                 accept_valid_on_failure);
}

void TokenCache::Park(Entry& entry, WaiterPtr waiter, Pending& pending) {
  if (static_cast<int>(entry.waiters.size()) >= policy_.max_waiters_per_key) {
    waiters_refused_.fetch_add(1, std::memory_order_relaxed);
    pending.completions.emplace_back(
        std::move(waiter),
        absl::ResourceExhaustedError(absl::StrCat(
            "too many callers are waiting for a token of app ",
            entry.request.app, " (cache.max_waiters_per_key = ",
            policy_.max_waiters_per_key, "); retry with backoff")));
    return;
  }
  waits_.fetch_add(1, std::memory_order_relaxed);
  uint64_t id = waiter->id();
  entry.waiters.emplace(id, std::move(waiter));
}

void TokenCache::Withdraw(const std::string& key, uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  if (it->second->waiters.erase(id) > 0) {
    withdrawn_.fetch_add(1, std::memory_order_relaxed);
  }
}

void TokenCache::SetPolicy(const CachePolicy& policy) {
  absl::MutexLock lock(&mu_);
  policy_ = policy;
  backoff_prototype_ = std::make_unique<ExponentialBackoffPolicy>(
      policy_.backoff_base, policy_.backoff_max, uniform01_);
}

absl::Duration TokenCache::EffectiveMinTtl(const Token& token,
                                           absl::Duration min_ttl) const {
  // Half of what a token has left at its latest refresh point: demanding
  // more would make every call on a short-lived token a miss, and the other
  // half leaves the refresher time to replace the token before callers must
  // wait for it.
  double left_fraction =
      1.0 - policy_.refresh_fraction * (1.0 + policy_.refresh_jitter);
  absl::Duration cap =
      (token.expires_at - token.issued_at) * (std::max(0.0, left_fraction) / 2);
  return std::min(min_ttl, cap);
}

TokenPtr TokenCache::Lookup(absl::string_view key, absl::Duration min_ttl) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  Entry& entry = *it->second;
  if (entry.token == nullptr) return nullptr;
  absl::Time now = clock_.Now();
  if (entry.token->expires_at - now < EffectiveMinTtl(*entry.token, min_ttl)) {
    return nullptr;
  }
  entry.last_access_ns.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return entry.token;
}

TokenCache::Entry& TokenCache::FindOrCreate(const TokenRequest& request,
                                            absl::Time now) {
  std::string key = CacheKey(request);
  auto [it, inserted] = entries_.try_emplace(key);
  if (inserted) {
    it->second = std::make_unique<Entry>();
    it->second->request = request;
    it->second->key = std::move(key);
  }
  it->second->last_access_ns.store(absl::ToUnixNanos(now),
                                   std::memory_order_relaxed);
  return *it->second;
}

void TokenCache::BeginFetch(Entry& entry, Pending& pending) {
  entry.fetching = true;
  entry.generation = next_generation_++;
  Unschedule(entry);
  fetches_.fetch_add(1, std::memory_order_relaxed);
  pending.fetches.push_back({entry.request, entry.key, entry.generation});
}

void TokenCache::Schedule(Entry& entry, absl::Time when, Pending& pending) {
  Unschedule(entry);
  entry.scheduled = when;
  schedule_.emplace(when, entry.key);
  pending.schedule_changed = true;
}

void TokenCache::Unschedule(Entry& entry) {
  if (entry.scheduled == absl::InfiniteFuture()) return;
  schedule_.erase({entry.scheduled, entry.key});
  entry.scheduled = absl::InfiniteFuture();
}

TokenWait TokenCache::Await(const TokenRequest& request, absl::Duration min_ttl,
                            absl::Time deadline, TokenResultCallback done) {
  return TokenWait(Enqueue(request, min_ttl, deadline, std::move(done)));
}

void TokenCache::Get(const TokenRequest& request, absl::Duration min_ttl,
                     TokenResultCallback done) {
  Enqueue(request, min_ttl, clock_.Now(), std::move(done));
}

TokenCache::WaiterPtr TokenCache::Enqueue(const TokenRequest& request,
                                          absl::Duration min_ttl,
                                          absl::Time deadline,
                                          TokenResultCallback done) {
  std::string key = CacheKey(request);
  if (TokenPtr token = Lookup(key, min_ttl)) {
    done(std::move(token));
    return nullptr;
  }
  Pending pending;
  WaiterPtr parked;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_.Now();
    Entry& entry = FindOrCreate(request, now);
    bool valid = entry.token != nullptr && entry.token->expires_at > now;
    if (valid && entry.token->expires_at - now >=
                     EffectiveMinTtl(*entry.token, min_ttl)) {
      // Another caller's fetch completed between Lookup() and here.
      hits_.fetch_add(1, std::memory_order_relaxed);
      pending.immediate.emplace_back(std::move(done), entry.token);
    } else if (now < entry.retry_not_before && !entry.fetching &&
               (valid || deadline <= entry.retry_not_before ||
                IsRejection(entry.last_error))) {
      // Backing off, and this caller cannot (or need not) wait for the next
      // try: answer now rather than add upstream traffic.
      if (valid) {
        stale_served_.fetch_add(1, std::memory_order_relaxed);
        pending.immediate.emplace_back(std::move(done), entry.token);
      } else {
        pending.immediate.emplace_back(
            std::move(done), CallerError(entry.request, entry.last_error, now,
                                         entry.retry_not_before));
      }
    } else {
      // Waits for the fetch in flight, a new one, or (backing off) the one
      // scheduled at retry_not_before.
      parked = NewWaiter(entry.key, /*accept_valid_on_failure=*/true,
                         std::move(done));
      Park(entry, parked, pending);
      if (!entry.fetching && now >= entry.retry_not_before) {
        BeginFetch(entry, pending);
      }
    }
  }
  RunPending(pending);
  return parked;
}

TokenWait TokenCache::AwaitRefresh(const TokenRequest& request,
                                   TokenResultCallback done) {
  return TokenWait(EnqueueRefresh(request, std::move(done)));
}

void TokenCache::Refresh(const TokenRequest& request,
                         TokenResultCallback done) {
  EnqueueRefresh(request, std::move(done));
}

TokenCache::WaiterPtr TokenCache::EnqueueRefresh(const TokenRequest& request,
                                                 TokenResultCallback done) {
  Pending pending;
  WaiterPtr waiter;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = FindOrCreate(request, clock_.Now());
    waiter = NewWaiter(entry.key, /*accept_valid_on_failure=*/false,
                       std::move(done));
    Park(entry, waiter, pending);
    if (!entry.fetching) BeginFetch(entry, pending);
  }
  RunPending(pending);
  return waiter;
}

uint64_t TokenCache::Watch(const TokenRequest& request,
                           TokenListener listener) {
  Pending pending;
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_.Now();
    Entry& entry = FindOrCreate(request, now);
    id = next_watch_id_++;
    entry.watchers.emplace(id, listener);
    watch_keys_.emplace(id, entry.key);
    if (entry.token != nullptr && entry.token->expires_at > now) {
      pending.notifications.emplace_back(listener, entry.token);
    } else if (entry.fetching) {
      // Notified when the fetch completes.
    } else if (now < entry.retry_not_before) {
      pending.notifications.emplace_back(
          listener, CallerError(entry.request, entry.last_error, now,
                                entry.retry_not_before));
    } else {
      BeginFetch(entry, pending);
    }
  }
  RunPending(pending);
  return id;
}

void TokenCache::Unwatch(uint64_t watch_id) {
  absl::MutexLock lock(&mu_);
  auto id_it = watch_keys_.find(watch_id);
  if (id_it == watch_keys_.end()) return;
  auto it = entries_.find(id_it->second);
  if (it != entries_.end()) {
    it->second->watchers.erase(watch_id);
    // The idle period starts when the last watcher leaves.
    it->second->last_access_ns.store(absl::ToUnixNanos(clock_.Now()),
                                     std::memory_order_relaxed);
  }
  watch_keys_.erase(id_it);
}

void TokenCache::Invalidate(const TokenRequest& request,
                            absl::string_view access_token) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(CacheKey(request));
  if (it == entries_.end()) return;
  Entry& entry = *it->second;
  if (entry.token != nullptr && entry.token->access_token == access_token) {
    LogInfo("dropping a token the server rejected",
            {{"app", request.app}, {"token", TokenFingerprint(access_token)}});
    entry.token = nullptr;
  }
}

std::vector<TokenPtr> TokenCache::DropApp(absl::string_view app) {
  return DropWhere(
      [app](const TokenRequest& request) { return request.app == app; },
      absl::StrCat("the token of app ", app,
                   " was revoked; ask again for a new one"));
}

std::vector<TokenPtr> TokenCache::DropUser(absl::string_view app,
                                           absl::string_view user) {
  return DropWhere(
      [app, user](const TokenRequest& request) {
        return request.app == app && request.user == user;
      },
      absl::StrCat("the user's grant of app ", app,
                   " changed or was revoked; ask again"));
}

std::vector<TokenPtr> TokenCache::DropWhere(
    const std::function<bool(const TokenRequest&)>& matches,
    const std::string& message) {
  std::vector<TokenPtr> dropped;
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> keys;
    for (const auto& [key, entry] : entries_) {
      if (matches(entry->request)) keys.push_back(key);
    }
    const absl::Status revoked = absl::AbortedError(message);
    for (const std::string& key : keys) {
      auto it = entries_.find(key);
      Entry& entry = *it->second;
      if (entry.token != nullptr) dropped.push_back(entry.token);
      for (auto& [id, waiter] : entry.waiters) {
        pending.completions.emplace_back(std::move(waiter), revoked);
      }
      for (auto& [id, listener] : entry.watchers) {
        pending.notifications.emplace_back(listener, revoked);
        watch_keys_.erase(id);
      }
      Unschedule(entry);
      entries_.erase(it);
    }
  }
  RunPending(pending);
  return dropped;
}

absl::Time TokenCache::NextDue() const {
  absl::MutexLock lock(&mu_);
  return schedule_.empty() ? absl::InfiniteFuture() : schedule_.begin()->first;
}

void TokenCache::RunDue() {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_.Now();
    while (!schedule_.empty() && schedule_.begin()->first <= now) {
      std::string key = schedule_.begin()->second;
      schedule_.erase(schedule_.begin());
      auto it = entries_.find(key);
      if (it == entries_.end()) continue;
      Entry& entry = *it->second;
      entry.scheduled = absl::InfiniteFuture();
      if (entry.fetching) continue;
      absl::Time last_access = absl::FromUnixNanos(
          entry.last_access_ns.load(std::memory_order_relaxed));
      if (entry.watchers.empty() && entry.waiters.empty() &&
          now - last_access >= policy_.idle_evict_after) {
        LogDebug("evicting idle token", {{"app", entry.request.app}});
        evictions_.fetch_add(1, std::memory_order_relaxed);
        entries_.erase(it);
        continue;
      }
      BeginFetch(entry, pending);
    }
  }
  RunPending(pending);
}

void TokenCache::OnFetchDone(const std::string& key, uint64_t generation,
                             absl::StatusOr<Token> result) {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second->fetching ||
        it->second->generation != generation) {
      return;  // Dropped (revoked or evicted) while the fetch was in flight.
    }
    Entry& entry = *it->second;
    absl::Time now = clock_.Now();
    entry.fetching = false;
    pending.fetch_outcomes.emplace_back(entry.request, result.status());
    std::map<uint64_t, WaiterPtr> waiters = std::move(entry.waiters);
    entry.waiters.clear();

    if (result.ok()) {
      if (result->fingerprint.empty()) {
        result->fingerprint = TokenFingerprint(result->access_token);
      }
      auto token = std::make_shared<const Token>(*std::move(result));
      entry.token = token;
      entry.last_refresh = now;
      ++entry.refreshes;
      entry.last_error = absl::OkStatus();
      entry.backoff.reset();
      entry.retry_not_before = absl::InfinitePast();
      absl::Duration lifetime = token->expires_at - token->issued_at;
      double jitter = policy_.refresh_jitter * (2.0 * uniform01_() - 1.0);
      // However short the token's life, never refresh sooner than the
      // backoff floor: a token endpoint answering tiny lifetimes must not
      // turn the refresher into a loop.
      absl::Time refresh_at =
          std::max(token->issued_at +
                       lifetime * (policy_.refresh_fraction * (1.0 + jitter)),
                   now + policy_.backoff_base);
      Schedule(entry, refresh_at, pending);
      for (auto& [id, waiter] : waiters) {
        pending.completions.emplace_back(std::move(waiter), token);
      }
      for (const auto& [id, listener] : entry.watchers) {
        pending.notifications.emplace_back(listener, token);
      }
    } else {
      fetch_failures_.fetch_add(1, std::memory_order_relaxed);
      ++entry.failures;
      const absl::Status& error = result.status();
      absl::Duration delay;
      if (IsRejection(error)) {
        // Retrying rejected credentials soon cannot help and may lock the
        // client out; a config reload starts afresh.
        delay = policy_.rejected_retry;
      } else {
        if (entry.backoff == nullptr)
          entry.backoff = backoff_prototype_->clone();
        delay = entry.backoff->OnCompletion();
      }
      if (std::optional<absl::Duration> retry_after = GetRetryAfter(error)) {
        delay = std::max(delay, *retry_after);
      }
      entry.last_error = absl::Status(error.code(), error.message());
      entry.retry_not_before = now + delay;
      Schedule(entry, now + delay, pending);
      LogWarning("token fetch failed",
                 {{"app", entry.request.app},
                  {"error", std::string(error.message())},
                  {"code", absl::StatusCodeToString(error.code())},
                  {"retry_in_ms", absl::ToInt64Milliseconds(delay)}});

      bool valid = entry.token != nullptr && entry.token->expires_at > now;
      absl::Status caller_error =
          CallerError(entry.request, entry.last_error, now,
                      entry.retry_not_before, /*waited=*/true);
      for (auto& [id, waiter] : waiters) {
        if (valid && waiter->accept_valid_on_failure()) {
          stale_served_.fetch_add(1, std::memory_order_relaxed);
          pending.completions.emplace_back(std::move(waiter), entry.token);
        } else {
          pending.completions.emplace_back(std::move(waiter), caller_error);
        }
      }
      if (!valid) {
        for (const auto& [id, listener] : entry.watchers) {
          pending.notifications.emplace_back(listener, caller_error);
        }
      }
    }
  }
  RunPending(pending);
}

void TokenCache::RunPending(Pending& pending) {
  // Observers first, so that health reflects a fetch before its waiters see
  // the result.
  if (hooks_.on_fetch) {
    for (const auto& [request, status] : pending.fetch_outcomes) {
      hooks_.on_fetch(request, status);
    }
  }
  for (auto& [done, result] : pending.immediate) done(std::move(result));
  // A waiter withdrawn meanwhile is skipped by Complete().
  for (auto& [waiter, result] : pending.completions) {
    waiter->Complete(std::move(result));
  }
  for (auto& [listener, result] : pending.notifications) listener(result);
  for (auto& fetch : pending.fetches) {
    source_.Fetch(fetch.request,
                  [this, key = fetch.key, generation = fetch.generation](
                      absl::StatusOr<Token> result) {
                    OnFetchDone(key, generation, std::move(result));
                  });
  }
  if (pending.schedule_changed && hooks_.on_schedule) hooks_.on_schedule();
}

std::vector<TokenEntryInfo> TokenCache::Snapshot() const {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_.Now();
  std::vector<TokenEntryInfo> infos;
  infos.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) {
    TokenEntryInfo info;
    info.app = entry->request.app;
    info.scopes = entry->request.scopes;
    info.user = entry->request.user;
    if (entry->token != nullptr) {
      info.valid = entry->token->expires_at > now;
      info.valid_until = entry->token->expires_at;
      info.token_fingerprint = entry->token->fingerprint;
    }
    info.last_refresh = entry->last_refresh;
    info.next_refresh = entry->scheduled;
    info.last_error = entry->last_error;
    info.refreshes = entry->refreshes;
    info.failures = entry->failures;
    infos.push_back(std::move(info));
  }
  std::sort(infos.begin(), infos.end(),
            [](const TokenEntryInfo& a, const TokenEntryInfo& b) {
              return std::tie(a.app, a.scopes) < std::tie(b.app, b.scopes);
            });
  return infos;
}

TokenCacheStats TokenCache::stats() const {
  TokenCacheStats s;
  s.hits = hits_.load();
  s.waits = waits_.load();
  s.fetches = fetches_.load();
  s.fetch_failures = fetch_failures_.load();
  s.stale_served = stale_served_.load();
  s.evictions = evictions_.load();
  s.withdrawn = withdrawn_.load();
  s.waiters_refused = waiters_refused_.load();
  return s;
}

}  // namespace tokenbroker
