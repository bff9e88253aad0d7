#ifndef TOKENBROKER_SERVICE_SHARED_TOKEN_RECORD_H_
#define TOKENBROKER_SERVICE_SHARED_TOKEN_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/store/sealed_box.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

// A token as stored in Redis under P"token:" app ":" H:
//   "<fence>:<revgen>:<envelope>"
// where the envelope is KeyRing::Seal() of a JSON object holding the token
// (access_token, token_type, issued_at, expires_at, scopes), the cache key
// it belongs to, and the fence and revgen again, with the full Redis key
// name as associated data. The fence and revgen stay readable in front so
// that the write script can compare them without the key; the sealed copies
// let a reader reject a header that was altered. A value copied to another
// key name does not open; nothing in the value is readable without the key.
struct TokenRecord {
  int64_t fence = 0;   // From INCR on P"fence:" app ":" H.
  int64_t revgen = 0;  // The app's (plus the user's) revocation generation.
  std::string cache_key;
  Token token;  // fingerprint is not stored.
};

// Seals `record` for the Redis key `key_name`. Errors: those of
// KeyRing::Seal (INTERNAL, INVALID_ARGUMENT), never quoting the token.
// Thread-safe.
absl::StatusOr<std::string> SealTokenRecord(const KeyRing& keys,
                                            absl::string_view key_name,
                                            const TokenRecord& record);

// The fence in front of a stored value, read as the scripts read it (the
// digits before the first ':'); 0 if there are none.
int64_t StoredRecordFence(absl::string_view value);

// Opens a value read from `key_name`. Errors, which never quote the value:
//   INVALID_ARGUMENT  malformed header, envelope or JSON;
//   NOT_FOUND         sealed with a key id the ring lacks;
//   DATA_LOSS         authentication failed (another key, another key name,
//                     an altered value) or the header does not match the
//                     sealed fence and revgen.
// Thread-safe.
absl::StatusOr<TokenRecord> OpenTokenRecord(const KeyRing& keys,
                                            absl::string_view key_name,
                                            absl::string_view value);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_SHARED_TOKEN_RECORD_H_
