#ifndef TOKENBROKER_SERVICE_STORE_GRANT_STORE_H_
#define TOKENBROKER_SERVICE_STORE_GRANT_STORE_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
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
  // Bumped by the caller on every Put; kept for compare-and-set in a shared
  // store later.
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
};

// Checks what every store requires of a grant before it is written:
// `app` and `user_id` non-empty, at most 256 bytes, no NUL; `refresh_token`
// only printable ASCII (RFC 6749's VSCHAR; may be empty); every string valid
// UTF-8. INVALID_ARGUMENT naming the field, never quoting the token.
absl::Status ValidateGrant(const UserGrant& grant);

// The part of ValidateGrant() about the record's key (app and user_id).
absl::Status ValidateGrantKey(absl::string_view app, absl::string_view user_id);

// Persistent storage of user grants, one record per (app, user_id).
// Implementations are thread-safe.
class GrantStore {
 public:
  virtual ~GrantStore() = default;

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
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_STORE_GRANT_STORE_H_
