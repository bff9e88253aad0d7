#ifndef TOKENBROKER_SERVICE_HTTP_PENDING_FLOWS_H_
#define TOKENBROKER_SERVICE_HTTP_PENDING_FLOWS_H_

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace tokenbroker {

struct PendingFlowsOptions {
  absl::Duration start_link_ttl = absl::Minutes(10);  // oauth.start_link_ttl
  absl::Duration state_ttl = absl::Minutes(10);       // oauth.state_ttl
  int max_pending = 1000;  // oauth.max_pending: tickets and states together
};

// A one-time start link as minted: the ticket is a credential (whoever holds
// it may start one sign-in for the app), shown once to the admin who asked.
struct MintedTicket {
  std::string ticket;  // base64url of 256 random bits
  absl::Time expires_at;
};

// What a ticket was minted for.
struct StartTicket {
  std::string app;
  std::string minted_by;  // The admin caller who minted it (audit).
  absl::Time expires_at;
};

// What the start page decides for the sign-in it begins; kept with the
// state for the callback.
struct SignInSetup {
  std::string redirect_uri;  // Sent on the authorize and token requests.
  std::string cookie_name;   // The browser-binding cookie's name.
};

// A begun sign-in, for the start page's answer. Secrets: `state` goes to
// the authorization server, `cookie` to the browser, `code_verifier`
// nowhere but the token request.
struct StartedSignIn {
  std::string state;          // base64url of 256 random bits
  std::string cookie;         // base64url of 256 random bits
  std::string code_verifier;  // RFC 7636: 43 characters (256 bits)
  absl::Time expires_at;
};

// A sign-in taken back by its callback.
struct PendingSignIn {
  std::string app;
  std::string minted_by;
  SignInSetup setup;
  std::string code_verifier;  // Empty unless the lookup's outcome is kOk.
  absl::Time expires_at;
};

struct SignInLookup {
  enum class Outcome {
    kOk,
    kUnknown,         // Never issued, already used, or purged.
    kExpired,         // Issued but older than state_ttl (now consumed).
    kNoCookie,        // The request carries no binding cookie.
    kCookieMismatch,  // Its cookie is not the one the state is bound to.
    kUnavailable,     // The shared store cannot be reached: try again.
  };
  Outcome outcome = Outcome::kUnknown;
  // Set for every outcome but kUnknown and kUnavailable (app and minted_by name
  // the refused sign-in in the audit record).
  std::optional<PendingSignIn> sign_in;
};

// Where the browser flow's short-lived secrets wait:
//   - start tickets, minted by an admin (MintTicket) and redeemed once by
//     /oauth/start (BeginSignIn), valid start_link_ttl;
//   - sign-in states, created by BeginSignIn and taken once by
//     /oauth/callback (TakeSignIn), valid state_ttl, each bound to a
//     browser cookie and holding the PKCE verifier.
// Tickets, states and cookies are random values from OpenSSL's RAND_bytes
// (256 bits, base64url); only their SHA-256 is kept as a key, so a dump of
// the store neither starts nor completes a sign-in. At most `max_pending`
// tickets and states together. Time comes from the `clock` given to the
// implementation (tests use a fake one).
//
// MemoryPendingFlows keeps them in this process (one replica);
// RedisPendingFlows (redis_pending_flows.h) in Redis, shared by every
// replica, so that a link minted on one replica starts and completes on any.
//
// Thread-safe. MintTicket() never blocks (it is called on gRPC threads);
// the other methods may block on the store (RedisPendingFlows: up to the
// Redis client's command_timeout each): call them from threads that may
// block, such as the OAuth pages' listener threads.
class PendingFlows {
 public:
  using MintCallback = absl::AnyInvocable<void(absl::StatusOr<MintedTicket>)>;

  virtual ~PendingFlows() = default;

  // Mints a new ticket for `app`, minted by admin caller `minted_by`, and
  // gives it to `done`, exactly once: inline (MemoryPendingFlows, and any
  // error found before the store is asked) or on another thread (the Redis
  // client's loop thread: `done` must not block). Errors:
  // RESOURCE_EXHAUSTED when max_pending tickets and states are pending;
  // UNAVAILABLE when the shared store cannot be reached; INTERNAL if the
  // random generator or sealing fails.
  virtual void MintTicket(std::string app, std::string minted_by,
                          MintCallback done) = 0;

  // What `ticket` was minted for, without redeeming it. Errors: NOT_FOUND
  // (unknown or already used), DEADLINE_EXCEEDED (expired: then removed);
  // UNAVAILABLE (the shared store cannot be reached: the ticket, if any, is
  // untouched); DATA_LOSS (a stored ticket that cannot be opened).
  virtual absl::StatusOr<StartTicket> PeekTicket(absl::string_view ticket) = 0;

  // Redeems `ticket` and begins a sign-in with `setup`, atomically: of two
  // concurrent calls with one ticket (on any replicas), one fails with
  // NOT_FOUND. Errors: those of PeekTicket(); INTERNAL if the random
  // generator fails (the ticket is then kept). UNAVAILABLE leaves the
  // ticket unused unless the store applied the change but its answer was
  // lost (then the ticket is used up and a retry gets NOT_FOUND).
  virtual absl::StatusOr<StartedSignIn> BeginSignIn(absl::string_view ticket,
                                                    SignInSetup setup) = 0;

  // Takes the sign-in of `state` out, whatever the outcome (a state is used
  // at most once, also when the cookie is wrong), and checks that `cookies`
  // (the request's, name and value) hold the cookie it is bound to, compared
  // in constant time. kUnavailable when the shared store cannot be reached.
  virtual SignInLookup TakeSignIn(
      absl::string_view state,
      const std::vector<std::pair<std::string, std::string>>& cookies) = 0;

  // Tickets and states pending now, for metrics. MemoryPendingFlows: exact
  // (expired ones may still count until the next call purges them);
  // RedisPendingFlows: across all replicas as of this replica's last call
  // to Redis (never a Redis round trip of its own).
  virtual int pending() const = 0;
};

// PendingFlows in this process's memory: a sign-in must start and complete
// on the replica that minted its link. Expired entries are purged on every
// call. Thread-safe. `clock` must outlive this object.
class MemoryPendingFlows final : public PendingFlows {
 public:
  MemoryPendingFlows(const Clock& clock, PendingFlowsOptions options);

  MemoryPendingFlows(const MemoryPendingFlows&) = delete;
  MemoryPendingFlows& operator=(const MemoryPendingFlows&) = delete;

  // Calls `done` inline with MintTicket(app, minted_by).
  void MintTicket(std::string app, std::string minted_by,
                  MintCallback done) override;
  // The same, returned (it never blocks). Errors: RESOURCE_EXHAUSTED,
  // INTERNAL, as above.
  absl::StatusOr<MintedTicket> MintTicket(std::string app,
                                          std::string minted_by);

  absl::StatusOr<StartTicket> PeekTicket(absl::string_view ticket) override;
  absl::StatusOr<StartedSignIn> BeginSignIn(absl::string_view ticket,
                                            SignInSetup setup) override;
  SignInLookup TakeSignIn(
      absl::string_view state,
      const std::vector<std::pair<std::string, std::string>>& cookies) override;
  int pending() const override;

 private:
  struct State {
    PendingSignIn sign_in;
    std::string cookie_sha256;  // Lower-case hex.
  };
  // Entries by expiry, oldest first (each kind has one TTL, so insertion
  // order is expiry order): what PurgeExpired() looks at.
  using ExpiryQueue = std::deque<std::pair<absl::Time, std::string>>;

  void PurgeExpired(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Full() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The ticket of hash `key`, or an error as PeekTicket() says (an expired
  // one is removed).
  absl::StatusOr<StartTicket> FindTicket(const std::string& key, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  const PendingFlowsOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, StartTicket> tickets_
      ABSL_GUARDED_BY(mu_);                                   // By SHA-256.
  std::map<std::string, State> states_ ABSL_GUARDED_BY(mu_);  // By SHA-256.
  ExpiryQueue ticket_expiry_ ABSL_GUARDED_BY(mu_);
  ExpiryQueue state_expiry_ ABSL_GUARDED_BY(mu_);
};

// The started sign-in's state: what TakeSignIn() decides from the one taken
// out of the store (`cookie_sha256` is the lower-case hex SHA-256 of the
// cookie it is bound to) and the request's `cookies`, at `now`: kExpired,
// kNoCookie, kCookieMismatch or kOk. The verifier is cleared unless kOk.
SignInLookup CheckTakenSignIn(
    PendingSignIn sign_in, absl::string_view cookie_sha256, absl::Time now,
    const std::vector<std::pair<std::string, std::string>>& cookies);

// base64url (no padding) of `bytes` random bytes from RAND_bytes. Errors:
// INTERNAL if the generator fails.
absl::StatusOr<std::string> RandomUrlToken(size_t bytes = 32);

// The PKCE S256 code challenge of `verifier` (RFC 7636 4.2):
// BASE64URL(SHA256(verifier)) without padding.
std::string PkceS256Challenge(absl::string_view verifier);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_PENDING_FLOWS_H_
