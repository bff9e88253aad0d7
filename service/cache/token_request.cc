#include "service/cache/token_request.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tokenbroker {
namespace {

constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxScopes = 100;
constexpr size_t kMaxScopeLength = 128;

bool IsValidAppName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
           c == '_' || c == '-';
  });
}

bool IsValidScope(absl::string_view scope) {
  if (scope.empty() || scope.size() > kMaxScopeLength) return false;
  return std::all_of(scope.begin(), scope.end(), [](char c) {
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
}

bool Holds(const AppConfig& app, const std::string& scope) {
  return scope == "profile" ||
         std::binary_search(app.scopes.begin(), app.scopes.end(), scope);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> NormalizeTokenRequest(
    absl::string_view app, std::vector<std::string> scopes) {
  if (!app.empty() && !IsValidAppName(app)) {
    return absl::InvalidArgumentError(
        "app: must be 1 to 64 characters of letters, digits, '.', '_' or '-'");
  }
  if (scopes.size() > kMaxScopes) {
    return absl::InvalidArgumentError(
        absl::StrCat("scopes: at most ", kMaxScopes, " scopes per request"));
  }
  for (const std::string& scope : scopes) {
    if (!IsValidScope(scope)) {
      return absl::InvalidArgumentError(
          "scopes: each scope must be 1 to 128 printable characters without "
          "spaces or quotes");
    }
  }
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  return scopes;
}

std::vector<std::string> ScopesNotHeld(const AppConfig& app,
                                       const std::vector<std::string>& scopes) {
  std::vector<std::string> missing;
  for (const std::string& scope : scopes) {
    if (!Holds(app, scope)) missing.push_back(scope);
  }
  return missing;
}

ResolvedTokenRequest MakeTokenRequest(const AppConfig& app,
                                      const std::vector<std::string>& scopes) {
  ResolvedTokenRequest resolved;
  resolved.app = &app;
  resolved.upstream.app = app.name;
  // A user app's key is its grant: every refresh of one grant goes through
  // one cache entry (one refresh at a time), and the token carries every
  // scope the user granted.
  if (app.send_scope && app.grant_type != GrantType::kAuthorizationCode) {
    resolved.upstream.scopes = scopes.empty() ? app.scopes : scopes;
  }
  return resolved;
}

absl::StatusOr<ResolvedTokenRequest> ResolveTokenRequest(
    const Config& config, absl::string_view app,
    std::vector<std::string> requested,
    const std::function<bool(const AppConfig&)>& usable) {
  absl::StatusOr<std::vector<std::string>> normalized =
      NormalizeTokenRequest(app, std::move(requested));
  if (!normalized.ok()) return normalized.status();
  const std::vector<std::string>& scopes = *normalized;

  const AppConfig* chosen = nullptr;
  if (app.empty()) {
    for (const AppConfig& candidate : config.apps) {
      if (!ScopesNotHeld(candidate, scopes).empty()) continue;
      if (usable && !usable(candidate)) continue;
      if (chosen == nullptr ||
          candidate.scopes.size() < chosen->scopes.size()) {
        chosen = &candidate;  // Apps are sorted by name: ties keep the first.
      }
    }
    if (chosen == nullptr && usable) {
      // Whether an app the caller may not use covers the scopes is not the
      // caller's business.
      return absl::PermissionDeniedError(
          absl::StrCat("no app granted to this caller holds the scopes [",
                       absl::StrJoin(scopes, " "),
                       "]; ask the broker's operators for a grant"));
    }
    if (chosen == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "no configured app holds the scopes [", absl::StrJoin(scopes, " "),
          "]; name an app or ask for fewer scopes"));
    }
  } else {
    chosen = config.FindApp(app);
    if (chosen == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("unknown app '", app,
                       "'; BrokerAdmin.ListApps shows the configured apps"));
    }
    std::vector<std::string> missing = ScopesNotHeld(*chosen, scopes);
    if (!missing.empty()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "app ", chosen->name, " does not hold scope(s) [",
          absl::StrJoin(missing, " "), "]; its scopes are [",
          absl::StrJoin(chosen->scopes, " "),
          "]: ask for those, or grant the scope to the connected app in "
          "Anypoint and to the app in the broker config"));
    }
  }
  return MakeTokenRequest(*chosen, scopes);
}

}  // namespace tokenbroker
