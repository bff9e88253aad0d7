#include "service/auth/identity.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace tokenbroker {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest);
  std::string hex(2 * SHA256_DIGEST_LENGTH, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    std::snprintf(&hex[2 * i], 3, "%02x", digest[i]);
  }
  return hex;
}

absl::StatusOr<CallerIdentity> IdentifyCaller(const Config& config,
                                              const PeerCredentials& peer) {
  if (peer.bearer_key.has_value()) {
    std::string hash = Sha256Hex(*peer.bearer_key);
    const CallerConfig* match = nullptr;
    // Compare against every configured hash, in constant time each, and do
    // not stop early: timing says nothing about which hash was close.
    for (const CallerConfig& caller : config.callers) {
      for (const std::string& expected : caller.bearer_key_sha256) {
        if (expected.size() == hash.size() &&
            CRYPTO_memcmp(expected.data(), hash.data(), hash.size()) == 0) {
          match = &caller;
        }
      }
    }
    if (match == nullptr) {
      return absl::UnauthenticatedError(
          "the bearer key is not recognized: check the key file the caller "
          "sends, and that its SHA-256 is listed under the caller's "
          "bearer_key_sha256");
    }
    return CallerIdentity{match, "bearer",
                          absl::StrCat("key:", hash.substr(0, 12))};
  }

  // A certificate with a SPIFFE id is that id; its CN is looked at only when
  // there is none. Otherwise an unknown SPIFFE id whose CN happens to name
  // another caller would be taken for that caller.
  const std::string& name =
      peer.spiffe_id.empty() ? peer.common_name : peer.spiffe_id;
  if (!name.empty()) {
    for (const CallerConfig& caller : config.callers) {
      for (const std::string& identity : caller.identities) {
        if (identity == name) return CallerIdentity{&caller, "mtls", name};
      }
    }
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate (",
        peer.spiffe_id.empty() ? "CN " + peer.common_name : peer.spiffe_id,
        ") is not a configured caller: add it to a caller's identities"));
  }

  if (config.development.insecure_plaintext) {
    for (const CallerConfig& caller : config.callers) {
      if (caller.name == kAnonymousCaller) {
        return CallerIdentity{&caller, "anonymous", "-"};
      }
    }
  }
  return absl::UnauthenticatedError(
      "no caller identity: present a client certificate (mTLS) or send "
      "'authorization: Bearer KEY' metadata");
}

}  // namespace tokenbroker
