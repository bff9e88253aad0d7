#ifndef TOKENBROKER_SERVICE_STORE_GRANT_STORE_H_
#define TOKENBROKER_SERVICE_STORE_GRANT_STORE_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tokenbroker {

// The refresh-token grant of one user of one app (an app that acts on behalf
// of a user): the one piece of broker state that must survive restarts.
//
// It holds a secret, so it has no operator<<: name a grant in logs by app and
// user_id (or username), never by printing it. PrintTo() below (for
// GoogleTest's failure messages) leaves the refresh token out.
struct UserGrant {
  std::string app;                  // broker app name
  std::string user_id;              // Anypoint user id (userinfo `sub`)
  std::string username;             // for display
  std::string refresh_token;        // SECRET
  std::vector<std::string> scopes;  // granted, sorted
  absl::Time connected_at;          // when the user consented
  absl::Time updated_at;            // last write (rotation, re-auth mark)
  bool needs_reauthorization = false;
  std::string reauthorization_reason;  // no secrets; shown to operators
  // The record's version: every write of a record stores the version it
  // replaced plus one (a store shared by several processes compares it:
  // GrantStore::PutIfVersion). 0 is "no record".
  int64_t version = 0;
};

// Every field but the refresh token (which shows as its length), for
// GoogleTest's messages. Never use it to log.
void PrintTo(const UserGrant& grant, std::ostream* out);

// What a store holds at start.
struct GrantStoreLoad {
  // Every record that could be read, ordered by (app, user_id).
  std::vector<UserGrant> grants;
  // One line per record that could not be read: which record (file name, and
  // app and user when readable) and what is wrong, never a secret. Those
  // records are left in place, untouched, for an operator to look at.
  std::vector<std::string> problems;
  // Things an operator may want to know that lost no record (a leftover
  // temporary file removed, a record that could not be re-sealed with the
  // current key and so still needs an old one).
  std::vector<std::string> warnings;
  // Not OK when the store could not be listed to the end (a shared store
  // that is down): `grants` may then lack records that are fine.
  absl::Status error;
};

// Checks what every store requires of a grant before it is written:
// `app` and `user_id` non-empty, at most 256 bytes, no NUL; `refresh_token`
// only printable ASCII (RFC 6749's VSCHAR; may be empty); every string valid
// UTF-8. INVALID_ARGUMENT naming the field, never quoting the token.
absl::Status ValidateGrant(const UserGrant& grant);

// The part of ValidateGrant() about the record's key (app and user_id).
absl::Status ValidateGrantKey(absl::string_view app, absl::string_view user_id);

// What PutIfVersion() checks before it writes: ValidateGrant(), and
// grant.version above `expected_version` (INVALID_ARGUMENT otherwise).
absl::Status ValidateVersionedPut(const UserGrant& grant,
                                  int64_t expected_version);

// The whole grant, refresh token included, as one JSON object: what a store
// seals. A SECRET: clear it (ClearSecret) once sealed. The token is spliced
// into a buffer sized up front, so no copy of it is left that the caller
// cannot clear. Only for a grant ValidateGrant() accepted.
std::string GrantRecordJson(const UserGrant& grant);

// Reads what GrantRecordJson() wrote (after the seal authenticated it) and
// clears `*json`. DATA_LOSS saying which field is missing or of the wrong
// type ("its sealed record has no string \"user_id\"", ...), never quoting
// the content.
absl::StatusOr<UserGrant> ParseGrantRecordJson(std::string* json);

// Persistent storage of user grants, one record per (app, user_id).
// Implementations are thread-safe.
//
// A store is either local (FileGrantStore, whose directory one process
// locks; MemoryGrantStore), written by this process alone, or shared
// (RedisGrantStore), written by every replica: see IsShared().
class GrantStore {
 public:
  virtual ~GrantStore() = default;

  // True if other processes write the same records. A caller then keeps
  // what it read as a cache: it re-reads (Read) and writes by
  // compare-and-set (PutIfVersion). False (the default): this process's
  // writes are the only ones, so a caller that serializes them knows every
  // stored version and may use Put().
  virtual bool IsShared() const { return false; }

  // Every record that could be read, plus a problem per record that could
  // not. Meant for start-up (it may write, e.g. to re-seal records).
  virtual GrantStoreLoad LoadAll() = 0;

  // Creates or replaces the record of (grant.app, grant.user_id). Durable
  // when it returns OK (the write survives a crash right after). On error the
  // store holds either the previous record or the new one, never neither.
  // Errors: INVALID_ARGUMENT (ValidateGrant), UNAVAILABLE or INTERNAL for
  // storage failures (naming what failed, never a secret).
  virtual absl::Status Put(const UserGrant& grant) = 0;

  // Removes the record; OK if absent. Durable when it returns OK. Errors:
  // INVALID_ARGUMENT (ValidateGrantKey), UNAVAILABLE or INTERNAL.
  virtual absl::Status Delete(absl::string_view app,
                              absl::string_view user_id) = 0;

  // The record of (app, user_id), or nullopt if there is none. Errors:
  // INVALID_ARGUMENT (ValidateGrantKey); DATA_LOSS for a record that exists
  // but cannot be read (naming it, never a secret); UNAVAILABLE or INTERNAL
  // for storage failures. The default reads every record (LoadAll()) and
  // picks one: a record it cannot read shows as absent. Fine for a local
  // store, which needs no re-reading (IsShared()); a shared store overrides
  // it.
  virtual absl::StatusOr<std::optional<UserGrant>> Read(
      absl::string_view app, absl::string_view user_id);

  // Put() if the stored record's version is `expected_version` (0: there is
  // no record), atomically. Errors: ABORTED when it is another (someone
  // else wrote or removed the record: re-read it; nothing is written);
  // INVALID_ARGUMENT from ValidateGrant() or when grant.version is not above
  // `expected_version` (versions only grow); Put()'s otherwise. The default
  // is Read(), compare, Put() under a lock of this object: atomic for a
  // store that nothing else writes meanwhile (a local store); a shared store
  // overrides it.
  virtual absl::Status PutIfVersion(const UserGrant& grant,
                                    int64_t expected_version);

 private:
  absl::Mutex put_if_version_mu_;  // the default PutIfVersion()
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_STORE_GRANT_STORE_H_
