#include <algorithm>
#include <atomic>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/http/oauth_flow.h"
#include "service/http/oauth_flow_internal.h"
#include "service/http/oauth_request.h"

// OAuthFlow's /oauth/callback: the state and cookie checks, then the
// completion of the sign-in (issuer, error, code exchange, refresh token,
// scopes, userinfo, grant stored) and the page, audit record and log line of
// its outcome. The rest of OAuthFlow is in oauth_flow.cc.

namespace tokenbroker {

const std::vector<std::string>& CallbackOutcomeNames() {
  // In the order of OAuthFlow::Outcome.
  static const auto* const kNames =
      new std::vector<std::string>{"connected",
                                   "declined",
                                   "authorization_error",
                                   "bad_request",
                                   "unknown_state",
                                   "expired_state",
                                   "no_cookie",
                                   "cookie_mismatch",
                                   "issuer_mismatch",
                                   "app_unavailable",
                                   "exchange_failed",
                                   "no_refresh_token",
                                   "scopes_narrower",
                                   "userinfo_failed",
                                   "store_failed",
                                   "timeout",
                                   "busy",
                                   "unavailable"};
  return *kNames;
}

namespace {

using internal::BindingCookieHeader;
using internal::FindParam;
using internal::IsPlausibleCode;
using internal::kAskForLink;
using internal::ParseCookies;
using internal::QueryParams;
using internal::RequestedScopes;
using internal::SanitizeErrorCode;
using internal::Text;

// Hands a result from an HttpClient completion to the listener thread that
// waits for it, for a bounded time. Shared by both: a completion that comes
// after the wait gave up finds it abandoned and keeps its value.
template <typename T>
class Rendezvous {
 public:
  // Delivers `value` (moved from) unless the waiter gave up: then returns
  // false and leaves `value` to the caller.
  bool Deliver(T& value) {
    absl::MutexLock lock(&mu_);
    if (abandoned_) return false;
    result_.emplace(std::move(value));
    return true;
  }

  // The value, or nullopt (and abandoned from then on) after `timeout`.
  std::optional<T> Await(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &Rendezvous::Ready), timeout);
    if (!result_.has_value()) {
      abandoned_ = true;
      return std::nullopt;
    }
    return std::move(result_);
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return result_.has_value();
  }

  absl::Mutex mu_;
  std::optional<T> result_ ABSL_GUARDED_BY(mu_);
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
};

void LogRevokeResult(const std::string& app, const absl::Status& status) {
  if (status.ok()) {
    LogInfo("oauth: revoked the refresh token of a refused sign-in",
            {{"app", app}});
  } else {
    LogWarning(
        "oauth: could not revoke the refresh token of a refused "
        "sign-in",
        {{"app", app}, {"error", std::string(status.message())}});
  }
}

}  // namespace

struct OAuthFlow::CallbackContext {
  explicit CallbackContext(const PageRequest& request) : request(request) {}

  const PageRequest& request;
  std::string caller = "-";
  std::string app_name;
  std::shared_ptr<const AppConfig> app;
  std::optional<PendingSignIn> sign_in;
  std::string username;
  std::vector<std::string> scopes;
  // The binding cookie of the sign-in that ends here (it matched).
  std::string cookie_to_clear;
};

PageResponse OAuthFlow::Callback(const QueryParams& params,
                                 const PageRequest& request) {
  CallbackContext context(request);
  // A slot first: a callback that cannot have one leaves its state unused
  // so that the browser can simply reload.
  if (callbacks_in_flight_.fetch_add(1) >= options_.max_concurrent_callbacks) {
    callbacks_in_flight_.fetch_sub(1);
    PageResponse page =
        Finish(context, Outcome::kBusy, 503,
               Text("The broker is busy",
                    {"Too many sign-ins are being completed at this moment. "
                     "Reload this page in a few seconds."}));
    page.headers.emplace_back("Retry-After", "5");
    return page;
  }
  struct Release {
    std::atomic<int>& count;
    ~Release() { count.fetch_sub(1); }
  } release{callbacks_in_flight_};

  const std::string* state = FindParam(params, "state");
  if (state == nullptr || state->empty()) {
    return Finish(context, Outcome::kBadRequest, 400,
                  Text("Not a sign-in answer",
                       {"This address has no state: it is not an answer to "
                        "a sign-in the broker started.",
                        absl::StrCat(kAskForLink, "APP")}));
  }
  SignInLookup lookup =
      pending_->TakeSignIn(*state, ParseCookies(request.cookie_headers));
  if (lookup.sign_in.has_value()) {
    context.caller = lookup.sign_in->minted_by;
    context.app_name = lookup.sign_in->app;
  }
  if (lookup.outcome == SignInLookup::Outcome::kOk) {
    context.cookie_to_clear = lookup.sign_in->setup.cookie_name;
  }
  const std::string again = absl::StrCat(
      kAskForLink, context.app_name.empty() ? "APP" : context.app_name);
  switch (lookup.outcome) {
    case SignInLookup::Outcome::kOk:
      break;
    case SignInLookup::Outcome::kUnavailable: {
      // The state is left as it was (unless Redis applied the take and its
      // answer was lost): reloading this page may complete the sign-in.
      PageResponse page = Finish(
          context, Outcome::kUnavailable, 503,
          Text("The broker cannot complete this sign-in now",
               {"The broker could not look up this sign-in at this moment "
                "(its log says why). Reload this page in a moment; if it "
                "says the sign-in is unknown then, ask for a new link.",
                again}));
      page.headers.emplace_back("Retry-After", "5");
      return page;
    }
    case SignInLookup::Outcome::kUnknown:
      return Finish(context, Outcome::kUnknownState, 403,
                    Text("This sign-in cannot be completed",
                         {"This sign-in was already completed, or it is "
                          "unknown (a page reloaded or opened twice). Nothing "
                          "was changed.",
                          again}));
    case SignInLookup::Outcome::kExpired:
      return Finish(
          context, Outcome::kExpiredState, 403,
          Text("This sign-in has expired",
               {"The sign-in took too long. Nothing was changed.", again}));
    case SignInLookup::Outcome::kNoCookie:
    case SignInLookup::Outcome::kCookieMismatch:
      return Finish(
          context,
          lookup.outcome == SignInLookup::Outcome::kNoCookie
              ? Outcome::kNoCookie
              : Outcome::kCookieMismatch,
          403,
          Text("This sign-in was started in another browser",
               {"The answer arrived in a browser other than the one that "
                "opened the sign-in link (or cookies are blocked for this "
                "site), so it was refused. Nothing was changed.",
                absl::StrCat(again,
                             " and open it in the browser you sign in "
                             "with.")}));
  }
  context.sign_in = std::move(lookup.sign_in);
  context.app = FindApp(context.app_name);
  if (context.app == nullptr) {
    return Finish(
        context, Outcome::kAppUnavailable, 403,
        Text("This app cannot be connected",
             {absl::StrCat("The broker no longer has a user app "
                           "named ",
                           context.app_name, ". Nothing was changed.")}));
  }
  return CompleteSignIn(context, params);
}

PageResponse OAuthFlow::CompleteSignIn(CallbackContext& context,
                                       const QueryParams& params) {
  const AppConfig& app = *context.app;
  const std::string again = absl::StrCat(kAskForLink, app.name);
  // RFC 9207: an answer naming another issuer is a mix-up attack (or a
  // misconfiguration): its code must not reach this app's token endpoint.
  if (const std::string* iss = FindParam(params, "iss");
      iss != nullptr && *iss != IssuerOf(app)) {
    return Finish(
        context, Outcome::kIssuerMismatch, 403,
        Text("The answer came from the wrong server",
             {absl::StrCat("The sign-in answer names an authorization server "
                           "(issuer) other than the one of ",
                           app.name,
                           ". It was refused and nothing was changed. If "
                           "this keeps happening, an operator should check "
                           "the app's issuer setting."),
              again}));
  }
  if (const std::string* error = FindParam(params, "error"); error != nullptr) {
    if (*error == "access_denied") {
      return Finish(context, Outcome::kDeclined, 403,
                    Text("Access was not granted",
                         {absl::StrCat("You declined access for ", app.name,
                                       ", or the authorization server does "
                                       "not let your account use it (for "
                                       "example an app only for members of "
                                       "its organization). Nothing was "
                                       "changed."),
                          absl::StrCat("If that was a mistake: ", again)}));
    }
    const std::string code = SanitizeErrorCode(*error);
    const bool server_failed =
        code == "server_error" || code == "temporarily_unavailable";
    return Finish(context, Outcome::kAuthorizationError,
                  server_failed ? 502 : 403,
                  Text("The sign-in did not complete",
                       {absl::StrCat("The authorization server answered with "
                                     "the error ",
                                     code, ". Nothing was changed."),
                        server_failed ? absl::StrCat("Try again later. ", again)
                                      : absl::StrCat(again,
                                                     "; if it fails again, "
                                                     "an operator should "
                                                     "check the app's "
                                                     "settings.")}));
  }
  const std::string* code = FindParam(params, "code");
  if (code == nullptr || !IsPlausibleCode(*code)) {
    return Finish(context, Outcome::kBadRequest, 400,
                  Text("Not a sign-in answer",
                       {"The answer has no valid authorization code. Nothing "
                        "was changed.",
                        again}));
  }

  // The wait outlasts the request's own timeout a little, so that the
  // HttpClient's answer (even a timeout) normally arrives first.
  const absl::Duration wait =
      options_.oauth.request_timeout +
      std::min(options_.oauth.request_timeout, absl::Seconds(1));

  auto exchange =
      std::make_shared<Rendezvous<absl::StatusOr<UserTokenResponse>>>();
  client_->ExchangeCode(
      app, *code, context.sign_in->setup.redirect_uri,
      std::move(context.sign_in->code_verifier),
      [exchange, client = client_,
       app = context.app](absl::StatusOr<UserTokenResponse> tokens) mutable {
        if (exchange->Deliver(tokens)) return;
        // Too late: the page said the sign-in failed, so nothing may stay.
        if (tokens.ok() && !tokens->refresh_token.empty()) {
          std::string refresh_token = tokens->refresh_token;
          client->RevokeRefreshToken(*app, std::move(refresh_token),
                                     [name = app->name](absl::Status status) {
                                       LogRevokeResult(name, status);
                                     });
        }
      });
  std::optional<absl::StatusOr<UserTokenResponse>> tokens =
      exchange->Await(wait);
  if (!tokens.has_value()) {
    return Finish(context, Outcome::kTimeout, 502,
                  Text("The authorization server did not answer",
                       {absl::StrCat("The broker got no answer in time when "
                                     "it redeemed your sign-in for ",
                                     app.name, ". Nothing was kept."),
                        again}));
  }
  if (!tokens->ok()) {
    LogWarning("oauth: code exchange failed",
               {{"app", app.name},
                {"error", std::string(tokens->status().message())}});
    return Finish(
        context, Outcome::kExchangeFailed, 502,
        Text("The sign-in could not be completed",
             {absl::StrCat("The authorization server did not accept the "
                           "sign-in: ",
                           tokens->status().message()),
              again}));
  }
  UserTokenResponse& answer = **tokens;
  if (answer.refresh_token.empty()) {
    return Finish(
        context, Outcome::kNoRefreshToken, 502,
        Text("No refresh token was issued",
             {absl::StrCat("The authorization server issued no refresh token "
                           "for ",
                           app.name,
                           ", so the broker could not keep acting for you. "
                           "Nothing was kept."),
              "An operator must enable offline_access (the refresh_token "
              "grant) for the app at the authorization server, then make a "
              "new link: tokenbrokerctl connect " +
                  app.name}));
  }
  std::vector<std::string> granted =
      answer.scope_present ? answer.token.scopes : RequestedScopes(app);
  std::sort(granted.begin(), granted.end());
  std::vector<std::string> missing;
  std::set_difference(app.scopes.begin(), app.scopes.end(), granted.begin(),
                      granted.end(), std::back_inserter(missing));
  context.scopes = granted;
  if (!missing.empty()) {
    RevokeQuietly(app, std::move(answer.refresh_token));
    return Finish(
        context, Outcome::kScopesNarrower, 403,
        Text("Not all scopes were granted",
             {absl::StrCat(app.name,
                           " needs every scope it is configured with, and "
                           "these were not granted:")},
             missing,
             {"Nothing was kept, and the token issued was revoked.",
              absl::StrCat(again, " and approve all the scopes.")}));
  }

  auto userinfo = std::make_shared<Rendezvous<absl::StatusOr<UserInfo>>>();
  client_->FetchUserinfo(app, answer.token.access_token,
                         [userinfo](absl::StatusOr<UserInfo> info) mutable {
                           userinfo->Deliver(info);
                         });
  ClearSecret(&answer.token.access_token);
  std::optional<absl::StatusOr<UserInfo>> info = userinfo->Await(wait);
  if (!info.has_value() || !info->ok()) {
    RevokeQuietly(app, std::move(answer.refresh_token));
    if (info.has_value()) {
      LogWarning("oauth: userinfo failed",
                 {{"app", app.name},
                  {"error", std::string(info->status().message())}});
    }
    return Finish(
        context,
        info.has_value() ? Outcome::kUserinfoFailed : Outcome::kTimeout, 502,
        Text("Who signed in could not be learned",
             {absl::StrCat("The authorization server did not say "
                           "who signed in",
                           info.has_value()
                               ? absl::StrCat(": ", info->status().message())
                               : " in time",
                           ". Nothing was kept, and the token "
                           "issued was revoked."),
              again}));
  }
  context.username = (*info)->username;

  UserGrant grant;
  grant.app = app.name;
  grant.user_id = (*info)->sub;
  grant.username = (*info)->username;
  grant.refresh_token = answer.refresh_token;
  grant.scopes = granted;
  grant.connected_at = clock_.Now();
  grant.updated_at = grant.connected_at;
  absl::Status stored =
      connect_ ? connect_(std::move(grant))
               : absl::FailedPreconditionError("no grant store is configured");
  if (!stored.ok()) {
    LogError("oauth: could not store a grant",
             {{"app", app.name},
              {"user", context.username},
              {"error", std::string(stored.message())}});
    RevokeQuietly(app, std::move(answer.refresh_token));
    return Finish(context, Outcome::kStoreFailed, 500,
                  Text("The broker could not save the sign-in",
                       {"The broker could not store your grant (its log says "
                        "why). Nothing was kept, and the token issued was "
                        "revoked.",
                        absl::StrCat("Try again with a new link: "
                                     "tokenbrokerctl connect ",
                                     app.name,
                                     "; if it fails again, tell an "
                                     "operator.")}));
  }
  ClearSecret(&answer.refresh_token);
  return Finish(
      context, Outcome::kConnected, 200,
      Text(absl::StrCat("Connected: ", app.name),
           {absl::StrCat("You are signed in as ", context.username,
                         ". The "
                         "token broker may now act on your behalf for ",
                         app.name, " with these scopes:")},
           granted, {"You can close this window."}));
}

PageResponse OAuthFlow::Finish(CallbackContext& context, Outcome outcome,
                               int status, PageText text) {
  const size_t index = static_cast<size_t>(outcome);
  callback_counts_[index].fetch_add(1, std::memory_order_relaxed);
  const std::string& name = CallbackOutcomeNames()[index];
  const bool allowed = outcome == Outcome::kConnected;
  Audit("GET /oauth/callback", context.caller, context.app_name,
        context.username, context.scopes, allowed, name, context.request.peer);
  nlohmann::json fields = {{"app", context.app_name},
                           {"caller", context.caller},
                           {"outcome", name},
                           {"peer", context.request.peer}};
  if (!context.username.empty()) fields["user"] = context.username;
  if (allowed) {
    LogInfo("oauth: user connected", fields);
  } else {
    LogWarning("oauth: sign-in refused", fields);
  }
  PageResponse page = RenderPage(status, std::move(text));
  // The binding cookie has done its work once its sign-in ended, whatever
  // the outcome. A cookie that did not match the state (or a request with no
  // known state) is left alone: it may bind another sign-in of this browser,
  // which a forced navigation to /oauth/callback must not be able to end.
  if (!context.cookie_to_clear.empty()) {
    page.headers.emplace_back(
        "Set-Cookie",
        BindingCookieHeader(context.cookie_to_clear, "", absl::ZeroDuration()));
  }
  return page;
}

void OAuthFlow::RevokeQuietly(const AppConfig& app, std::string refresh_token) {
  client_->RevokeRefreshToken(app, std::move(refresh_token),
                              [name = app.name](absl::Status status) {
                                LogRevokeResult(name, status);
                              });
}

}  // namespace tokenbroker
