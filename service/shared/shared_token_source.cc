#include "service/shared/shared_token_source.h"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/cache/token_cache.h"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/common/retry_info.h"
#include "service/common/token_fingerprint.h"
#include "service/shared/lifetime_gate.h"
#include "service/shared/shared_keys.h"
#include "service/shared/shared_scripts.h"
#include "service/shared/token_record.h"

namespace tokenbroker {
namespace internal {
namespace {

// How often a degraded source checks whether Redis answers again.
constexpr absl::Duration kProbeInterval = absl::Seconds(1);

// 128 random bits per process: lease owner ids are this plus an attempt
// number, unique across replicas and restarts.
const std::string& ProcessOwnerId() {
  static const std::string* id = [] {
    unsigned char bytes[16] = {};
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
      // Only uniqueness matters here, not secrecy: fall back on the
      // address space layout and the time.
      uint64_t a = reinterpret_cast<uintptr_t>(&bytes);
      uint64_t b = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
      std::memcpy(bytes, &a, sizeof(a));
      std::memcpy(bytes + 8, &b, sizeof(b));
    }
    return new std::string(absl::BytesToHexString(absl::string_view(
        reinterpret_cast<const char*>(bytes), sizeof(bytes))));
  }();
  return *id;
}

bool IsArrayOf(const RedisReply& reply, size_t n) {
  return reply.type == RedisReply::Type::kArray && reply.elements.size() == n;
}

// The error a waiting replica answers when the lease holder's fetch failed:
// the same kind (a rejection stays a rejection, so the cache waits
// rejected_retry), with the holder's retry delay, without its message.
absl::Status HolderFailure(int code, absl::Duration retry_after) {
  absl::Status status;
  if (static_cast<absl::StatusCode>(code) ==
      absl::StatusCode::kFailedPrecondition) {
    status = absl::FailedPreconditionError(
        "another broker replica's token request for this app was rejected "
        "by the authorization server; see that replica's log");
  } else {
    status = absl::UnavailableError(absl::StrCat(
        "another broker replica's token request for this app failed (",
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code)),
        "); retry in ", absl::FormatDuration(retry_after)));
  }
  SetRetryAfter(status, retry_after);
  return status;
}

// Failures the waiting replicas share. Not a shutdown (CANCELLED), and not
// an app this replica's configuration lacks (NOT_FOUND): another replica's
// may have it, so they take the lease in turn.
bool IsSharedFailure(absl::StatusCode code) {
  return code != absl::StatusCode::kCancelled &&
         code != absl::StatusCode::kNotFound && code != absl::StatusCode::kOk;
}

}  // namespace

// What this replica last adopted or wrote for a cache key.
struct Baseline {
  int64_t fence = 0;
  std::string fingerprint;
};

// One Fetch() in progress. Its mutable fields are guarded by the core's mu.
struct FetchOp {
  uint64_t id = 0;
  TokenRequest request;
  std::string cache_key;
  std::string hash;
  std::string token_key;
  std::string lease_key;
  std::string fence_key;
  std::string app_field;
  std::string user_field;  // "" for an app's own token.
  Baseline baseline;
  SharedTokenPolicy policy;

  TokenCallback done;
  bool answered = false;
  bool waiting = false;   // On another replica's lease.
  bool checking = false;  // A read or lease command in flight.
  bool recheck = false;   // A "token" message came while checking.
  absl::Time wait_deadline;
  TimerQueue::TimerId timer = 0;  // Poll (waiting) or renewal (holding).
  int64_t revgen = 0;             // As read before the lease was taken.
  int64_t seen_fence = 0;         // Of the record that read found (0: none).
  std::string unreadable;         // That record, if it did not open.
  std::string lease_value;        // "<owner>:<fence>" while we hold it.
  int64_t fence = 0;
  bool fetching = false;  // Upstream, under the lease.
};

struct SharedFetchCore {
  SharedFetchCore(TokenSource& upstream, RedisClient& redis,
                  std::shared_ptr<const KeyRing> keys, std::string prefix,
                  const Clock& clock, TimerQueue& timers,
                  SharedTokenPolicy policy)
      : upstream(upstream),
        redis(redis),
        names(std::move(prefix)),
        clock(clock),
        timers(timers),
        keys(std::move(keys)),
        policy(policy) {}

  void Fetch(const TokenRequest& request, TokenCallback done);
  void Shutdown();

  void Check(const std::shared_ptr<FetchOp>& op);
  void OnRead(const std::shared_ptr<FetchOp>& op,
              absl::StatusOr<RedisReply> reply);
  bool Adoptable(const FetchOp& op, const TokenRecord& record,
                 int64_t revgen) const;
  void TryAcquire(const std::shared_ptr<FetchOp>& op);
  void OnLease(const std::shared_ptr<FetchOp>& op, const std::string& owner,
               absl::StatusOr<RedisReply> reply);
  void Wait(const std::shared_ptr<FetchOp>& op);
  void OnPoll(const std::shared_ptr<FetchOp>& op);
  void Renew(const std::shared_ptr<FetchOp>& op);
  void OnUpstream(const std::shared_ptr<FetchOp>& op,
                  absl::StatusOr<Token> result);
  void Release(const std::string& lease_key, const std::string& lease_value);
  void FetchDirect(const std::shared_ptr<FetchOp>& op, bool degraded);
  void Answer(const std::shared_ptr<FetchOp>& op, absl::StatusOr<Token> result);
  void OnMessage(const std::string& payload);

  void StopWaiting(FetchOp& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void RedisFailed(const absl::Status& status);
  void MarkDegraded(const absl::Status& status);
  void RedisWorked();
  void Probe();

  template <typename Fn>
  auto Guarded(const std::shared_ptr<FetchOp>& op, Fn fn) {
    return [weak = self, op, fn = std::move(fn)](auto&&... args) mutable {
      WithLiveCore(weak, [&](SharedFetchCore& core) {
        fn(core, op, std::forward<decltype(args)>(args)...);
      });
    };
  }

  LifetimeGate gate;
  std::weak_ptr<SharedFetchCore> self;
  TokenSource& upstream;
  RedisClient& redis;
  const SharedKeys names;
  const Clock& clock;
  TimerQueue& timers;
  std::atomic<uint64_t> attempts{0};

  mutable absl::Mutex mu;
  std::shared_ptr<const KeyRing> keys ABSL_GUARDED_BY(mu);
  SharedTokenPolicy policy ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uint64_t, std::shared_ptr<FetchOp>> ops
      ABSL_GUARDED_BY(mu);
  // Token key -> ids of the fetches waiting on its lease.
  absl::flat_hash_map<std::string, absl::flat_hash_set<uint64_t>> waiting
      ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, Baseline> last ABSL_GUARDED_BY(mu);
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  bool degraded ABSL_GUARDED_BY(mu) = false;
  bool probing ABSL_GUARDED_BY(mu) = false;

  std::atomic<int64_t> adopted{0};
  std::atomic<int64_t> leases_won{0};
  std::atomic<int64_t> waited{0};
  std::atomic<int64_t> takeovers{0};
  std::atomic<int64_t> fenced_out{0};
  std::atomic<int64_t> revoked_writes{0};
  std::atomic<int64_t> degraded_fetches{0};
  std::atomic<int64_t> wait_timeouts{0};
  std::atomic<int64_t> holder_failures{0};
  std::atomic<int64_t> leases_lost{0};
  std::atomic<int64_t> redis_errors{0};
  std::atomic<int64_t> unreadable_records{0};
};

void SharedFetchCore::Fetch(const TokenRequest& request, TokenCallback done) {
  if (!gate.Enter()) {
    done(absl::CancelledError(
        "the broker is shutting down; no token was fetched"));
    return;
  }
  auto op = std::make_shared<FetchOp>();
  op->request = request;
  op->cache_key = CacheKey(request);
  op->hash = SharedKeys::KeyHash(op->cache_key);
  op->token_key = names.Token(request.app, op->hash);
  op->lease_key = names.Lease(request.app, op->hash);
  op->fence_key = names.Fence(request.app, op->hash);
  op->app_field = SharedKeys::RevgenField(request.app);
  if (!request.user.empty()) {
    op->user_field = SharedKeys::RevgenUserField(request.app, request.user);
  }
  op->done = std::move(done);
  {
    absl::MutexLock lock(&mu);
    op->id = next_id++;
    op->policy = policy;
    auto it = last.find(op->cache_key);
    if (it != last.end()) op->baseline = it->second;
    ops.emplace(op->id, op);
  }
  if (!redis.stats().connected) {
    // No command_timeout per fetch while Redis is known to be away.
    MarkDegraded(absl::UnavailableError("Redis is not connected"));
    FetchDirect(op, /*degraded=*/true);
  } else {
    Check(op);
  }
  gate.Exit();
}

void SharedFetchCore::Check(const std::shared_ptr<FetchOp>& op) {
  {
    absl::MutexLock lock(&mu);
    if (op->answered) return;
    op->checking = true;
    op->recheck = false;
  }
  redis.Eval(
      kReadTokenScript, {op->token_key, names.Revgen()},
      {op->app_field, op->user_field},
      Guarded(op, [](SharedFetchCore& core, const std::shared_ptr<FetchOp>& op,
                     absl::StatusOr<RedisReply> reply) {
        core.OnRead(op, std::move(reply));
      }));
}

void SharedFetchCore::OnRead(const std::shared_ptr<FetchOp>& op,
                             absl::StatusOr<RedisReply> reply) {
  if (reply.ok() && (!IsArrayOf(*reply, 2) ||
                     reply->elements[1].type != RedisReply::Type::kInteger)) {
    reply = absl::InternalError("unexpected answer to the token read script");
  }
  if (!reply.ok()) {
    RedisFailed(reply.status());
    FetchDirect(op, /*degraded=*/true);
    return;
  }
  RedisWorked();
  const int64_t revgen = reply->elements[1].integer;
  std::shared_ptr<const KeyRing> ring;
  {
    absl::MutexLock lock(&mu);
    if (op->answered) return;
    op->revgen = revgen;
    op->seen_fence = 0;
    op->unreadable.clear();
    ring = keys;
  }
  RedisReply& stored = reply->elements[0];
  if (stored.type == RedisReply::Type::kString) {
    {
      absl::MutexLock lock(&mu);
      op->seen_fence = StoredRecordFence(stored.str);
    }
    absl::StatusOr<TokenRecord> record =
        OpenTokenRecord(*ring, op->token_key, stored.str);
    if (record.ok() && record->cache_key != op->cache_key) {
      ClearSecret(&record->token.access_token);
      record = absl::DataLossError(
          "shared token record: it belongs to another cache key");
    }
    if (!record.ok()) {
      {
        absl::MutexLock lock(&mu);
        op->unreadable = std::move(stored.str);
      }
      // Sealed with a key this replica lacks (a rotation under way), or
      // damaged: fetch anew; the write replaces it.
      unreadable_records.fetch_add(1, std::memory_order_relaxed);
      LogWarning("shared token record unreadable; fetching anew",
                 {{"app", op->request.app},
                  {"code", absl::StatusCodeToString(record.status().code())},
                  {"error", std::string(record.status().message())}});
    } else if (Adoptable(*op, *record, revgen)) {
      adopted.fetch_add(1, std::memory_order_relaxed);
      {
        absl::MutexLock lock(&mu);
        last[op->cache_key] = {record->fence,
                               TokenFingerprint(record->token.access_token)};
      }
      Answer(op, std::move(record->token));
      return;
    } else {
      ClearSecret(&record->token.access_token);
    }
  }
  TryAcquire(op);
}

bool SharedFetchCore::Adoptable(const FetchOp& op, const TokenRecord& record,
                                int64_t revgen) const {
  if (record.revgen != revgen) return false;
  const Token& token = record.token;
  absl::Time now = clock.Now();
  absl::Time refresh_at =
      token.issued_at +
      (token.expires_at - token.issued_at) * op.policy.refresh_fraction;
  if (now >= token.expires_at || now >= refresh_at) return false;
  if (record.fence > op.baseline.fence) return true;
  // A fence not above ours with another token than ours means Redis lost
  // its data (the counter started again; one fence is one holder's one
  // write, so an equal fence with another token cannot happen otherwise):
  // that token is newer than ours.
  return record.fence <= op.baseline.fence &&
         TokenFingerprint(token.access_token) != op.baseline.fingerprint;
}

void SharedFetchCore::TryAcquire(const std::shared_ptr<FetchOp>& op) {
  std::string owner = absl::StrCat(
      ProcessOwnerId(), ".", attempts.fetch_add(1, std::memory_order_relaxed));
  int64_t seen_fence = 0;
  {
    absl::MutexLock lock(&mu);
    seen_fence = op->seen_fence;
  }
  redis.Eval(
      kAcquireLeaseScript, {op->lease_key, op->fence_key, op->token_key},
      {owner, absl::StrCat(absl::ToInt64Milliseconds(op->policy.lease_ttl)),
       absl::StrCat(seen_fence)},
      Guarded(op,
              [owner](SharedFetchCore& core, const std::shared_ptr<FetchOp>& op,
                      absl::StatusOr<RedisReply> reply) {
                core.OnLease(op, owner, std::move(reply));
              }));
}

void SharedFetchCore::OnLease(const std::shared_ptr<FetchOp>& op,
                              const std::string& owner,
                              absl::StatusOr<RedisReply> reply) {
  if (reply.ok() && (!IsArrayOf(*reply, 2) ||
                     reply->elements[0].type != RedisReply::Type::kInteger ||
                     reply->elements[1].type != RedisReply::Type::kInteger)) {
    reply = absl::InternalError("unexpected answer to the lease script");
  }
  if (!reply.ok()) {
    RedisFailed(reply.status());
    FetchDirect(op, /*degraded=*/true);
    return;
  }
  RedisWorked();
  if (reply->elements[0].integer == 2) {
    Check(op);  // A record was stored since the read: maybe adoptable.
    return;
  }
  if (reply->elements[0].integer != 1) {
    Wait(op);
    return;
  }
  const int64_t fence = reply->elements[1].integer;
  std::string lease_value = absl::StrCat(owner, ":", fence);
  bool was_waiting = false;
  bool holding = false;
  {
    absl::MutexLock lock(&mu);
    if (!op->answered) {
      holding = true;
      was_waiting = op->waiting;
      StopWaiting(*op);
      op->checking = false;
      op->fence = fence;
      op->lease_value = lease_value;
      op->fetching = true;
      op->timer = timers.Schedule(
          op->policy.lease_ttl / 3,
          Guarded(op,
                  [](SharedFetchCore& core,
                     const std::shared_ptr<FetchOp>& op) { core.Renew(op); }));
    }
  }
  if (!holding) {
    // Answered meanwhile (another replica's failure): give the lease back.
    Release(op->lease_key, lease_value);
    return;
  }
  leases_won.fetch_add(1, std::memory_order_relaxed);
  if (was_waiting) takeovers.fetch_add(1, std::memory_order_relaxed);
  upstream.Fetch(op->request, Guarded(op, [](SharedFetchCore& core,
                                             const std::shared_ptr<FetchOp>& op,
                                             absl::StatusOr<Token> result) {
                   core.OnUpstream(op, std::move(result));
                 }));
}

void SharedFetchCore::Wait(const std::shared_ptr<FetchOp>& op) {
  bool alone = false;
  bool again = false;
  {
    absl::MutexLock lock(&mu);
    if (op->answered) return;
    op->checking = false;
    absl::Time now = clock.Now();
    if (!op->waiting) {
      op->waiting = true;
      op->wait_deadline = now + 2 * op->policy.lease_ttl;
      waiting[op->token_key].insert(op->id);
      waited.fetch_add(1, std::memory_order_relaxed);
    } else if (now >= op->wait_deadline) {
      alone = true;
    }
    if (!alone) {
      if (op->recheck) {
        again = true;
      } else {
        op->timer =
            timers.Schedule(op->policy.poll_interval,
                            Guarded(op, [](SharedFetchCore& core,
                                           const std::shared_ptr<FetchOp>& op) {
                              core.OnPoll(op);
                            }));
      }
    }
  }
  if (alone) {
    wait_timeouts.fetch_add(1, std::memory_order_relaxed);
    LogWarning(
        "waited two lease lifetimes on another broker replica's token "
        "fetch; fetching alone",
        {{"app", op->request.app},
         {"lease_ttl_ms", absl::ToInt64Milliseconds(op->policy.lease_ttl)}});
    FetchDirect(op, /*degraded=*/false);
  } else if (again) {
    Check(op);
  }
}

void SharedFetchCore::OnPoll(const std::shared_ptr<FetchOp>& op) {
  {
    absl::MutexLock lock(&mu);
    op->timer = 0;
    if (op->answered || !op->waiting || op->checking) return;
  }
  Check(op);
}

void SharedFetchCore::OnMessage(const std::string& payload) {
  std::optional<SharedMessage> message = ParseSharedMessage(payload);
  if (!message || (message->type != SharedMessage::Type::kToken &&
                   message->type != SharedMessage::Type::kFailed)) {
    return;
  }
  // A failure this replica shares answers the waiting fetches; any other
  // message makes them look again.
  const bool fail =
      message->type == SharedMessage::Type::kFailed &&
      IsSharedFailure(static_cast<absl::StatusCode>(message->code));
  std::string token_key = names.Token(message->app, message->hash);
  std::vector<std::shared_ptr<FetchOp>> affected;
  {
    absl::MutexLock lock(&mu);
    auto it = waiting.find(token_key);
    if (it == waiting.end()) return;
    for (uint64_t id : it->second) {
      auto found = ops.find(id);
      if (found == ops.end()) continue;
      FetchOp& op = *found->second;
      if (!fail && op.checking) {
        op.recheck = true;  // Wait() checks again at once.
        continue;
      }
      if (op.timer != 0) {
        timers.Cancel(op.timer);
        op.timer = 0;
      }
      affected.push_back(found->second);
    }
  }
  for (const auto& op : affected) {
    if (fail) {
      holder_failures.fetch_add(1, std::memory_order_relaxed);
      Answer(op,
             HolderFailure(message->code, absl::Milliseconds(message->number)));
    } else {
      Check(op);
    }
  }
}

void SharedFetchCore::Renew(const std::shared_ptr<FetchOp>& op) {
  std::string lease_value;
  {
    absl::MutexLock lock(&mu);
    op->timer = 0;
    if (!op->fetching) return;
    lease_value = op->lease_value;
  }
  redis.Eval(
      kRenewLeaseScript, {op->lease_key},
      {lease_value,
       absl::StrCat(absl::ToInt64Milliseconds(op->policy.lease_ttl))},
      Guarded(op, [](SharedFetchCore& core, const std::shared_ptr<FetchOp>& op,
                     absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) {
          // The write's fence compare still protects newer tokens; keep
          // trying while the fetch runs.
          core.RedisFailed(reply.status());
        } else if (reply->type == RedisReply::Type::kInteger &&
                   reply->integer == 0) {
          core.leases_lost.fetch_add(1, std::memory_order_relaxed);
          LogWarning(
              "a token fetch outlived its lease; another replica may fetch "
              "too, and the older token will not overwrite the newer",
              {{"app", op->request.app}});
          return;
        } else {
          core.RedisWorked();
        }
        absl::MutexLock lock(&core.mu);
        if (!op->fetching) return;
        op->timer = core.timers.Schedule(
            op->policy.lease_ttl / 3,
            core.Guarded(op, [](SharedFetchCore& core,
                                const std::shared_ptr<FetchOp>& op) {
              core.Renew(op);
            }));
      }));
}

void SharedFetchCore::OnUpstream(const std::shared_ptr<FetchOp>& op,
                                 absl::StatusOr<Token> result) {
  std::string lease_value;
  int64_t fence = 0;
  int64_t revgen = 0;
  std::string unreadable;
  std::shared_ptr<const KeyRing> ring;
  {
    absl::MutexLock lock(&mu);
    unreadable = op->unreadable;
    op->fetching = false;
    if (op->timer != 0) timers.Cancel(op->timer);
    op->timer = 0;
    lease_value = std::move(op->lease_value);
    op->lease_value.clear();
    fence = op->fence;
    revgen = op->revgen;
    ring = keys;
    if (result.ok()) {
      last[op->cache_key] = {fence, TokenFingerprint(result->access_token)};
    }
  }
  if (result.ok()) {
    absl::Duration left = result->expires_at - clock.Now();
    TokenRecord record;
    record.fence = fence;
    record.revgen = revgen;
    record.cache_key = op->cache_key;
    record.token = *result;
    absl::StatusOr<std::string> value =
        left >= absl::Milliseconds(1)
            ? SealTokenRecord(*ring, op->token_key, record)
            : absl::StatusOr<std::string>(
                  absl::FailedPreconditionError("the token has expired"));
    ClearSecret(&record.token.access_token);
    if (value.ok()) {
      SharedMessage message;
      message.type = SharedMessage::Type::kToken;
      message.app = op->request.app;
      message.hash = op->hash;
      message.number = fence;
      redis.Eval(
          kWriteTokenScript, {op->token_key, names.Revgen(), names.Events()},
          {absl::StrCat(fence), absl::StrCat(revgen), op->app_field,
           op->user_field, *std::move(value),
           absl::StrCat(absl::ToInt64Milliseconds(left)),
           FormatSharedMessage(message), std::move(unreadable)},
          Guarded(
              op, [](SharedFetchCore& core, const std::shared_ptr<FetchOp>& op,
                     absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) {
                  core.RedisFailed(reply.status());
                  return;
                }
                core.RedisWorked();
                if (reply->type != RedisReply::Type::kInteger) return;
                if (reply->integer == 0) {
                  core.fenced_out.fetch_add(1, std::memory_order_relaxed);
                  LogInfo(
                      "a newer token of this app is stored already; this "
                      "replica's was not written",
                      {{"app", op->request.app}});
                } else if (reply->integer < 0) {
                  core.revoked_writes.fetch_add(1, std::memory_order_relaxed);
                  LogInfo(
                      "the app was revoked while its token was fetched; the "
                      "token was not stored",
                      {{"app", op->request.app}});
                }
              }));
    } else {
      LogWarning("token not stored in Redis",
                 {{"app", op->request.app},
                  {"error", std::string(value.status().message())}});
    }
  } else if (IsSharedFailure(result.status().code())) {
    SharedMessage message;
    message.type = SharedMessage::Type::kFailed;
    message.app = op->request.app;
    message.hash = op->hash;
    message.number = absl::ToInt64Milliseconds(
        GetRetryAfter(result.status()).value_or(op->policy.failed_retry_after));
    message.code = static_cast<int>(result.status().code());
    // Before the release, so that the waiting replicas hear of the failure
    // before they could see the lease gone and take it.
    redis.Publish(names.Events(), FormatSharedMessage(message),
                  [](absl::StatusOr<RedisReply>) {});
  }
  // Ordered after the write on the one command connection.
  Release(op->lease_key, lease_value);
  Answer(op, std::move(result));
}

void SharedFetchCore::Release(const std::string& lease_key,
                              const std::string& lease_value) {
  if (lease_value.empty()) return;
  redis.Eval(kReleaseLeaseScript, {lease_key}, {lease_value},
             [weak = self](absl::StatusOr<RedisReply> reply) {
               WithLiveCore(weak, [&](SharedFetchCore& core) {
                 if (reply.ok()) {
                   core.RedisWorked();
                 } else {
                   core.RedisFailed(reply.status());
                 }
               });
             });
}

void SharedFetchCore::FetchDirect(const std::shared_ptr<FetchOp>& op,
                                  bool degraded) {
  {
    absl::MutexLock lock(&mu);
    if (op->answered) return;
    StopWaiting(*op);
    op->checking = false;
  }
  if (degraded) degraded_fetches.fetch_add(1, std::memory_order_relaxed);
  upstream.Fetch(op->request, Guarded(op, [](SharedFetchCore& core,
                                             const std::shared_ptr<FetchOp>& op,
                                             absl::StatusOr<Token> result) {
                   core.Answer(op, std::move(result));
                 }));
}

void SharedFetchCore::Answer(const std::shared_ptr<FetchOp>& op,
                             absl::StatusOr<Token> result) {
  TokenCallback done;
  {
    absl::MutexLock lock(&mu);
    if (op->answered) return;
    op->answered = true;
    done = std::move(op->done);
    StopWaiting(*op);
    ops.erase(op->id);
  }
  done(std::move(result));
}

void SharedFetchCore::StopWaiting(FetchOp& op) {
  if (op.waiting) {
    auto it = waiting.find(op.token_key);
    if (it != waiting.end()) {
      it->second.erase(op.id);
      if (it->second.empty()) waiting.erase(it);
    }
    op.waiting = false;
  }
  if (op.timer != 0 && !op.fetching) {
    timers.Cancel(op.timer);
    op.timer = 0;
  }
}

void SharedFetchCore::RedisFailed(const absl::Status& status) {
  redis_errors.fetch_add(1, std::memory_order_relaxed);
  MarkDegraded(status);
}

void SharedFetchCore::MarkDegraded(const absl::Status& status) {
  bool start_probe = false;
  {
    absl::MutexLock lock(&mu);
    if (!degraded) {
      LogWarning(
          "shared token state degraded: Redis failed; fetching tokens "
          "without it until it answers again",
          {{"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
    }
    degraded = true;
    if (!probing) probing = start_probe = true;
  }
  if (start_probe) {
    timers.Schedule(kProbeInterval, [weak = self] {
      WithLiveCore(weak, [](SharedFetchCore& core) { core.Probe(); });
    });
  }
}

void SharedFetchCore::RedisWorked() {
  absl::MutexLock lock(&mu);
  if (degraded) LogInfo("shared token state recovered: Redis answers again");
  degraded = false;
}

// While degraded, checks every kProbeInterval whether Redis answers, so
// that the flag clears without waiting for the next fetch.
void SharedFetchCore::Probe() {
  {
    absl::MutexLock lock(&mu);
    if (!degraded) {
      probing = false;
      return;
    }
  }
  auto again = [](SharedFetchCore& core) {
    core.timers.Schedule(kProbeInterval, [weak = core.self] {
      WithLiveCore(weak, [](SharedFetchCore& core) { core.Probe(); });
    });
  };
  if (!redis.stats().connected) {
    again(*this);
    return;
  }
  redis.Command({"PING"}, [weak = self, again](absl::StatusOr<RedisReply> r) {
    WithLiveCore(weak, [&](SharedFetchCore& core) {
      if (r.ok()) {
        core.RedisWorked();
        absl::MutexLock lock(&core.mu);
        core.probing = false;
      } else {
        again(core);
      }
    });
  });
}

void SharedFetchCore::Shutdown() {
  if (!gate.Close()) return;
  std::vector<std::pair<std::string, std::string>> leases;
  std::vector<TokenCallback> callbacks;
  {
    absl::MutexLock lock(&mu);
    for (auto& [id, op] : ops) {
      op->answered = true;
      op->fetching = false;
      if (op->timer != 0) timers.Cancel(op->timer);
      op->timer = 0;
      callbacks.push_back(std::move(op->done));
      if (!op->lease_value.empty()) {
        leases.emplace_back(op->lease_key, std::move(op->lease_value));
        op->lease_value.clear();
      }
    }
    ops.clear();
    waiting.clear();
  }
  // Leases still held are given back, so that the other replicas need not
  // wait for them to expire. The answers are ignored (no state is left).
  for (auto& [key, value] : leases) {
    redis.Eval(kReleaseLeaseScript, {key}, {value},
               [](absl::StatusOr<RedisReply>) {});
  }
  for (auto& done : callbacks) {
    done(absl::CancelledError(
        "the broker is shutting down; no token was fetched"));
  }
}

}  // namespace internal

SharedTokenSource::SharedTokenSource(TokenSource& upstream, RedisClient& redis,
                                     SharedChannel& channel,
                                     std::shared_ptr<const KeyRing> keys,
                                     std::string key_prefix, const Clock& clock,
                                     SharedTokenPolicy policy)
    : channel_(channel),
      core_(std::make_shared<internal::SharedFetchCore>(
          upstream, redis, std::move(keys), std::move(key_prefix), clock,
          timers_, policy)) {
  core_->self = core_;
  std::weak_ptr<internal::SharedFetchCore> weak = core_;
  listener_id_ = channel_.AddListener(
      [weak](const std::string& payload) {
        internal::WithLiveCore(weak, [&](internal::SharedFetchCore& core) {
          core.OnMessage(payload);
        });
      },
      nullptr);
}

SharedTokenSource::~SharedTokenSource() { Shutdown(); }

void SharedTokenSource::Fetch(const TokenRequest& request, TokenCallback done) {
  core_->Fetch(request, std::move(done));
}

void SharedTokenSource::SetPolicy(const SharedTokenPolicy& policy) {
  absl::MutexLock lock(&core_->mu);
  core_->policy = policy;
}

void SharedTokenSource::SetKeys(std::shared_ptr<const KeyRing> keys) {
  absl::MutexLock lock(&core_->mu);
  core_->keys = std::move(keys);
}

void SharedTokenSource::Shutdown() {
  channel_.RemoveListener(listener_id_);
  core_->Shutdown();
}

SharedTokenStats SharedTokenSource::stats() const {
  const internal::SharedFetchCore& c = *core_;
  SharedTokenStats s;
  {
    absl::MutexLock lock(&c.mu);
    s.degraded = c.degraded;
  }
  s.degraded = s.degraded || !c.redis.stats().connected;
  s.adopted = c.adopted.load();
  s.leases_won = c.leases_won.load();
  s.waited = c.waited.load();
  s.takeovers = c.takeovers.load();
  s.fenced_out = c.fenced_out.load();
  s.revoked_writes = c.revoked_writes.load();
  s.degraded_fetches = c.degraded_fetches.load();
  s.wait_timeouts = c.wait_timeouts.load();
  s.holder_failures = c.holder_failures.load();
  s.leases_lost = c.leases_lost.load();
  s.redis_errors = c.redis_errors.load();
  s.unreadable_records = c.unreadable_records.load();
  return s;
}

}  // namespace tokenbroker
