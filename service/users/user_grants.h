#ifndef TOKENBROKER_SERVICE_USERS_USER_GRANTS_H_
#define TOKENBROKER_SERVICE_USERS_USER_GRANTS_H_

#include <cstdint>
#include <map>
#include <memory>
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
#include "service/common/serial_executor.h"
#include "service/store/grant_store.h"

namespace tokenbroker {

// What operators and policy may see of one user's grant: never a secret.
struct UserGrantSummary {
  std::string app;
  std::string user_id;
  std::string username;
  std::vector<std::string> scopes;  // Granted, sorted.
  absl::Time connected_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
  bool needs_reauthorization = false;
  std::string reason;  // Why it needs re-authorization; no secret.
};

// A grant's refresh token lent to one refresh (a secret: cleared when
// destroyed; never logged).
struct RefreshCredential {
  RefreshCredential() = default;
  RefreshCredential(RefreshCredential&& other) noexcept;
  RefreshCredential& operator=(RefreshCredential&&) = delete;
  RefreshCredential(const RefreshCredential&) = delete;
  ~RefreshCredential();

  std::string refresh_token;
  // The grant's version when it was lent: a rotation is stored only if the
  // grant has not been replaced since (StoreRotated).
  int64_t version = 0;
  std::string username;
  std::vector<std::string> scopes;
};

// The refresh-token grants of user apps (authorization code), one per app
// and Anypoint user id: an in-memory index over a durable GrantStore.
//
// - Connect() stores a grant from a completed sign-in (replacing the user's
//   previous one) and returns once it is durable.
// - The token source borrows a grant's refresh token for one refresh
//   (BorrowRefreshToken) and hands a rotated refresh token back with
//   StoreRotated(), which writes it to the store BEFORE it calls `done`: the
//   new access token is served only after that.
// - A refused refresh token marks the grant as needing re-authorization
//   (MarkNeedsReauthorization); a new Connect() clears it.
// Store writes of the token path run on one writer thread of their own, so
// no network or gRPC thread waits for the disk.
//
// Thread-safe. `store` and `clock` must outlive this object; the destructor
// finishes the queued writes.
class UserGrants {
 public:
  UserGrants(GrantStore& store, const Clock& clock);
  ~UserGrants();

  UserGrants(const UserGrants&) = delete;
  UserGrants& operator=(const UserGrants&) = delete;

  // Reads every record of the store into memory (at start). Returns one
  // problem per record that could not be read (corrupt, wrong key, ...),
  // naming the record; the others are loaded.
  std::vector<std::string> Load();

  // Stores `grant` (version and updated_at are set here) and indexes it.
  // Blocks until the store has it. Errors: the store's.
  absl::Status Connect(UserGrant grant);

  // The grants of `app` (every app if empty), sorted by app, then username.
  std::vector<UserGrantSummary> List(absl::string_view app = "") const;

  // The grant of `user_id` of `app`, or nullopt.
  std::optional<UserGrantSummary> Find(absl::string_view app,
                                       absl::string_view user_id) const;

  // The grant of `app` a request names by `user` (a user id or a username);
  // `user` empty: the app's only grant. Errors: NOT_FOUND (no such user, or
  // no grant at all), INVALID_ARGUMENT (empty `user` and several grants:
  // the message says to name one, without listing them).
  absl::StatusOr<UserGrantSummary> Resolve(absl::string_view app,
                                           absl::string_view user) const;

  // The refresh token of a grant, for one refresh. Errors:
  // FAILED_PRECONDITION when there is no grant or it needs
  // re-authorization (the message says to connect the user again).
  absl::StatusOr<RefreshCredential> BorrowRefreshToken(
      absl::string_view app, absl::string_view user_id) const;

  // Replaces the grant's refresh token with `refresh_token` (the server
  // rotated it), durably, then calls `done` on the writer thread. Errors:
  // ABORTED when the grant was replaced or removed since `version` was lent
  // (nothing is written); the store's error otherwise, in which case the
  // new refresh token is still kept in memory (it is the only one that
  // works now) and written again by the next write of the grant.
  void StoreRotated(std::string app, std::string user_id, int64_t version,
                    std::string refresh_token,
                    absl::AnyInvocable<void(absl::Status)> done);

  // Marks the grant as needing re-authorization with `reason` (no secret)
  // unless it was replaced since `version`; written on the writer thread.
  void MarkNeedsReauthorization(std::string app, std::string user_id,
                                int64_t version, std::string reason);

  // Deletes the grant durably and returns its refresh token (to revoke it
  // at the server). Errors: NOT_FOUND; the store's.
  absl::StatusOr<std::string> Remove(absl::string_view app,
                                     absl::string_view user_id);

  // Blocks until every write queued so far is done (tests, shutdown).
  void Drain();

 private:
  using Key = std::pair<std::string, std::string>;  // (app, user_id)

  static UserGrantSummary Summarize(const UserGrant& grant);
  // Writes the record of `key` as it is in memory now.
  absl::Status Persist(const Key& key) ABSL_LOCKS_EXCLUDED(mu_);

  GrantStore& store_;
  const Clock& clock_;
  // Serializes the store's writes of one grant with its index update.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::map<Key, UserGrant> grants_ ABSL_GUARDED_BY(mu_);
  int64_t next_version_ ABSL_GUARDED_BY(mu_) = 1;
  SerialExecutor writer_;  // Last: destroyed (drained) first.
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_USERS_USER_GRANTS_H_
