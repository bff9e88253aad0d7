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

// Checks the form of a token request, before anything is looked up: `app`
// is empty or 1 to 64 of [A-Za-z0-9._-]; at most 100 scopes, each 1 to 128
// printable characters without spaces or quotes. Returns the scopes sorted
// and de-duplicated. Errors: INVALID_ARGUMENT (reveals nothing about the
// configuration).
absl::StatusOr<std::vector<std::string>> NormalizeTokenRequest(
    absl::string_view app, std::vector<std::string> scopes);

// The scopes of `scopes` that `app` does not hold (`profile` always is), in
// their order.
std::vector<std::string> ScopesNotHeld(const AppConfig& app,
                                       const std::vector<std::string>& scopes);

// The request for a token of `app` with `scopes` (as NormalizeTokenRequest
// returns them; the app must hold them): the upstream scopes are the
// requested ones (or the app's, if none were requested) for apps with
// `send_scope`, and none otherwise. The returned pointer is valid as long as
// `app` is.
ResolvedTokenRequest MakeTokenRequest(const AppConfig& app,
                                      const std::vector<std::string>& scopes);

// The configuration's view of a token request, for admin RPCs
// (BrokerAdmin.RefreshToken): its messages name unknown apps and an app's
// scopes, so a request from an ordinary caller goes through
// AuthorizeTokenRequest() (service/auth/policy.h) instead, which checks the
// caller's grants before it reveals anything.
// - `app` empty: the app with the fewest scopes (then the first by name)
//   whose scopes cover `scopes` and that `usable` accepts (all, if null).
// - every requested scope must be held by the app (`profile` always is).
// - the upstream request as MakeTokenRequest() makes it.
// Errors: INVALID_ARGUMENT (malformed name or scope), NOT_FOUND (unknown app,
// or no app covers the scopes), PERMISSION_DENIED (the app lacks a scope).
// With `usable` (deprecated: for callers, use AuthorizeTokenRequest), an
// empty `app` that no usable app covers is PERMISSION_DENIED with one
// message, whether or not an unusable app covers it.
// The returned pointer is valid as long as `config` is.
absl::StatusOr<ResolvedTokenRequest> ResolveTokenRequest(
    const Config& config, absl::string_view app,
    std::vector<std::string> scopes,
    const std::function<bool(const AppConfig&)>& usable = nullptr);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_TOKEN_REQUEST_H_
