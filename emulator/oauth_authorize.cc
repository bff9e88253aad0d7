// GET /accounts/api/v2/oauth2/authorize: the start of the
// authorization_code flow. Today it signs in the fixture user named by
// login_hint (or the first one) without a page and redirects at once with a
// code; the sign-in and consent pages of the authorization code flow belong
// here. Codes are redeemed by the token endpoint (oauth.cc).

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"

namespace tokenbroker::emulator {
namespace {

constexpr absl::Duration kCodeLifetime = absl::Minutes(10);

// Scopes any app may request at authorize time and that need no assignment.
const std::set<std::string>& ImplicitScopes() {
  static const auto* scopes =
      new std::set<std::string>{"profile", "openid", "email", "offline_access"};
  return *scopes;
}

}  // namespace

void Emulator::Impl::HandleAuthorize(const httplib::Request& req,
                                     httplib::Response& res) {
  auto fail = [&res](absl::string_view message) {
    res.status = 400;
    res.set_content(absl::StrCat("authorize request rejected: ", message, "\n"),
                    "text/plain");
  };
  const std::string client_id = req.get_param_value("client_id");
  const std::string response_type = req.get_param_value("response_type");
  std::string redirect_uri = req.get_param_value("redirect_uri");
  const std::string state = req.get_param_value("state");
  const std::string login_hint = req.get_param_value("login_hint");
  if (client_id.empty()) return fail("client_id is required");
  if (response_type != "code") {
    return fail("response_type must be \"code\"");
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) return fail("unknown client_id " + client_id);
  const AppState& app = it->second;
  const auto& grants = app.app.grant_types;
  if (std::find(grants.begin(), grants.end(), "authorization_code") ==
      grants.end()) {
    return fail("the app " + client_id +
                " is not allowed the authorization_code grant");
  }
  const auto& uris = app.app.redirect_uris;
  if (redirect_uri.empty()) {
    if (uris.size() != 1) {
      return fail("redirect_uri is required (the app has " +
                  std::to_string(uris.size()) + " registered)");
    }
    redirect_uri = uris[0];
  } else if (std::find(uris.begin(), uris.end(), redirect_uri) == uris.end()) {
    return fail("redirect_uri " + redirect_uri +
                " is not registered for the app " + client_id);
  }
  std::vector<std::string> scopes =
      absl::StrSplit(req.get_param_value("scope"), ' ', absl::SkipEmpty());
  for (const std::string& scope : scopes) {
    if (scope == "offline_access" &&
        std::find(grants.begin(), grants.end(), "refresh_token") ==
            grants.end()) {
      return fail("offline_access needs the refresh_token grant on the app");
    }
    if (ImplicitScopes().count(scope) != 0) continue;
    bool assigned = false;
    for (const ScopeGrant& grant : app.app.scopes) {
      assigned = assigned || grant.scope == scope;
    }
    if (!assigned) {
      return fail("scope " + scope + " is not assigned to the app " +
                  client_id);
    }
  }
  const UserFixture* user = nullptr;
  for (const UserFixture& u : fixture_.users) {
    if (login_hint.empty() || u.username == login_hint || u.id == login_hint) {
      user = &u;
      break;
    }
  }
  if (user == nullptr) {
    return fail(login_hint.empty() ? "the fixture has no users"
                                   : "no user named " + login_hint);
  }
  const std::string code = internal::RandomToken(16);
  codes_[code] = CodeRecord{client_id,      user->id,
                            redirect_uri,   std::move(scopes),
                            app.generation, absl::Now() + kCodeLifetime,
                            false};
  std::string location = redirect_uri;
  location += redirect_uri.find('?') == std::string::npos ? '?' : '&';
  location += "code=" + code;
  if (!state.empty()) {
    location += "&state=" + httplib::detail::encode_query_param(state);
  }
  res.set_redirect(location, 302);
}

}  // namespace tokenbroker::emulator
