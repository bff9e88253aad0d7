#include "service/common/token_fingerprint.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"

namespace tokenbroker {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string TokenFingerprint(absl::string_view token) {
  return Sha256Hex(token).substr(0, kTokenFingerprintLength);
}

}  // namespace tokenbroker
