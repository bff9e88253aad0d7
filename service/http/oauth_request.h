#ifndef TOKENBROKER_SERVICE_HTTP_OAUTH_REQUEST_H_
#define TOKENBROKER_SERVICE_HTTP_OAUTH_REQUEST_H_

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/config/config.h"

// What the OAuth pages (OAuthFlow, oauth_flow.h) read from a browser's
// request and write into its answer, apart from the flow itself: the query
// string, the Cookie headers, the browser-binding cookie, and the checks of
// the values an authorization server sends back through the browser. Every
// input here is attacker-controlled; nothing here puts a value into an error
// message. Pure functions; thread-safe.

namespace tokenbroker {
namespace internal {

// A query string's parameters by name.
using QueryParams = std::map<std::string, std::string>;

// A request's cookies, name and value, in the order they came.
using RequestCookies = std::vector<std::pair<std::string, std::string>>;

// The longest query string ParseQuery() accepts.
inline constexpr size_t kMaxQueryBytes = 4096;

// The most cookies ParseCookies() returns; the rest are ignored.
inline constexpr size_t kMaxCookies = 64;

// The browser-binding cookie's names: "__Host-" (Secure, Path=/) when the
// pages are reached over https, else a plain one (Path=/oauth).
inline constexpr absl::string_view kSecureCookieName = "__Host-tb_oauth";
inline constexpr absl::string_view kPlainCookieName = "tb_oauth";

// Decodes the application/x-www-form-urlencoded `query` (raw, without '?'):
// '&'-separated name=value pairs, '+' is a space, %XX escapes are decoded
// once, empty pairs are skipped, a pair without '=' has an empty value.
// Errors: INVALID_ARGUMENT for a query over kMaxQueryBytes, a malformed
// %-escape, or a name that repeats after decoding (RFC 6749 3.1: parameters
// must not repeat). The message never quotes the query.
absl::StatusOr<QueryParams> ParseQuery(absl::string_view query);

// The value of parameter `name`, or null if absent.
const std::string* FindParam(const QueryParams& params, absl::string_view name);

// The name=value pairs of the Cookie header values `headers` (RFC 6265 5.4),
// whitespace around names and values stripped, at most kMaxCookies of them;
// a part without '=' (an attribute such as "HttpOnly") is skipped. Values
// are kept as sent (no unquoting, no decoding); names may repeat.
RequestCookies ParseCookies(const std::vector<std::string>& headers);

// The binding cookie's name for pages reached at `public_base` (a URL):
// kSecureCookieName when it is https, else kPlainCookieName.
absl::string_view BindingCookieName(absl::string_view public_base);

// A Set-Cookie header value that sets binding cookie `name` (one of the two
// names above) to `value` for `max_age`; an empty value with a zero max_age
// clears it. Always HttpOnly and SameSite=Lax; kSecureCookieName also gets
// Secure and Path=/ (as "__Host-" requires), the other Path=/oauth.
std::string BindingCookieHeader(absl::string_view name, absl::string_view value,
                                absl::Duration max_age);

// An OAuth error code as a page may show it: `error` if it is 1 to 64 of
// the characters codes use (letters, digits, '_', '-', '.'), else
// "(unrecognized error)".
std::string SanitizeErrorCode(absl::string_view error);

// Whether `code` may be an authorization code (RFC 6749 A.11: VSCHAR, that
// is printable ASCII), 1 to 2048 characters long.
bool IsPlausibleCode(absl::string_view code);

// The scopes the authorization request asks for: the app's, plus
// offline_access (for a refresh token) unless the app already has it.
std::vector<std::string> RequestedScopes(const AppConfig& app);

}  // namespace internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_OAUTH_REQUEST_H_
