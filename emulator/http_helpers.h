#ifndef TOKENBROKER_EMULATOR_HTTP_HELPERS_H_
#define TOKENBROKER_EMULATOR_HTTP_HELPERS_H_

// The emulator's HTTP helpers, shared by its handlers (library-internal, not
// part of emulator.h): JSON answers, request bodies (form or JSON), client
// and bearer credentials in requests, random tokens. Pure functions of their
// arguments; thread-safe.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::emulator::internal {

// ---- Answers

// json::dump throws on invalid UTF-8; this replaces such bytes instead.
std::string Dump(const nlohmann::json& j);
// Sets `status` and `body` as application/json.
void SetJson(httplib::Response& res, int status, const nlohmann::json& body);
// Anypoint's error shape: {"message": message}.
void SetMessage(httplib::Response& res, int status, absl::string_view message);
// RFC 6749 5.2: {"error": error, "error_description": description}.
void SetOAuthError(httplib::Response& res, int status, absl::string_view error,
                   absl::string_view description);

// ---- Requests

// The Content-Type without parameters, lower case ("" if none).
std::string MediaType(const httplib::Request& req);

// The pairs of an application/x-www-form-urlencoded text (a form body or a
// query string), in order; empty pairs are skipped, "+" decodes to a space,
// a pair without "=" has an empty value.
std::vector<std::pair<std::string, std::string>> DecodeUrlEncoded(
    absl::string_view text);

using Params = std::map<std::string, std::string>;

// Parses an OAuth request body: form or JSON object of strings (JSON nulls
// are skipped). kInvalidArgument, with a message meant for
// error_description, for another Content-Type, a repeated form field, a body
// that is not a JSON object or a value that is not a string.
absl::StatusOr<Params> ParseBodyParams(const httplib::Request& req);

// The value of `key`, or "".
std::string ParamOr(const Params& params, const std::string& key);

// Client credentials from the body, else from HTTP Basic (RFC 6749 2.3.1:
// both parts form-urlencoded; `*basic` tells which). Both empty if neither.
void ClientCredentials(const httplib::Request& req, const Params& params,
                       std::string* id, std::string* secret, bool* basic);

// The token of an "Authorization: Bearer <token>" header (scheme case
// insensitive, whitespace stripped), or nullopt if the header is not a
// bearer one.
std::optional<std::string> BearerToken(const httplib::Request& req);

// ---- Values

bool IsValidUtf8(absl::string_view s);
// RFC 3339 UTC with milliseconds, for log lines.
std::string FormatTimestamp(absl::Time t);
// `bytes` random bytes from OpenSSL's CSPRNG, hex encoded. Aborts if the
// CSPRNG fails rather than hand out predictable tokens.
std::string RandomToken(size_t bytes);
// Constant-time comparison of two secrets.
bool SecretsEqual(const std::string& a, const std::string& b);
// RFC 7636 4.2 S256: BASE64URL(SHA256(ASCII(verifier))), without padding.
std::string S256Challenge(absl::string_view verifier);
// True if `s` is `min_size`..`max_size` characters of the given alphabet:
// base64url (A-Z a-z 0-9 - _), or with `pkce_verifier` RFC 7636's
// unreserved set (those and . ~).
bool IsPkceString(absl::string_view s, size_t min_size, size_t max_size,
                  bool pkce_verifier);
// `uri` with `params` appended to its query ('?' or '&'), each name and value
// percent-encoded. Pairs with an empty value are left out.
std::string AppendQuery(
    const std::string& uri,
    const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace tokenbroker::emulator::internal

#endif  // TOKENBROKER_EMULATOR_HTTP_HELPERS_H_
