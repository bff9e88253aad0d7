#ifndef TOKENBROKER_SERVICE_UPSTREAM_OAUTH_RESPONSE_H_
#define TOKENBROKER_SERVICE_UPSTREAM_OAUTH_RESPONSE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/upstream/http_client.h"
#include "service/upstream/token_source.h"

// Pure functions that turn OAuth 2.0 token-endpoint answers into tokens or
// statuses (the one conversion from HTTP/OAuth errors, see style.md). No I/O,
// no clock: `now` is a parameter. Thread-safe.

namespace tokenbroker {

struct TokenParseOptions {
  std::string app;  // Named in error messages.
  // Lifetime assumed when `expires_in` is missing or not a number.
  absl::Duration default_lifetime = absl::Seconds(3600);
  // Shorter lifetimes are refused (see ParseTokenResponse).
  absl::Duration min_lifetime = absl::Seconds(10);
  // Longer lifetimes are clamped to this.
  absl::Duration max_lifetime = absl::Hours(24);
};

// Parses a token endpoint answer received at `now`.
//
// Success: a 2xx answer whose body is a JSON object with a non-empty string
// `access_token`. `token_type` must be "bearer" in any case, or absent.
// `expires_in` may be a number or a numeric string; when missing, null or
// not a number (another type, a non-numeric string, "NaN"),
// `default_lifetime` is assumed (the server will answer 401 when the token
// really expires); when below `min_lifetime` (zero, negative, 1e-300, ...)
// the answer is refused: such a token expires before callers can use it and
// would be refetched in a loop; when above `max_lifetime` (up to infinity)
// it is clamped. `scope` (space separated) becomes Token::scopes, sorted and
// de-duplicated; empty if absent.
//
// Errors (messages name the app, the HTTP status and the OAuth error code, and
// never contain a token, a secret or the body verbatim; `error_description`
// appears only sanitized and truncated):
//   UNAVAILABLE          2xx that is not such a JSON object ("malformed token
//                        response"); 408, 429 and 5xx, with the delay of
//                        ParseRetryDelay() attached (retry_info.h) if any.
//   FAILED_PRECONDITION  any other status (401, 400 invalid_grant, other
//                        4xx, 3xx as redirects are not followed), an
//                        unsupported `token_type` or an `expires_in` below
//                        `min_lifetime` (the message gives the value):
//                        retrying soon will not help.
absl::StatusOr<Token> ParseTokenResponse(const HttpResponse& response,
                                         absl::Time now,
                                         const TokenParseOptions& options);

// A token answer of the authorization_code or refresh_token grant: the
// access token and, when the server issued one, a (new) refresh token. The
// refresh token is a secret: cleared when destroyed, never printed.
struct UserTokenResponse {
  UserTokenResponse() = default;
  UserTokenResponse(UserTokenResponse&& other) noexcept;
  UserTokenResponse& operator=(UserTokenResponse&&) = delete;
  ~UserTokenResponse();

  Token token;
  std::string refresh_token;  // Empty: none issued (keep the old one).
  // Whether the answer had `scope`; without it the granted scopes are the
  // requested ones (RFC 6749 5.1).
  bool scope_present = false;
};

// ParseTokenResponse() that also keeps `refresh_token`.
absl::StatusOr<UserTokenResponse> ParseUserTokenResponse(
    const HttpResponse& response, absl::Time now,
    const TokenParseOptions& options);

// The OAuth `error` code of an error answer (e.g. "invalid_grant"),
// sanitized; empty if the body is not an OAuth error object.
std::string OAuthErrorCode(const HttpResponse& response);

// The status for a non-2xx answer of an OAuth endpoint (token or revoke), as
// described for ParseTokenResponse(). `endpoint` names it in the message
// ("token", "revoke"). Returns OK for a 2xx status.
absl::Status OAuthErrorStatus(const HttpResponse& response, absl::Time now,
                              absl::string_view app,
                              absl::string_view endpoint);

// The delay a server asks for before the next request: `Retry-After` as delta
// seconds or an HTTP date, else `X-RateLimit-Reset` as epoch seconds (values
// below 1e9 are taken as delta seconds). Negative delays become zero; delays
// are capped at one hour. nullopt if neither header is present and valid.
std::optional<absl::Duration> ParseRetryDelay(const HttpHeaders& headers,
                                              absl::Time now);

// Encodes `fields` as application/x-www-form-urlencoded: RFC 3986 unreserved
// characters kept, space as '+', everything else percent-encoded (UTF-8
// bytes). The result is allocated once, at its largest possible size, so
// that no partial copy of a secret field is left in freed memory (the same
// holds for FormEncodeComponent).
std::string FormEncode(
    const std::vector<std::pair<std::string, std::string>>& fields);

// Encodes one name or value as FormEncode() does (RFC 6749 Appendix B; also
// applied to the client id and secret before HTTP Basic, RFC 6749 2.3.1).
std::string FormEncodeComponent(absl::string_view text);

// `text` made safe for an error message: printable ASCII only (others become
// '?'), at most `max_length` characters (then "...").
std::string SanitizeForMessage(absl::string_view text, size_t max_length = 200);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_OAUTH_RESPONSE_H_
