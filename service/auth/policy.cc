#include "service/auth/policy.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/path_segments.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

std::vector<std::string> MissingScopes(const AppGrant& grant,
                                       const std::vector<std::string>& scopes) {
  std::vector<std::string> missing;
  if (grant.all_scopes) return missing;
  for (const std::string& scope : scopes) {
    if (!std::binary_search(grant.scopes.begin(), grant.scopes.end(), scope)) {
      missing.push_back(scope);
    }
  }
  return missing;
}

// The one scope rule of every RPC that uses an app's token (GetToken,
// WatchToken, Call, CallStream): no scopes asked for means a token with every
// scope of the app (it is what the token endpoint returns), so the grant must
// cover them all; otherwise it must cover each scope asked for, and the app
// must hold them. The caller holds a grant for the app, so messages may name
// its scopes.
absl::Status CheckScopes(const CallerConfig& caller, const AppGrant& grant,
                         const AppConfig& app,
                         const std::vector<std::string>& scopes) {
  if (scopes.empty()) {
    std::vector<std::string> missing = MissingScopes(grant, app.scopes);
    if (missing.empty()) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "caller ", caller.name, " named no scopes for app ", app.name,
        ", which means all of its scopes, but is not granted [",
        absl::StrJoin(missing, " "), "]; name the scopes it holds [",
        absl::StrJoin(grant.scopes, " "), "]"));
  }
  if (std::vector<std::string> missing = MissingScopes(grant, scopes);
      !missing.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "caller ", caller.name, " is not granted scope(s) [",
        absl::StrJoin(missing, " "), "] of app ", app.name,
        "; its grant allows [", absl::StrJoin(grant.scopes, " "), "]"));
  }
  if (std::vector<std::string> missing = ScopesNotHeld(app, scopes);
      !missing.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "app ", app.name, " does not hold scope(s) [",
        absl::StrJoin(missing, " "), "]; its scopes are [",
        absl::StrJoin(app.scopes, " "),
        "]: ask for those, or grant the scope to the connected app in "
        "Anypoint and to the app in the broker config"));
  }
  return absl::OkStatus();
}

// The same answer for an app that does not exist and one the caller has no
// grant for: a caller learns nothing about apps it may not use.
absl::Status NoGrant(const CallerConfig& caller, absl::string_view app) {
  return absl::PermissionDeniedError(
      absl::StrCat("caller ", caller.name, " has no grant for app ", app,
                   " (or there is no such app); ask the broker's operators "
                   "for one"));
}

// Looks up the caller's grant and the app; either missing is NoGrant.
absl::Status FindGranted(const CallerConfig& caller, const Config& config,
                         absl::string_view app, const AppConfig** found) {
  *found = nullptr;
  if (caller.FindGrant(app) == nullptr) return NoGrant(caller, app);
  *found = config.FindApp(app);
  if (*found == nullptr) return NoGrant(caller, app);
  return absl::OkStatus();
}

// The token request of GetToken with no app: the narrowest app the caller
// may get a token of for these scopes.
absl::StatusOr<ResolvedTokenRequest> PickApp(
    const CallerConfig& caller, const Config& config,
    const std::vector<std::string>& scopes) {
  const AppConfig* chosen = nullptr;
  for (const AppConfig& candidate : config.apps) {
    // Acting as a person is never picked implicitly.
    if (candidate.grant_type == GrantType::kAuthorizationCode) continue;
    if (!AuthorizeToken(caller, candidate, scopes).ok()) continue;
    if (chosen == nullptr || candidate.scopes.size() < chosen->scopes.size()) {
      chosen = &candidate;  // Apps are sorted by name: ties keep the first.
    }
  }
  if (chosen != nullptr) return MakeTokenRequest(*chosen, scopes);
  // Only what the caller's own grants say: no other app, no app's scopes.
  std::vector<std::string> grants;
  for (const AppGrant& grant : caller.grants) {
    if (!grant.get_token) continue;
    grants.push_back(absl::StrCat(
        grant.app, " [",
        grant.all_scopes ? "*" : absl::StrJoin(grant.scopes, " "), "]"));
  }
  std::sort(grants.begin(), grants.end());
  return absl::PermissionDeniedError(absl::StrCat(
      "no app that caller ", caller.name,
      " may get tokens of covers the scopes [", absl::StrJoin(scopes, " "), "]",
      grants.empty()
          ? "; it has no grant that allows GetToken"
          : absl::StrCat("; its grants: ", absl::StrJoin(grants, ", ")),
      "; name an app, or ask the broker's operators for a grant"));
}

}  // namespace

bool GrantCoversScopes(const AppGrant& grant,
                       const std::vector<std::string>& scopes) {
  return MissingScopes(grant, scopes).empty();
}

absl::Status AuthorizeToken(const CallerConfig& caller, const AppConfig& app,
                            const std::vector<std::string>& scopes) {
  const AppGrant* grant = caller.FindGrant(app.name);
  if (grant == nullptr) return NoGrant(caller, app.name);
  if (!grant->get_token) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller ", caller.name, " may use app ", app.name,
                     " only through Call (its grant has get_token: false)"));
  }
  return CheckScopes(caller, *grant, app, scopes);
}

absl::Status AuthorizeCall(const CallerConfig& caller, const AppConfig& app,
                           const std::vector<std::string>& scopes,
                           absl::string_view method, absl::string_view path) {
  const AppGrant* grant = caller.FindGrant(app.name);
  if (grant == nullptr) return NoGrant(caller, app.name);
  TB_RETURN_IF_ERROR(CheckScopes(caller, *grant, app, scopes));
  for (const RouteRule& rule : grant->routes) {
    if (RouteMatches(rule, method, path)) return absl::OkStatus();
  }
  absl::string_view plain = path.substr(0, path.find('?'));
  return absl::PermissionDeniedError(
      absl::StrCat("caller ", caller.name, " is not granted the route ", method,
                   " ", plain, " of app ", app.name, "; its routes are [",
                   absl::StrJoin(grant->routes, ", ",
                                 [](std::string* out, const RouteRule& rule) {
                                   out->append(rule.text);
                                 }),
                   "]"));
}

absl::StatusOr<ResolvedTokenRequest> AuthorizeTokenRequest(
    const CallerConfig& caller, const Config& config, absl::string_view app,
    std::vector<std::string> scopes) {
  absl::StatusOr<std::vector<std::string>> normalized =
      NormalizeTokenRequest(app, std::move(scopes));
  TB_RETURN_IF_ERROR(normalized.status());
  if (app.empty()) return PickApp(caller, config, *normalized);
  const AppConfig* found = nullptr;
  TB_RETURN_IF_ERROR(FindGranted(caller, config, app, &found));
  TB_RETURN_IF_ERROR(AuthorizeToken(caller, *found, *normalized));
  return MakeTokenRequest(*found, *normalized);
}

absl::StatusOr<ResolvedTokenRequest> AuthorizeCallRequest(
    const CallerConfig& caller, const Config& config, absl::string_view app,
    std::vector<std::string> scopes, absl::string_view method,
    absl::string_view path) {
  if (app.empty()) return absl::InvalidArgumentError("app: required for Call");
  absl::StatusOr<std::vector<std::string>> normalized =
      NormalizeTokenRequest(app, std::move(scopes));
  TB_RETURN_IF_ERROR(normalized.status());
  const AppConfig* found = nullptr;
  TB_RETURN_IF_ERROR(FindGranted(caller, config, app, &found));
  TB_RETURN_IF_ERROR(AuthorizeCall(caller, *found, *normalized, method, path));
  return MakeTokenRequest(*found, *normalized);
}

bool GrantCoversUser(const AppGrant& grant, absl::string_view user_id,
                     absl::string_view username) {
  if (grant.all_users) return true;
  for (const std::string& user : grant.users) {
    if (user == user_id || (!username.empty() && user == username)) {
      return true;
    }
  }
  return false;
}

absl::Status AuthorizeUser(const CallerConfig& caller, absl::string_view app,
                           absl::string_view user_id,
                           absl::string_view username) {
  const AppGrant* grant = caller.FindGrant(app);
  if (grant != nullptr && GrantCoversUser(*grant, user_id, username)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "caller ", caller.name, " may not act for user ",
      username.empty() ? user_id : username, " of app ", app,
      "; its grant names the users it may act for (users: [...])"));
}

absl::Status AuthorizeAdmin(const CallerConfig& caller, absl::string_view rpc) {
  if (caller.admin) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("BrokerAdmin.", rpc, " needs the admin role; caller ",
                   caller.name, " does not have it"));
}

bool RouteMatches(const RouteRule& rule, absl::string_view method,
                  absl::string_view path) {
  if (rule.method != "*" && rule.method != method) return false;
  // The segments as the Call validator checked them and the server will
  // decode them; a path the validator refuses never matches.
  absl::StatusOr<std::vector<std::string>> segments = SplitPathSegments(path);
  if (!segments.ok()) return false;
  size_t i = 0;
  for (; i < rule.segments.size(); ++i) {
    const std::string& pattern = rule.segments[i];
    if (pattern == "**") return true;  // The rest, possibly nothing.
    if (i >= segments->size()) return false;
    if (pattern == "*") {
      if ((*segments)[i].empty()) return false;
    } else if (pattern != (*segments)[i]) {
      return false;
    }
  }
  return i == segments->size();
}

}  // namespace tokenbroker
