#ifndef TOKENBROKER_SERVICE_UPSTREAM_TOKEN_SOURCE_H_
#define TOKENBROKER_SERVICE_UPSTREAM_TOKEN_SOURCE_H_

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tokenbroker {

// An access token as the broker caches it.
struct Token {
  std::string access_token;
  std::string token_type = "Bearer";  // Normalized: always "Bearer".
  absl::Time issued_at;               // When the broker received it.
  absl::Time expires_at;              // issued_at + expires_in (clamped).
  std::vector<std::string> scopes;    // Scopes the token carries.
  // First 12 hex digits of the token's SHA-256, for logs and audit records;
  // set by the cache when the token arrives (computed once, not per use).
  std::string fingerprint;
};

// What to fetch: an app and the sorted, de-duplicated scopes requested
// upstream (empty for client-credentials apps on Anypoint, and for user
// apps, whose refresh gives the token every scope the user granted), and
// for a user app, whose token: the Anypoint user id.
struct TokenRequest {
  std::string app;
  std::vector<std::string> scopes;
  // Empty for apps acting on their own behalf. (Initialized, so that
  // {app, scopes} stays a complete initializer of a client-credentials
  // request.)
  std::string user{};
};

using TokenCallback = absl::AnyInvocable<void(absl::StatusOr<Token>)>;

// Fetches new tokens from an authorization server. Errors:
//   NOT_FOUND            the app is unknown to the source.
//   FAILED_PRECONDITION  the server rejected the app's credentials or grant
//                        (`invalid_client`, `invalid_grant`, ...): retrying
//                        soon will not help.
//   UNAVAILABLE          transient: network failure, 5xx, 429, malformed
//                        answer; may carry a retry delay (retry_info.h).
//   DEADLINE_EXCEEDED    the request timed out.
// Implementations are thread-safe; `done` runs exactly once, possibly on an
// I/O thread, and must not block.
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual void Fetch(const TokenRequest& request, TokenCallback done) = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_TOKEN_SOURCE_H_
