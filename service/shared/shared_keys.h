#ifndef TOKENBROKER_SERVICE_SHARED_SHARED_KEYS_H_
#define TOKENBROKER_SERVICE_SHARED_SHARED_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tokenbroker {

// The names of everything the broker keeps in Redis, under one key prefix P
// (default "tokenbroker:"), as docs and the issue-13 plan give them:
//   P "token:" app ":" H    a token record (token_record.h)
//   P "lease:" app ":" H    "<owner id>:<fence>", the fetch lease
//   P "fence:" app ":" H    INCR counter of fencing numbers
//   P "revgen"              HASH: app -> gen; app "\x1f" user -> gen
//   P "config_generation"   INCR on every ReloadConfig
//   P "grant:" app ":" user a user grant
//   P "events"              the pub/sub channel
// H = KeyHash(cache key): no scope, user id or token appears in a key name.
// Immutable; thread-safe.
class SharedKeys {
 public:
  static constexpr absl::string_view kDefaultPrefix = "tokenbroker:";

  explicit SharedKeys(std::string prefix = std::string(kDefaultPrefix));

  // The first 32 hex digits of the SHA-256 of `cache_key` (CacheKey()).
  static std::string KeyHash(absl::string_view cache_key);

  std::string Token(absl::string_view app, absl::string_view hash) const;
  std::string Lease(absl::string_view app, absl::string_view hash) const;
  std::string Fence(absl::string_view app, absl::string_view hash) const;
  std::string Grant(absl::string_view app, absl::string_view user_id) const;
  std::string Revgen() const;
  std::string ConfigGeneration() const;
  std::string Events() const;

  // The fields of the revgen hash: an app's, and one user's of an app.
  static std::string RevgenField(absl::string_view app) {
    return std::string(app);
  }
  static std::string RevgenUserField(absl::string_view app,
                                     absl::string_view user_id);

  const std::string& prefix() const { return prefix_; }

 private:
  std::string prefix_;
};

// OK if `prefix` may prefix key names: at most 64 printable ASCII characters
// without spaces (empty is allowed). INVALID_ARGUMENT otherwise.
absl::Status ValidateKeyPrefix(absl::string_view prefix);

// One message on the P"events" channel. Formats (space-separated; a user id,
// which may hold spaces, is always last):
//   token <app> <H> <fence>                 a new token record is stored
//   failed <app> <H> <retry_after_ms> <code>  the lease holder's fetch failed
//   revoke <app> <gen>
//   revoke_user <app> <gen> <user_id>
//   grant <app> <user_id> <version>     (the version is the last word)
//   reload <generation>
struct SharedMessage {
  enum class Type { kToken, kFailed, kRevoke, kRevokeUser, kGrant, kReload };
  Type type = Type::kToken;
  std::string app;
  std::string hash;  // kToken, kFailed.
  std::string user;  // kRevokeUser, kGrant.
  // kToken: the fence; kFailed: retry_after_ms; kRevoke*: the generation;
  // kGrant: the version; kReload: the config generation.
  int64_t number = 0;
  int code = 0;  // kFailed: an absl::StatusCode.
};

std::string FormatSharedMessage(const SharedMessage& message);
// nullopt for anything malformed or unknown (ignored by listeners: a newer
// broker may send more kinds).
std::optional<SharedMessage> ParseSharedMessage(absl::string_view payload);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_SHARED_SHARED_KEYS_H_
