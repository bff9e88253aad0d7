#ifndef TOKENBROKER_SERVICE_AUTH_POLICY_H_
#define TOKENBROKER_SERVICE_AUTH_POLICY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/cache/token_request.h"
#include "service/config/config.h"

namespace tokenbroker {

// Deny-by-default decisions over a caller's grants (CallerConfig). Every
// refusal is PERMISSION_DENIED with a message naming what was missing. A
// caller learns nothing about apps it holds no grant for: an unknown app and
// an app without a grant get the same code and message, and no message names
// an app's scopes unless the caller holds a grant for that app. Pure
// functions; thread-safe.
//
// One scope rule for every RPC that uses an app's token (GetToken,
// WatchToken, Call, CallStream): no scopes named means all of the app's
// scopes (the token endpoint returns a token with all of them), so the grant
// must cover every scope of the app; otherwise the grant must cover each
// scope named and the app must hold it (`profile` it always holds).

// GetToken and WatchToken: the whole decision, one call per RPC. Checks the
// request's form (INVALID_ARGUMENT), then the caller's grant for `app` and
// the scope rule, and returns the token request to serve. `app` empty (only
// GetToken allows it): the app with the fewest scopes (then the first by
// name) that the caller may get a token of with `scopes`; if there is none,
// the message lists only the caller's own grants. User apps are never
// picked for an empty `app`.
// Errors: INVALID_ARGUMENT, PERMISSION_DENIED (also for an unknown app). The
// returned pointer is valid as long as `config` is.
absl::StatusOr<ResolvedTokenRequest> AuthorizeTokenRequest(
    const CallerConfig& caller, const Config& config, absl::string_view app,
    std::vector<std::string> scopes);

// Call and CallStream: the same for a proxied request of `method` `path`
// (which ValidateCallRequest has accepted); `app` is required. Checks the
// grant, the scope rule and the routes (RouteMatches).
// Errors: INVALID_ARGUMENT, PERMISSION_DENIED (also for an unknown app). The
// returned pointer is valid as long as `config` is.
absl::StatusOr<ResolvedTokenRequest> AuthorizeCallRequest(
    const CallerConfig& caller, const Config& config, absl::string_view app,
    std::vector<std::string> scopes, absl::string_view method,
    absl::string_view path);

// May `caller` obtain a token of `app` carrying `scopes` (GetToken,
// WatchToken)? Needs a grant for the app with get_token, and the scope rule.
absl::Status AuthorizeToken(const CallerConfig& caller, const AppConfig& app,
                            const std::vector<std::string>& scopes);

// May `caller` send `method` `path` (origin-form, query allowed and ignored)
// through Call with `scopes` for `app`? Needs a grant for the app, the scope
// rule, and a route matching method and path.
absl::Status AuthorizeCall(const CallerConfig& caller, const AppConfig& app,
                           const std::vector<std::string>& scopes,
                           absl::string_view method, absl::string_view path);

// May `caller` act for the user `user_id` (`username`) of the user app
// `app`? Needs a grant for the app that names the user by id or username,
// or allows every user ("*"). The message names the user as the caller
// asked for it, never others.
absl::Status AuthorizeUser(const CallerConfig& caller, absl::string_view app,
                           absl::string_view user_id,
                           absl::string_view username);

// Whether the grant allows acting for the user.
bool GrantCoversUser(const AppGrant& grant, absl::string_view user_id,
                     absl::string_view username);

// May `caller` use the BrokerAdmin RPC `rpc`? Needs `admin: true`.
absl::Status AuthorizeAdmin(const CallerConfig& caller, absl::string_view rpc);

// Whether the grant would allow a token of its app with `scopes`.
bool GrantCoversScopes(const AppGrant& grant,
                       const std::vector<std::string>& scopes);

// Whether `rule` matches `method` and the path part of `path` (the query is
// ignored). The path is split with SplitPathSegments()
// (service/common/path_segments.h), as ValidateCallRequest does, and each
// rule segment is compared with the percent-decoded segment (what the server
// sees). A path that SplitPathSegments refuses ("." or ".." segments, ';'
// path parameters, invalid UTF-8, malformed escapes, ...) never matches.
bool RouteMatches(const RouteRule& rule, absl::string_view method,
                  absl::string_view path);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_AUTH_POLICY_H_
