#ifndef TOKENBROKER_SERVICE_AUTH_IDENTITY_H_
#define TOKENBROKER_SERVICE_AUTH_IDENTITY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "service/config/config.h"

namespace tokenbroker {

// What the transport says about a peer, independent of gRPC.
struct PeerCredentials {
  // From a verified client certificate (mTLS); empty otherwise.
  std::string spiffe_id;    // The SPIFFE URI SAN, if exactly one.
  std::string common_name;  // The subject CN.
  // The key of an `authorization: Bearer KEY` header, if one was sent.
  absl::optional<std::string> bearer_key;
  // A description of the peer for audit records (e.g. "ipv4:10.0.0.7:5321").
  std::string peer;
};

// Who is calling, once recognized.
struct CallerIdentity {
  const CallerConfig* caller = nullptr;  // Points into the Config used.
  std::string method;                    // "mtls", "bearer" or "anonymous".
  std::string principal;  // SPIFFE id, CN, "key:<fingerprint>" or "-".
};

// The name of the caller that unidentified peers become when
// development.insecure_plaintext is on.
inline constexpr absl::string_view kAnonymousCaller = "anonymous";

// Recognizes the caller:
// 1. a bearer key whose SHA-256 is configured (constant-time comparison);
// 2. else the certificate's SPIFFE id, or its CN if it has no SPIFFE id,
//    among callers' identities (an unknown SPIFFE id does not fall back to
//    the CN);
// 3. else, with development.insecure_plaintext, the caller "anonymous" if
//    it is configured.
// A bearer key that matches no caller is refused even if a certificate
// would match: a wrong key is never silently ignored.
// Errors: UNAUTHENTICATED saying what was missing or not recognized; never
// quotes a key.
absl::StatusOr<CallerIdentity> IdentifyCaller(const Config& config,
                                              const PeerCredentials& peer);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_AUTH_IDENTITY_H_
