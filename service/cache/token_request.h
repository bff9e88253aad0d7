#ifndef TOKENBROKER_SERVICE_CACHE_TOKEN_REQUEST_H_
#define TOKENBROKER_SERVICE_CACHE_TOKEN_REQUEST_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/config/config.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

// A caller's token request, checked against the configuration.
struct ResolvedTokenRequest {
  const AppConfig* app = nullptr;  // Points into the Config it came from.
  TokenRequest upstream;           // The cache key's request.
};

// Validates `app` and `scopes` and maps them to the upstream request:
// - `app` empty: the app with the fewest scopes (then the first by name)
//   whose scopes cover `scopes` and that `usable` accepts (all, if null);
//   PERMISSION_DENIED if apps cover the scopes but none is usable.
// - every requested scope must be held by the app (`profile` always is).
// - the upstream scopes are the requested ones (or the app's, if none were
//   requested) for apps with `send_scope`, and none otherwise.
// Errors: INVALID_ARGUMENT (malformed name or scope), NOT_FOUND (unknown app,
// or no app covers the scopes), PERMISSION_DENIED (the app lacks a scope).
// The returned pointer is valid as long as `config` is.
absl::StatusOr<ResolvedTokenRequest> ResolveTokenRequest(
    const Config& config, absl::string_view app,
    std::vector<std::string> scopes,
    const std::function<bool(const AppConfig&)>& usable = nullptr);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_TOKEN_REQUEST_H_
