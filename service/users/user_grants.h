#ifndef TOKENBROKER_SERVICE_USERS_USER_GRANTS_H_
#define TOKENBROKER_SERVICE_USERS_USER_GRANTS_H_

#include <cstdint>
#include <functional>
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
// - Connect() stores a grant from a completed sign-in (replacing whatever is
//   stored for the user) and returns once it is durable.
// - The token source borrows a grant's refresh token for one refresh
//   (BorrowRefreshToken) and hands a rotated refresh token back with
//   StoreRotated(), which writes it to the store BEFORE it calls `done`: the
//   new access token is served only after that.
// - A refused refresh token marks the grant as needing re-authorization
//   (MarkNeedsReauthorization); a new Connect() clears it.
// Store writes of the token path run on one writer thread of their own, so
// no network or gRPC thread waits for the store.
//
// Versions: every record has a version of its own; a write stores the
// version it replaces plus one (more when rotations happened while the
// store could not be written), so versions only grow, across replicas too.
//
// A shared store (GrantStore::IsShared(), Redis) is written by every
// replica: this index is then a cache, and every write is a compare-and-set
// on the version this replica last read or wrote (PutIfVersion).
// - The replica that is about to refresh a grant calls Refresh() first, so
//   that it uses the latest refresh token; Adopt() and Forget() are for the
//   pub/sub messages of the other replicas' writes and removals; Resync()
//   catches up after messages were missed.
// - StoreRotated() loses the compare-and-set when another replica wrote the
//   grant since the version lent: the grant is re-read and the answer is
//   ABORTED. The refresh token that refresh got is dropped (never used
//   again): the grant in the store wins.
// - Conflict rule when the store cannot be written (Redis down): the
//   rotated refresh token is kept in memory, "dirty" (it is the only one
//   that works now; StoreRotated answers the store's error, so the access
//   token is withheld), lent to later refreshes, and written back by
//   WriteBack() or after the next write that works, by compare-and-set on
//   the version it was based on. If the store holds another version by
//   then (another replica rotated or replaced the grant meanwhile), THE
//   STORE WINS: its record is adopted, this replica's rotated refresh token
//   is dropped and a warning names the app and the user. A grant removed
//   from the store meanwhile is forgotten here too. So a grant rotated on
//   one replica only while Redis was down is never lost; of two replicas
//   that both rotated it, the first to write back wins.
// With a local store (file, memory) this process is the only writer: the
// index is the truth, writes are plain Put()s, and Refresh(), Adopt() and
// Resync() do nothing.
//
// Thread-safe. `store` and `clock` must outlive this object; the destructor
// finishes the queued writes.
class UserGrants {
 public:
  // Called after every successful store write of a grant (on the thread
  // that wrote it; must not block): a shared store's replicas publish it.
  using WriteListener = std::function<void(
      const std::string& app, const std::string& user_id, int64_t version)>;

  UserGrants(GrantStore& store, const Clock& clock);
  ~UserGrants();

  UserGrants(const UserGrants&) = delete;
  UserGrants& operator=(const UserGrants&) = delete;

  // Reads every record of the store into memory (at start). Returns one
  // problem per record that could not be read (corrupt, wrong key, ...),
  // naming the record; the others are loaded. When the store cannot be
  // listed at all (Redis down), one more line says so: call Resync() when
  // it is back.
  std::vector<std::string> Load();

  // Sets the listener (before the first write; empty: none).
  void SetWriteListener(WriteListener listener);

  // Stores `grant` (version and updated_at are set here), replacing what
  // the store holds for the user, and indexes it. Blocks until the store
  // has it; with a shared store it reads the stored version and writes the
  // next one by compare-and-set, retried a few times if another replica
  // writes in between. Errors: the store's (UNAVAILABLE, DATA_LOSS for a
  // stored record that cannot be read: remove it first), ABORTED if the
  // retries ran out.
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

  // The refresh token of a grant, for one refresh (a dirty one too: it is
  // the only one that works). Never touches the store. Errors:
  // FAILED_PRECONDITION when there is no grant or it needs
  // re-authorization (the message says to connect the user again).
  absl::StatusOr<RefreshCredential> BorrowRefreshToken(
      absl::string_view app, absl::string_view user_id) const;

  // Replaces the grant's refresh token with `refresh_token` (the server
  // rotated it), durably, then calls `done` on the writer thread. Errors:
  // ABORTED when the grant was replaced or removed since `version` was lent,
  // here or (shared store) in the store, which is then re-read: nothing is
  // written and `refresh_token` is dropped; the store's error otherwise, in
  // which case the new refresh token is kept in memory, dirty (see the
  // conflict rule above).
  void StoreRotated(std::string app, std::string user_id, int64_t version,
                    std::string refresh_token,
                    absl::AnyInvocable<void(absl::Status)> done);

  // Marks the grant as needing re-authorization with `reason` (no secret)
  // unless it was replaced since `version`; written on the writer thread
  // (shared store: unless another replica wrote it meanwhile, whose grant
  // is adopted instead).
  void MarkNeedsReauthorization(std::string app, std::string user_id,
                                int64_t version, std::string reason);

  // Deletes the grant durably and returns its refresh token (to revoke it
  // at the server): the newest one this replica knows, the store's or its
  // own dirty one. Blocks. Errors: NOT_FOUND; the store's; DATA_LOSS when
  // only an unreadable record was stored (it is deleted, but there is no
  // refresh token to revoke).
  absl::StatusOr<std::string> Remove(absl::string_view app,
                                     absl::string_view user_id);

  // Shared store: re-reads the grant on the writer thread (a dirty one is
  // written back first, by the conflict rule) and adopts the stored record
  // if its version is not the one held here; forgets the grant if the store
  // has none. Then calls `done` on the writer thread: OK, or the store's
  // error (the grant held here is unchanged). For the replica about to
  // refresh the grant. Local store: `done(OK)` at once.
  void Refresh(std::string app, std::string user_id,
               absl::AnyInvocable<void(absl::Status)> done);

  // Another replica wrote `version` of the grant (pub/sub): Refresh()
  // without a callback unless this replica holds that version already.
  // Does not block.
  void Adopt(std::string app, std::string user_id, int64_t version);

  // Another replica removed the grant: forgets it here at once (no store
  // access; a write of it in flight loses its compare-and-set). Does not
  // block.
  void Forget(absl::string_view app, absl::string_view user_id);

  // Writes back every dirty grant (conflict rule above) on the writer
  // thread, then calls `done` (may be empty): OK when none is left dirty,
  // else the first error. For when the shared store is reachable again; it
  // is also tried after every write that works. Does not block.
  void WriteBack(absl::AnyInvocable<void(absl::Status)> done = nullptr);

  // Shared store: writes back, then reads every record (LoadAll) and adopts
  // the ones whose version differs from a clean grant held here or that
  // are not held here (a replica that missed pub/sub messages). Does not
  // forget grants missing from the store (Forget() does, from the removal
  // messages and their catch-up). `done` (may be empty) gets OK or the
  // store's error. Local store: `done(OK)`. Does not block.
  void Resync(absl::AnyInvocable<void(absl::Status)> done = nullptr);

  // How many grants are dirty (rotated but not yet in the store): health.
  int DirtyCount() const;

  // Blocks until every write queued so far is done (tests, shutdown).
  void Drain();

 private:
  using Key = std::pair<std::string, std::string>;  // (app, user_id)
  // A grant as this replica knows it.
  struct Entry {
    UserGrant grant;
    // The version the store held when this replica last read or wrote it:
    // the base of a write-back. grant.version != stored_version: dirty.
    int64_t stored_version = 0;
    bool dirty() const { return grant.version != stored_version; }
  };
  using Done = absl::AnyInvocable<void(absl::Status)>;

  static UserGrantSummary Summarize(const UserGrant& grant);
  // Puts (local store) or compare-and-sets on `based_on` (shared store).
  absl::Status StoreWrite(const UserGrant& grant, int64_t based_on);
  // After a successful write of `version`: marks it clean (if it is still
  // that version) and tells the listener.
  void Written(const Key& key, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes the dirty grant of `key` (if it is dirty) by compare-and-set on
  // its stored_version; ABORTED: the conflict rule (re-read, adopt).
  absl::Status WriteBackOne(const Key& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // WriteBackOne() for every dirty grant; stops at the first error.
  absl::Status WriteBackAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces the grant held for `key` by the store's (or forgets it if the
  // store has none). The store's error leaves it as it is.
  absl::Status ReRead(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RefreshOne(const Key& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // True if the grant held for `key` is `version` and not dirty.
  bool HoldsClean(const Key& key, int64_t version) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Holds `grant` as the store's (clean), dropping what was held.
  void AdoptLocked(UserGrant grant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GrantStore& store_;
  const Clock& clock_;
  const bool shared_;
  // Serializes every change of the index that involves the store (and so
  // every store write), in order.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::map<Key, Entry> grants_ ABSL_GUARDED_BY(mu_);
  WriteListener listener_ ABSL_GUARDED_BY(mu_);
  SerialExecutor writer_;  // Last: destroyed (drained) first.
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_USERS_USER_GRANTS_H_
