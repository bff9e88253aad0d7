#include "service/auth/policy.h"

#include <algorithm>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/path_segments.h"

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
// cover them all; otherwise it must cover each scope asked for.
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
  std::vector<std::string> missing = MissingScopes(grant, scopes);
  if (missing.empty()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "caller ", caller.name, " is not granted scope(s) [",
      absl::StrJoin(missing, " "), "] of app ", app.name,
      "; its grant allows [", absl::StrJoin(grant.scopes, " "), "]"));
}

absl::Status NoGrant(const CallerConfig& caller, const AppConfig& app) {
  return absl::PermissionDeniedError(
      absl::StrCat("caller ", caller.name, " has no grant for app ", app.name,
                   "; ask the broker's operators to add one"));
}

}  // namespace

bool GrantCoversScopes(const AppGrant& grant,
                       const std::vector<std::string>& scopes) {
  return MissingScopes(grant, scopes).empty();
}

absl::Status AuthorizeToken(const CallerConfig& caller, const AppConfig& app,
                            const std::vector<std::string>& scopes) {
  const AppGrant* grant = caller.FindGrant(app.name);
  if (grant == nullptr) return NoGrant(caller, app);
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
  if (grant == nullptr) return NoGrant(caller, app);
  if (absl::Status s = CheckScopes(caller, *grant, app, scopes); !s.ok()) {
    return s;
  }
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
