#ifndef TOKENBROKER_SERVICE_COMMON_PATH_SEGMENTS_H_
#define TOKENBROKER_SERVICE_COMMON_PATH_SEGMENTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tokenbroker {

// The one notion of a path segment that the Call validator
// (ValidateCallRequest) and the route matcher (RouteMatches) share, so that
// what the policy matched is what the upstream server will see.

// Splits the path of an origin-form request target ("/a/b%20c?q=1"; the
// query, from the first '?', is ignored) into its segments, each
// percent-decoded once (what a server sees): "/a/b%20c" -> {"a", "b c"},
// "/" -> {""}, "/a/" -> {"a", ""}. Empty segments are kept.
//
// Refused, so that no server can read the path differently from the broker:
// - a target that does not start with '/', or starts with "//" (a host);
// - in the path: anything but printable ASCII, '\', '#' and '@';
// - in a segment, raw or after any level of percent-decoding (up to
//   kMaxPercentDecodeLevels levels, so double encoding is seen through):
//   - ';' (a path parameter: Java servlet containers drop what follows it,
//     so "..;" and "..;x=1" read as ".."),
//   - a "." or ".." segment (also with surrounding spaces),
//   - '/' or '\' that was encoded,
//   - control characters (NUL, CR, LF, ...) and DEL,
//   - a '%' not followed by two hex digits,
//   - bytes that are not valid UTF-8 (overlong forms such as %c0%ae,
//     surrogates, code points above U+10FFFF, truncated sequences),
//   - characters that Unicode compatibility normalization (NFKC) turns into
//     '.', '/', '\' or ';' (e.g. U+FF0E FULLWIDTH FULL STOP).
// Errors: INVALID_ARGUMENT with a message saying what is wrong (without a
// "path: " prefix; callers add their context). Pure; thread-safe.
absl::StatusOr<std::vector<std::string>> SplitPathSegments(
    absl::string_view target);

// How many levels of percent-encoding SplitPathSegments sees through; a
// segment with more is refused.
inline constexpr int kMaxPercentDecodeLevels = 4;

// Decodes %XX escapes once into `out`. False (and `out` unspecified) if a
// '%' is not followed by two hex digits.
bool PercentDecodeOnce(absl::string_view in, std::string* out);

// Whether `bytes` is well-formed UTF-8 (RFC 3629: shortest form only, no
// surrogates, nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view bytes);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_PATH_SEGMENTS_H_
