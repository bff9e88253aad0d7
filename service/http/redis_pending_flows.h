#ifndef TOKENBROKER_SERVICE_HTTP_REDIS_PENDING_FLOWS_H_
#define TOKENBROKER_SERVICE_HTTP_REDIS_PENDING_FLOWS_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/common/clock.h"
#include "service/http/pending_flows.h"
#include "service/redis/redis_client.h"
#include "service/store/sealed_box.h"

namespace tokenbroker {

// PendingFlows in Redis, shared by every replica: a link minted on one
// replica starts and completes on whichever replica the browser reaches.
// Keys, under the prefix P of shared_state.redis (default "tokenbroker:"):
//   P "signin:ticket:" H   a start ticket, PX start_link_ttl
//   P "signin:state:" H    a sign-in in progress, PX state_ttl
//   P "signin:pending"     ZSET: the key names above, scored by expiry
// where H is the lower-case hex SHA-256 of the ticket or state. A value is
// KeyRing::Seal() of a JSON object with the full key name as associated data
// (a value copied to another key does not open): a ticket holds its app,
// minted_by and expiry; a state its app, minted_by, setup, PKCE verifier,
// the SHA-256 of its browser cookie and expiry. No ticket, state, cookie or
// verifier is in a key name, in clear in a value, or in a log or error.
//
// Expiry is enforced twice: Redis drops a key at its PX, and a value read is
// checked against the expiry it holds by this replica's clock (an expired
// one is deleted; the errors of PendingFlows).
//
// Single use: BeginSignIn reads and opens the ticket, then one Lua script
// deletes it only if it still holds the value read and stores the state;
// TakeSignIn takes the state out with one script (GET and DEL). Of two
// replicas redeeming one ticket, or taking one state, exactly one wins.
//
// max_pending holds across replicas: every script first drops the ZSET's
// members whose score (Redis's TIME plus the TTL, the same clock as PX) has
// passed, and MintTicket refuses when max_pending remain. The count may run
// high only briefly: a key dropped early (by an operator) keeps its member
// until its score passes. Redis's own memory is bounded by it too (about
// 1 KiB per entry).
//
// Blocking: PeekTicket, BeginSignIn and TakeSignIn wait for Redis
// (CommandSync/EvalSync, each bounded by the client's command_timeout), for
// the OAuth pages' listener threads; MintTicket never blocks: `done` runs on
// the Redis client's loop thread (or inline for an error found first).
//
// Redis down, slow or answering an error: UNAVAILABLE (TakeSignIn:
// kUnavailable, logged), whose message says the shared state cannot be
// reached; nothing is changed unless Redis applied a script whose answer was
// lost. DATA_LOSS for a stored value that does not open (a key the ring
// lacks, another key's value); a state that does not open is reported
// kUnknown (it is taken out all the same) and logged.
//
// Thread-safe. `redis` and `clock` must outlive this object; answers that
// arrive after it is gone touch only what their callbacks own.
class RedisPendingFlows final : public PendingFlows {
 public:
  // `keys` (not null) seals and opens the values: the shared_state.redis
  // key ring, the same on every replica.
  RedisPendingFlows(RedisClient& redis, std::shared_ptr<const KeyRing> keys,
                    std::string key_prefix, const Clock& clock,
                    PendingFlowsOptions options);

  RedisPendingFlows(const RedisPendingFlows&) = delete;
  RedisPendingFlows& operator=(const RedisPendingFlows&) = delete;

  void MintTicket(std::string app, std::string minted_by,
                  MintCallback done) override;
  absl::StatusOr<StartTicket> PeekTicket(absl::string_view ticket) override;
  absl::StatusOr<StartedSignIn> BeginSignIn(absl::string_view ticket,
                                            SignInSetup setup) override;
  SignInLookup TakeSignIn(
      absl::string_view state,
      const std::vector<std::pair<std::string, std::string>>& cookies) override;
  int pending() const override;

  // P "signin:ticket:" SHA256hex(ticket), P "signin:state:" SHA256hex(state)
  // and P "signin:pending".
  std::string TicketKey(absl::string_view ticket) const;
  std::string StateKey(absl::string_view state) const;
  std::string PendingKey() const;

 private:
  // The ticket stored under `key`, opened, and its envelope as stored
  // (BeginSignIn's compare). Errors as PeekTicket() says.
  absl::StatusOr<std::pair<StartTicket, std::string>> ReadTicket(
      const std::string& key, absl::Time now);
  // Deletes an entry found expired by this replica's clock (best effort).
  void Forget(const std::string& key);

  RedisClient& redis_;
  const std::shared_ptr<const KeyRing> keys_;
  const std::string prefix_;
  const Clock& clock_;
  const PendingFlowsOptions options_;
  // The ZSET's size after this replica's last script; shared with the
  // answers still in flight.
  const std::shared_ptr<std::atomic<int>> pending_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_REDIS_PENDING_FLOWS_H_
