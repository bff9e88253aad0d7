#ifndef TOKENBROKER_SERVICE_STORE_SEALED_BOX_H_
#define TOKENBROKER_SERVICE_STORE_SEALED_BOX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tokenbroker {

// Authenticated encryption of small secrets at rest (refresh-token grants on
// disk, values in a shared store) with AES-256-GCM through OpenSSL's EVP.
//
// A sealed value is a self-describing text envelope
//   tbx1.<key id>.<nonce>.<ciphertext and tag>
// where the nonce (12 random bytes, fresh from RAND_bytes for every seal) and
// the ciphertext followed by its 16-byte tag are unpadded base64url. The key id
// names the key that sealed the value so that keys can be rotated: a KeyRing
// seals with its current key and opens with any key it holds. The format
// version and the key id are authenticated along with the caller's associated
// data (`aad`), which binds a value to where it belongs (a record's app and
// user, a Redis key name): a value moved elsewhere does not open.
//
// Random 96-bit nonces keep the nonce-collision risk negligible up to about
// 2^32 seals per key (NIST SP 800-38D, 8.3); rotate the key well before that.

inline constexpr size_t kSealKeyBytes = 32;
// Key ids: 1 to 32 characters of [A-Za-z0-9._-].
inline constexpr size_t kMaxSealKeyIdLength = 32;
// Longest plaintext Seal() accepts (and ciphertext Open() accepts).
inline constexpr size_t kMaxSealedPlaintextBytes = size_t{16} << 20;

// One AES-256 key and its id. The key bytes are cleared (OPENSSL_cleanse)
// when the object is destroyed or overwritten; copies are independent and
// cleared in turn. Never log `bytes`.
struct SealKey {
  SealKey() = default;
  SealKey(std::string key_id, std::string key_bytes);
  SealKey(const SealKey& other) = default;
  // Copies then clears `other` (no move: a moved-from short string may keep
  // its characters).
  SealKey(SealKey&& other);
  SealKey& operator=(const SealKey& other);
  SealKey& operator=(SealKey&& other);
  ~SealKey();

  std::string id;
  std::string bytes;  // exactly kSealKeyBytes; SECRET
};

// OK if `id` is 1-32 characters of [A-Za-z0-9._-], else INVALID_ARGUMENT
// saying so.
absl::Status ValidateSealKeyId(absl::string_view id);

// Makes a key from raw bytes. INVALID_ARGUMENT for a bad id or a length other
// than kSealKeyBytes (the message gives the length, never the bytes).
absl::StatusOr<SealKey> MakeSealKey(std::string id, std::string bytes);

// Reads a key file (a Kubernetes Secret mount): 32 random bytes written as 64
// hex digits (`openssl rand -hex 32`) or as 44 characters of standard,
// padded base64 (`openssl rand -base64 32`); whitespace around them is
// ignored. Errors name `path` and what is wrong, never the content:
// INVALID_ARGUMENT for a bad `id`, a content of another form or length, or a
// key of all zero bytes; the codes of ReadFile() (NOT_FOUND,
// PERMISSION_DENIED, ...) when the file cannot be read. Thread-safe.
absl::StatusOr<SealKey> ReadSealKeyFile(std::string id,
                                        const std::string& path);

// A set of keys: the first is current (seals new values), every one opens the
// values sealed with it. Immutable after creation, so thread-safe.
class KeyRing {
 public:
  // Errors (INVALID_ARGUMENT): no key, a key with an invalid id or not
  // kSealKeyBytes long, two keys with the same id (named).
  static absl::StatusOr<std::shared_ptr<const KeyRing>> Create(
      std::vector<SealKey> keys);

  KeyRing(const KeyRing&) = delete;
  KeyRing& operator=(const KeyRing&) = delete;

  // Seals `plaintext` with the current key, bound to `aad` (which is not
  // stored in the envelope: Open() needs the same `aad`). Errors:
  // INVALID_ARGUMENT if `plaintext` is longer than kMaxSealedPlaintextBytes;
  // INTERNAL if OpenSSL fails (no random bytes for the nonce: nothing is
  // sealed then, a nonce is never reused).
  absl::StatusOr<std::string> Seal(absl::string_view plaintext,
                                   absl::string_view aad) const;

  // Opens an envelope made by Seal() with the same `aad`. Errors, which
  // never quote the envelope, the plaintext or the aad:
  //   INVALID_ARGUMENT  malformed envelope (says which part);
  //   NOT_FOUND         sealed with a key id the ring lacks (names the id and
  //                     the ids the ring has);
  //   DATA_LOSS         authentication failed: another key under that id,
  //                     other associated data, or an altered envelope.
  // The caller owns the returned plaintext (a secret: clear it when done).
  absl::StatusOr<std::string> Open(absl::string_view envelope,
                                   absl::string_view aad) const;

  // The key id an envelope names, without opening it; INVALID_ARGUMENT if the
  // envelope is malformed.
  static absl::StatusOr<std::string> KeyIdOf(absl::string_view envelope);

  // True if `envelope` is well formed and names the current key; false means
  // the value should be re-sealed (if it opens) before the old key is retired.
  bool IsCurrent(absl::string_view envelope) const;

  const std::string& current_key_id() const { return keys_.front().id; }
  std::vector<std::string> key_ids() const;

 private:
  explicit KeyRing(std::vector<SealKey> keys);
  const SealKey* Find(absl::string_view id) const;

  const std::vector<SealKey> keys_;  // non-empty; front() is current
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_STORE_SEALED_BOX_H_
