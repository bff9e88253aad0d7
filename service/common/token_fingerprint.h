#ifndef TOKENBROKER_SERVICE_COMMON_TOKEN_FINGERPRINT_H_
#define TOKENBROKER_SERVICE_COMMON_TOKEN_FINGERPRINT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace tokenbroker {

// TokenFingerprint()'s length: the first this many digits of Sha256Hex().
inline constexpr size_t kTokenFingerprintLength = 12;

// Lower-case hex SHA-256 of `data` (64 characters).
std::string Sha256Hex(absl::string_view data);

// The first 12 hex digits of the SHA-256 of `token`: names a token (or a
// caller's bearer key) in logs, audit records and admin answers without
// revealing it. The one fingerprint the broker uses; thread-safe.
std::string TokenFingerprint(absl::string_view token);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_TOKEN_FINGERPRINT_H_
