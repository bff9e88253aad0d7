// The browser side of the authorization code flow (RFC 6749 4.1), as
// Anypoint plays it: GET authorize validates the request and shows the
// sign-in page; POST authorize/login checks the username and password and
// shows the consent page (or refuses a user outside a members-only app's
// organization); POST authorize/consent redirects back to the client with a
// code or access_denied. Between the steps the validated request lives
// server-side as a transaction (txns_) named by the pages' hidden `txn`.
// Codes are redeemed by the token endpoint (oauth.cc).

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "emulator/pages.h"
#include "httplib.h"

namespace tokenbroker::emulator {
namespace {

using internal::AppendQuery;
using internal::ErrorPage;
using internal::ParamOr;
using internal::SetPage;

constexpr absl::Duration kCodeLifetime = absl::Minutes(10);
// The whole flow (sign-in and consent) must end within this time.
constexpr absl::Duration kTxnLifetime = absl::Minutes(10);
// Wrong passwords allowed on one sign-in page before it must start again.
constexpr int kMaxFailedLogins = 5;
constexpr size_t kPurgeTxnsAbove = 10000;

// Scopes any app may request at authorize time and that need no assignment.
const std::set<std::string>& ImplicitScopes() {
  static const auto* scopes =
      new std::set<std::string>{"profile", "openid", "email", "offline_access"};
  return *scopes;
}

bool HasGrantType(const AppFixture& app, absl::string_view grant_type) {
  return std::find(app.grant_types.begin(), app.grant_types.end(),
                   grant_type) != app.grant_types.end();
}

// The end of a flow that cannot go back to the client (unverified client or
// redirect URI, unknown or spent transaction): a 400 page, never a redirect.
void RefusePage(httplib::Response& res, absl::string_view message) {
  SetPage(res, 400, ErrorPage("Cannot continue to sign in", message));
}

constexpr char kStartAgain[] =
    "This sign-in has expired or was already used. Go back to the "
    "application and start again.";

}  // namespace

void Emulator::Impl::HandleAuthorize(const httplib::Request& req,
                                     httplib::Response& res) {
  // From the target, not req.params: httplib drops a repeated identical
  // pair, and RFC 6749 3.1 refuses any repeated parameter.
  std::multimap<std::string, std::string> query;
  const size_t question = req.target.find('?');
  if (question != std::string::npos) {
    for (auto& [name, value] : internal::DecodeUrlEncoded(
             absl::string_view(req.target).substr(question + 1))) {
      query.emplace(std::move(name), std::move(value));
    }
  }
  auto param = [&query](const char* name) {
    auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
  };
  // client_id and redirect_uri first: until both are verified nothing may
  // go to the URI.
  for (const char* name : {"client_id", "redirect_uri"}) {
    if (query.count(name) > 1) {
      return RefusePage(res, absl::StrCat("The parameter ", name,
                                          " is given more than once."));
    }
  }
  const std::string client_id = param("client_id");
  std::string redirect_uri = param("redirect_uri");
  const std::string redirect_uri_sent = redirect_uri;
  if (client_id.empty()) {
    return RefusePage(res, "The request has no client_id.");
  }
  absl::MutexLock lock(&mu_);
  auto app_it = apps_.find(client_id);
  if (app_it == apps_.end()) {
    return RefusePage(res, absl::StrCat("Unknown client_id ", client_id,
                                        ": no connected app has it."));
  }
  const AppFixture& app = app_it->second.app;
  const std::vector<std::string>& uris = app.redirect_uris;
  if (redirect_uri.empty()) {
    if (uris.size() != 1) {
      return RefusePage(
          res, absl::StrCat("redirect_uri is required: the app ", client_id,
                            " has ", uris.size(), " registered."));
    }
    redirect_uri = uris[0];
  } else if (std::find(uris.begin(), uris.end(), redirect_uri) == uris.end()) {
    return RefusePage(res,
                      absl::StrCat("The redirect_uri ", redirect_uri,
                                   " is not registered for the app ", client_id,
                                   " (registered URIs are compared exactly)."));
  }

  // From here on errors go back to the verified redirect URI (4.1.2.1).
  const std::string state = param("state");
  const std::string issuer = issuer_;
  auto redirect_error = [&](absl::string_view error,
                            absl::string_view description) {
    internal::SetRedirect(
        res, AppendQuery(redirect_uri,
                         {{"error", std::string(error)},
                          {"error_description", std::string(description)},
                          {"state", state},
                          {"iss", issuer}}));
  };
  for (const char* name :
       {"response_type", "scope", "state", "code_challenge",
        "code_challenge_method", "nonce", "prompt", "login_hint"}) {
    if (query.count(name) > 1) {
      return redirect_error(
          "invalid_request",
          absl::StrCat("the parameter ", name, " is given more than once"));
    }
  }
  const std::string response_type = param("response_type");
  if (response_type.empty()) {
    return redirect_error("invalid_request", "response_type is required");
  }
  if (response_type != "code") {
    return redirect_error("unsupported_response_type",
                          "only response_type code is supported");
  }
  if (!HasGrantType(app, "authorization_code")) {
    return redirect_error(
        "unauthorized_client",
        absl::StrCat("the app ", client_id,
                     " is not allowed the authorization_code grant"));
  }
  std::vector<std::string> scopes;
  for (absl::string_view scope :
       absl::StrSplit(param("scope"), ' ', absl::SkipEmpty())) {
    const std::string s(scope);
    if (std::find(scopes.begin(), scopes.end(), s) != scopes.end()) continue;
    if (s == "offline_access" && !HasGrantType(app, "refresh_token")) {
      return redirect_error(
          "invalid_scope",
          "offline_access needs the refresh_token grant on the app");
    }
    bool assigned = ImplicitScopes().count(s) != 0;
    for (const ScopeGrant& grant : app.scopes) {
      assigned = assigned || grant.scope == s;
    }
    if (!assigned) {
      return redirect_error(
          "invalid_scope",
          absl::StrCat("the scope ", s, " is not assigned to the app ",
                       client_id));
    }
    scopes.push_back(s);
  }
  // RFC 7636 4.3 and 4.4.1; plain (the default method) is refused.
  const std::string challenge = param("code_challenge");
  const std::string method = param("code_challenge_method");
  if (challenge.empty() && !method.empty()) {
    return redirect_error("invalid_request",
                          "code_challenge_method without code_challenge");
  }
  if (!challenge.empty()) {
    if (method != "S256") {
      return redirect_error(
          "invalid_request",
          "code_challenge_method must be S256 (plain is not accepted)");
    }
    if (!internal::IsPkceString(challenge, 43, 43, /*pkce_verifier=*/false)) {
      return redirect_error(
          "invalid_request",
          "code_challenge must be 43 characters of base64url (S256)");
    }
  }
  if (param("prompt") == "none") {
    // OIDC: no session to reuse, and a page would be needed.
    return redirect_error("login_required", "the user must sign in");
  }

  const absl::Time now = Now();
  if (txns_.size() > kPurgeTxnsAbove) {
    absl::erase_if(txns_, [now](const auto& entry) {
      return entry.second.expires <= now;
    });
  }
  const std::string txn = internal::RandomToken(32);
  AuthorizeTxn& record = txns_[txn];
  record.client_id = client_id;
  record.redirect_uri_sent = redirect_uri_sent;
  record.redirect_uri = redirect_uri;
  record.state = state;
  record.scopes = std::move(scopes);
  record.code_challenge = challenge;
  record.expires = now + kTxnLifetime;
  ++counters_.authorize_page_views;
  SetPage(res, 200, internal::SignInPage(app.name, txn, ""));
}

void Emulator::Impl::HandleLogin(const httplib::Request& req,
                                 httplib::Response& res) {
  absl::StatusOr<internal::Params> params = internal::ParseBodyParams(req);
  if (!params.ok()) return RefusePage(res, params.status().message());
  const std::string txn = ParamOr(*params, "txn");
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  auto it = txns_.find(txn);
  if (it == txns_.end() || it->second.expires <= now) {
    if (it != txns_.end()) txns_.erase(it);
    return RefusePage(res, kStartAgain);
  }
  AuthorizeTxn& record = it->second;
  if (!record.user_id.empty()) {
    // Signed in already: the consent page is the only step left.
    return RefusePage(res, kStartAgain);
  }
  const AppFixture& app = apps_.at(record.client_id).app;
  const UserFixture* user = nullptr;
  for (const UserFixture& u : fixture_.users) {
    if (u.username == ParamOr(*params, "username")) user = &u;
  }
  const std::string password = ParamOr(*params, "password");
  bool ok = false;
  if (user != nullptr) {
    const std::string& expected = users_.at(user->id).password;
    ok = !expected.empty() && internal::SecretsEqual(expected, password);
  }
  if (!ok) {
    // The same message whether the user exists or not.
    ++counters_.logins_failed;
    if (++record.failed_logins >= kMaxFailedLogins) {
      txns_.erase(it);
      return RefusePage(res,
                        "Too many failed sign-in attempts. Go back to the "
                        "application and start again.");
    }
    return SetPage(
        res, 200,
        internal::SignInPage(app.name, txn, internal::kIncorrectCredentials));
  }
  ++counters_.logins_ok;
  if (app.audience == Audience::kOrgMembers && !IsMember(*user, app.org_id)) {
    const std::string location = AppendQuery(
        record.redirect_uri,
        {{"error", "access_denied"},
         {"error_description",
          "the app is only available to members of its organization"},
         {"state", record.state},
         {"iss", issuer_}});
    txns_.erase(it);
    return internal::SetRedirect(res, location);
  }
  record.user_id = user->id;
  record.user_epoch = users_.at(user->id).epoch;
  SetPage(res, 200,
          internal::ConsentPage(app.name, user->username, record.scopes, txn));
}

void Emulator::Impl::HandleConsent(const httplib::Request& req,
                                   httplib::Response& res) {
  absl::StatusOr<internal::Params> params = internal::ParseBodyParams(req);
  if (!params.ok()) return RefusePage(res, params.status().message());
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  auto it = txns_.find(ParamOr(*params, "txn"));
  if (it == txns_.end()) return RefusePage(res, kStartAgain);
  // Consumed by any consent POST, whatever it says.
  const AuthorizeTxn record = std::move(it->second);
  txns_.erase(it);
  if (record.expires <= now || record.user_id.empty()) {
    return RefusePage(res, kStartAgain);
  }
  if (users_.at(record.user_id).epoch != record.user_epoch) {
    return RefusePage(res,
                      "Your password changed after you signed in. Go back to "
                      "the application and start again.");
  }
  const AppState& app = apps_.at(record.client_id);
  const std::string decision = ParamOr(*params, "decision");
  if (decision == "deny") {
    ++counters_.consents_denied;
    return internal::SetRedirect(
        res, AppendQuery(record.redirect_uri,
                         {{"error", "access_denied"},
                          {"error_description", "the user denied access"},
                          {"state", record.state},
                          {"iss", issuer_}}));
  }
  if (decision != "approve") {
    return RefusePage(res, "The answer must be Approve or Deny.");
  }
  ++counters_.consents_approved;
  const std::string code = internal::RandomToken(32);
  CodeRecord& code_record = codes_[code];
  code_record.client_id = record.client_id;
  code_record.user_id = record.user_id;
  code_record.redirect_uri_sent = record.redirect_uri_sent;
  code_record.redirect_uri = record.redirect_uri;
  code_record.scopes = record.scopes;
  code_record.code_challenge = record.code_challenge;
  code_record.generation = app.generation;
  code_record.user_epoch = record.user_epoch;
  code_record.expires = now + kCodeLifetime;
  internal::SetRedirect(
      res,
      AppendQuery(record.redirect_uri,
                  {{"code", code}, {"state", record.state}, {"iss", issuer_}}));
}

}  // namespace tokenbroker::emulator
