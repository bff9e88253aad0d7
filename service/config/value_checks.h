#ifndef TOKENBROKER_SERVICE_CONFIG_VALUE_CHECKS_H_
#define TOKENBROKER_SERVICE_CONFIG_VALUE_CHECKS_H_

// Internal to tb_config: checks of the values a configuration holds (names,
// environment variable names, HOST:PORT, URLs, paths, key hashes), free of
// YAML. Checks named Check* return what is wrong, in words a message can
// carry after the key path, or an empty string if the value is valid.
// (CheckSpiffeId is public: config.h.)

#include <string>

#include "absl/strings/string_view.h"

namespace tokenbroker {
namespace config_internal {

// Whether every character of `text` is in the class `in_class` (e.g.
// absl::ascii_isalnum) or among `extra`. True for empty `text`.
bool AllCharsIn(absl::string_view text, bool (*in_class)(unsigned char),
                absl::string_view extra = "");

bool HasWhitespaceOrControl(absl::string_view text);

// 1 to 64 letters, digits, '.', '_' or '-' (apps and callers).
bool IsValidName(absl::string_view name);

// [A-Za-z_][A-Za-z0-9_]*
bool IsValidEnvName(absl::string_view name);

// 64 hex digits, lower case.
bool IsSha256Hex(absl::string_view text);

// "host:port" or "[v6]:port" (the port optional when `port_required` is
// false).
std::string CheckHostPort(absl::string_view authority, bool port_required);

// A path of an endpoint: a single leading '/', no query or fragment. The
// explanation quotes `path`.
std::string CheckUrlPath(absl::string_view path);

// http(s)://HOST[:PORT] with no path, query or user information. Sets
// `normalized` (lower-case scheme, no trailing slash) when it is valid. The
// explanation quotes `url` unless it holds user information (which may be
// a password).
std::string CheckBaseUrl(absl::string_view url, std::string* normalized);

// Whether the host of a normalized base URL (CheckBaseUrl) is a loopback
// address or "localhost".
bool IsLoopbackBaseUrl(absl::string_view normalized);

// The public URL of the OAuth pages: as CheckBaseUrl, and https unless the
// host is loopback (session cookies and codes travel through it).
std::string CheckPublicUrl(absl::string_view url, std::string* normalized);

// A user app's redirect URI: a public URL (CheckPublicUrl) followed by
// exactly "/oauth/callback", the broker's callback; no query or fragment.
std::string CheckRedirectUri(absl::string_view uri);

}  // namespace config_internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CONFIG_VALUE_CHECKS_H_
