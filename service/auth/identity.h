#ifndef TOKENBROKER_SERVICE_AUTH_IDENTITY_H_
#define TOKENBROKER_SERVICE_AUTH_IDENTITY_H_

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "service/common/token_fingerprint.h"  // IWYU pragma: export
#include "service/config/config.h"

namespace tokenbroker {

// What the transport says about a peer, independent of gRPC.
struct PeerCredentials {
  // Whether the peer presented a verified client certificate (mTLS).
  bool has_certificate = false;
  // Every URI SAN of that certificate, in order, as sent (not validated).
  std::vector<std::string> uri_sans;
  // Every subject CN of that certificate (normally one), as UTF-8.
  std::vector<std::string> common_names;
  // Set when the certificate was presented but could not be read; the peer
  // is then refused, never taken for one without a certificate.
  std::string certificate_error;
  // The key of an `authorization: Bearer KEY` header, if one was sent.
  absl::optional<std::string> bearer_key;
  // A description of the peer for audit records (e.g. "ipv4:10.0.0.7:5321").
  std::string peer;
};

// The names a certificate gives its subject.
struct CertificateNames {
  std::vector<std::string> uri_sans;      // Every URI SAN, in order.
  std::vector<std::string> common_names;  // Every subject CN, as UTF-8.
};

// Reads the names of the first certificate in `pem` (the leaf, as gRPC
// passes it in the x509_pem_cert property). Thread-safe.
// Errors: INVALID_ARGUMENT if `pem` holds no certificate, or one whose
// subjectAltName extension is malformed or given more than once (which
// verifiers read differently); the message does not quote the certificate.
absl::StatusOr<CertificateNames> ReadCertificateNames(absl::string_view pem);

// ReadCertificateNames() with its answers remembered by certificate text:
// parsing a certificate costs about 100 us, and every RPC of a connection
// presents the same one. The answer depends on the text alone, so a cached
// one is as good as a fresh one. Holds at most `capacity` certificates (then
// starts over). Thread-safe.
class CertificateNamesCache {
 public:
  explicit CertificateNamesCache(size_t capacity = 1024)
      : capacity_(capacity) {}

  absl::StatusOr<CertificateNames> Get(absl::string_view pem)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::unordered_map<std::string, absl::StatusOr<CertificateNames>> entries_
      ABSL_GUARDED_BY(mu_);
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
// 2. else a client certificate:
//    - one with any URI SAN is known only by it: it must carry exactly one
//      URI SAN, a valid SPIFFE id (CheckSpiffeId) listed in a caller's
//      spiffe_ids; its CN is never looked at (an unknown or malformed SPIFFE
//      id does not fall back to the CN);
//    - one without URI SANs is known by its subject CN (exactly one), listed
//      in a caller's common_names; a CN that reads as a SPIFFE id never
//      matches;
// 3. else, with development.insecure_plaintext, the caller "anonymous" if
//    it is configured.
// A bearer key that matches no caller is refused even if a certificate
// would match: a wrong key is never silently ignored.
// Errors: UNAUTHENTICATED saying what was missing or not recognized; never
// quotes a key; names from the certificate appear sanitized.
absl::StatusOr<CallerIdentity> IdentifyCaller(const Config& config,
                                              const PeerCredentials& peer);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_AUTH_IDENTITY_H_
