#ifndef TOKENBROKER_SERVICE_SHARED_SHARED_TOKEN_SOURCE_H_
#define TOKENBROKER_SERVICE_SHARED_SHARED_TOKEN_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/common/timer_queue.h"
#include "service/redis/redis_client.h"
#include "service/shared/shared_channel.h"
#include "service/store/sealed_box.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

namespace internal {
struct SharedFetchCore;
}  // namespace internal

// What the shared fetches follow; may change on a config reload.
struct SharedTokenPolicy {
  // A stored token is adopted only before this fraction of its lifetime
  // (CachePolicy::refresh_fraction): past it, it is due for a refresh.
  double refresh_fraction = 2.0 / 3.0;
  // Lifetime of a fetch lease (shared_state.redis.lease_ttl): longer than
  // an upstream fetch may take. Renewed every lease_ttl / 3 while fetching;
  // a holder that died delays the others by at most this.
  absl::Duration lease_ttl = absl::Seconds(10);
  // How often a replica waiting on another's lease looks again when no
  // pub/sub message comes.
  absl::Duration poll_interval = absl::Milliseconds(200);
  // The retry delay followers are given when the holder's fetch failed and
  // the error carried none (CachePolicy::backoff_base).
  absl::Duration failed_retry_after = absl::Seconds(1);
};

// Counters since construction, and the degraded flag (health, metrics).
struct SharedTokenStats {
  // A Redis command failed or timed out, or the client is not connected,
  // and no command has worked since: fetches go straight upstream.
  bool degraded = false;
  int64_t adopted = 0;           // Tokens taken from Redis, no upstream fetch.
  int64_t leases_won = 0;        // Upstream fetches under a lease.
  int64_t waited = 0;            // Fetches that waited on another's lease.
  int64_t takeovers = 0;         // Leases won after waiting (a holder died or
                                 // finished without a usable token).
  int64_t fenced_out = 0;        // Writes refused: a newer token was stored.
  int64_t revoked_writes = 0;    // Writes refused: revoked meanwhile.
  int64_t degraded_fetches = 0;  // Upstream fetches without Redis.
  int64_t wait_timeouts = 0;     // Waited 2 x lease_ttl, fetched alone.
  int64_t holder_failures = 0;   // Answered with another's failure.
  int64_t leases_lost = 0;       // A renewal found the lease taken.
  int64_t redis_errors = 0;      // Commands that failed.
  int64_t unreadable_records = 0;  // Stored records that did not open.
};

// A TokenSource that shares upstream fetches between broker replicas through
// Redis (docs/design-notes.md: the lease and fencing argument), in front of
// the real upstream TokenSource. For each Fetch of a request (cache key K,
// H = SharedKeys::KeyHash(K)):
//  1. Read P"token:" app ":" H and the revocation generation (one script).
//     Adopt the stored token iff its fence is newer than the one this
//     replica last adopted or wrote for K (so a token the cache wants
//     replaced is never handed back), its revgen is current (a token stored
//     before a revocation is never adopted after it), and it is before its
//     refresh point (issued_at + refresh_fraction x lifetime).
//  2. Else take the lease (INCR fence; SET NX PX lease_ttl). The holder
//     renews it every lease_ttl / 3, fetches upstream, answers `done` at
//     once, then writes the sealed record with a script that refuses it if
//     a newer fence is stored or the app was revoked since step 1 (a holder
//     that lost its lease never overwrites a newer token), publishes
//     "token ...", and releases the lease (compare-and-delete). An upstream
//     error is not stored: the holder publishes "failed <app> <H>
//     <retry_after_ms> <code>" and releases.
//  3. A replica that finds the lease taken waits for the "token" message or
//     polls (poll_interval): a usable record is adopted; a lease gone
//     without one is taken (takeover); a "failed" message answers the
//     waiting fetches with the holder's error code and retry delay, so that
//     every replica's cache backs off instead of each one fetching in turn.
//     After 2 x lease_ttl of waiting (by `clock`) it fetches alone.
// Any Redis error or timeout sends the fetch straight upstream (degraded;
// the cache's single flight and backoff still apply); while the client is
// not connected Redis is skipped at once. Tokens never appear in key names,
// logs or errors; records are sealed with `keys` (token_record.h).
//
// Thread-safe. `done` runs exactly once: on the upstream's thread, the Redis
// loop thread, the timer thread, or inline. Shutdown() (or the destructor)
// answers every fetch still pending with CANCELLED; after it returns no
// callback of this object runs and Fetch answers CANCELLED at once. Call it
// before the cache that uses this source is destroyed, and never from a
// `done` callback. `upstream`, `redis`, `channel` and `clock` must outlive
// this object.
class SharedTokenSource final : public TokenSource {
 public:
  SharedTokenSource(TokenSource& upstream, RedisClient& redis,
                    SharedChannel& channel, std::shared_ptr<const KeyRing> keys,
                    std::string key_prefix, const Clock& clock,
                    SharedTokenPolicy policy = {});
  ~SharedTokenSource() override;

  SharedTokenSource(const SharedTokenSource&) = delete;
  SharedTokenSource& operator=(const SharedTokenSource&) = delete;

  void Fetch(const TokenRequest& request, TokenCallback done) override;

  // Applies to fetches started afterwards (config reload).
  void SetPolicy(const SharedTokenPolicy& policy);

  // Records are sealed with `keys` from now on (a key added or rotated on
  // reload); those sealed with a key still in the ring keep opening.
  void SetKeys(std::shared_ptr<const KeyRing> keys);

  void Shutdown();

  SharedTokenStats stats() const;

 private:
  SharedChannel& channel_;
  SharedChannel::ListenerId listener_id_ = 0;
  // Declared before core_: destroyed after Shutdown() closed the gate.
  TimerQueue timers_;
  std::shared_ptr<internal::SharedFetchCore> core_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_SHARED_SHARED_TOKEN_SOURCE_H_
