#include "service/http/oauth_flow.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/http/oauth_flow_internal.h"
#include "service/http/oauth_request.h"
#include "service/upstream/client_auth.h"
#include "service/upstream/oauth_response.h"

// OAuthFlow's links, request dispatch and /oauth/start; the callback is in
// oauth_callback.cc.

namespace tokenbroker {
namespace {

using internal::BindingCookieHeader;
using internal::BindingCookieName;
using internal::FindParam;
using internal::kAskForLink;
using internal::ParseQuery;
using internal::QueryParams;
using internal::RequestedScopes;
using internal::Text;

constexpr absl::string_view kStartPath = "/oauth/start";
constexpr absl::string_view kCallbackPath = "/oauth/callback";

}  // namespace

OAuthFlow::OAuthFlow(OAuthFlowOptions options, HttpClient& http,
                     AuditSink& audit, const Clock& clock,
                     GrantConnector connect)
    : options_(std::move(options)),
      audit_(audit),
      clock_(clock),
      connect_(std::move(connect)),
      client_(std::make_shared<AuthorizationCodeClient>(
          http, clock,
          [this] {
            AuthorizationCodeClientOptions client = options_.client;
            client.request_timeout = options_.oauth.request_timeout;
            return client;
          }())),
      pending_([&] {
        PendingFlowsOptions pending{options_.oauth.start_link_ttl,
                                    options_.oauth.state_ttl,
                                    options_.oauth.max_pending};
        if (options_.pending_flows) {
          return options_.pending_flows(clock, pending);
        }
        return std::unique_ptr<PendingFlows>(
            std::make_unique<MemoryPendingFlows>(clock, pending));
      }()),
      links_created_(std::make_shared<std::atomic<uint64_t>>(0)),
      callback_counts_(CallbackOutcomeNames().size()) {}

OAuthFlow::~OAuthFlow() = default;

void OAuthFlow::SetApps(const std::vector<AppConfig>& apps) {
  std::map<std::string, std::shared_ptr<const AppConfig>, std::less<>> fresh;
  for (const AppConfig& app : apps) {
    fresh[app.name] = std::make_shared<const AppConfig>(app);
  }
  absl::MutexLock lock(&mu_);
  apps_.swap(fresh);
}

void OAuthFlow::SetListenerUrl(std::string url) {
  absl::MutexLock lock(&mu_);
  listener_url_ = std::move(url);
}

std::shared_ptr<const AppConfig> OAuthFlow::FindApp(
    absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(name);
  if (it == apps_.end() ||
      it->second->grant_type != GrantType::kAuthorizationCode) {
    return nullptr;
  }
  return it->second;
}

std::string OAuthFlow::PublicBase(const AppConfig& app) const {
  absl::string_view base = app.redirect_uri;
  if (absl::ConsumeSuffix(&base, kCallbackPath)) return std::string(base);
  if (!options_.oauth.public_url.empty()) return options_.oauth.public_url;
  absl::MutexLock lock(&mu_);
  return listener_url_;
}

void OAuthFlow::CreateStartLink(absl::string_view app_name,
                                absl::string_view minted_by,
                                StartLinkCallback done) {
  std::shared_ptr<const AppConfig> app = FindApp(app_name);
  if (app == nullptr) {
    absl::MutexLock lock(&mu_);
    if (apps_.find(app_name) != apps_.end()) {
      done(absl::FailedPreconditionError(absl::StrCat(
          "app \"", app_name,
          "\" acts on its own behalf (client_credentials): it has no users "
          "to connect")));
      return;
    }
    done(absl::NotFoundError(absl::StrCat("unknown app \"",
                                          SanitizeForMessage(app_name, 64),
                                          "\": check the broker config")));
    return;
  }
  std::string base = PublicBase(*app);
  if (base.empty()) {
    done(absl::FailedPreconditionError(
        "the OAuth pages' listener is not running yet; retry in a moment"));
    return;
  }
  // The answer may come after this object is gone (on the Redis client's
  // thread): it owns what it touches.
  pending_->MintTicket(
      app->name, std::string(minted_by),
      [done = std::move(done), base = std::move(base), app = app->name,
       caller = std::string(minted_by), links_created = links_created_](
          absl::StatusOr<MintedTicket> ticket) mutable {
        if (!ticket.ok()) {
          done(ticket.status());
          return;
        }
        links_created->fetch_add(1, std::memory_order_relaxed);
        LogInfo("oauth: sign-in link created",
                {{"app", app},
                 {"caller", caller},
                 {"expires_at", absl::FormatTime(ticket->expires_at)}});
        StartLink link;
        link.url = absl::StrCat(base, kStartPath, "?ticket=", ticket->ticket);
        link.expires_at = ticket->expires_at;
        ClearSecret(&ticket->ticket);
        done(std::move(link));
      });
}

PageResponse OAuthFlow::Handle(const PageRequest& request) {
  const bool start = request.path == kStartPath;
  if (!start && request.path != kCallbackPath) {
    return RenderPage(404, Text("Not found", {"There is no such page."}));
  }
  if (request.method != "GET") {
    PageResponse page = RenderPage(
        405, Text("Method not allowed", {"This page answers GET only."}));
    page.headers.emplace_back("Allow", "GET");
    return page;
  }
  absl::StatusOr<QueryParams> params = ParseQuery(request.query);
  if (!params.ok()) {
    Audit(start ? "GET /oauth/start" : "GET /oauth/callback", "-", "", "", {},
          false, absl::StrCat("bad request: ", params.status().message()),
          request.peer);
    if (start) {
      starts_refused_.fetch_add(1, std::memory_order_relaxed);
    } else {
      callback_counts_[static_cast<int>(Outcome::kBadRequest)].fetch_add(
          1, std::memory_order_relaxed);
    }
    PageResponse page = RenderPage(
        400, Text("Bad request",
                  {absl::StrCat("This address is malformed (",
                                params.status().message(),
                                "). Open the link exactly as you received "
                                "it.")}));
    return page;
  }
  return start ? Start(*params, request) : Callback(*params, request);
}

PageResponse OAuthFlow::Start(const QueryParams& params,
                              const PageRequest& request) {
  constexpr absl::string_view kRpc = "GET /oauth/start";
  auto refuse = [&](absl::string_view caller, absl::string_view app,
                    absl::string_view reason, int status, PageText text) {
    starts_refused_.fetch_add(1, std::memory_order_relaxed);
    Audit(kRpc, caller, app, "", {}, false, reason, request.peer);
    LogWarning("oauth: sign-in start refused", {{"app", std::string(app)},
                                                {"caller", std::string(caller)},
                                                {"reason", std::string(reason)},
                                                {"peer", request.peer}});
    return RenderPage(status, std::move(text));
  };
  // The store of pending sign-ins did not answer (the shared state is down):
  // the ticket is untouched, so the same link may simply be opened again.
  auto try_later = [&](absl::string_view caller, absl::string_view app,
                       const absl::Status& status) {
    PageResponse page = refuse(
        caller, app, absl::StrCat("not now: ", status.message()), 503,
        Text("The broker cannot start this sign-in now",
             {"The broker could not check your link at this moment (its log "
              "says why). The link was not used: open it again in a moment, "
              "or tell an operator if this keeps happening."}));
    page.headers.emplace_back("Retry-After", "5");
    return page;
  };
  auto refused_ticket = [](const absl::Status& status) {
    return status.code() == absl::StatusCode::kNotFound ||
           status.code() == absl::StatusCode::kDeadlineExceeded;
  };
  const std::string* ticket = FindParam(params, "ticket");
  if (ticket == nullptr || ticket->empty()) {
    return refuse(
        "-", "", "no ticket", 403,
        Text("A sign-in link is needed",
             {"This page starts a sign-in only from a one-time link made "
              "for it by an operator of the token broker.",
              absl::StrCat(kAskForLink, "APP")}));
  }
  absl::StatusOr<StartTicket> found = pending_->PeekTicket(*ticket);
  if (!found.ok() && !refused_ticket(found.status())) {
    return try_later("-", "", found.status());
  }
  if (!found.ok()) {
    const bool expired =
        found.status().code() == absl::StatusCode::kDeadlineExceeded;
    return refuse("-", "",
                  expired ? "expired ticket" : "unknown or used ticket", 403,
                  Text("This sign-in link is not valid",
                       {expired ? "This link has expired."
                                : "This link was already used, or it was never "
                                  "issued. Each link works once.",
                        absl::StrCat(kAskForLink, "APP")}));
  }
  std::shared_ptr<const AppConfig> app = FindApp(found->app);
  if (app == nullptr) {
    return refuse(found->minted_by, found->app, "app no longer configured", 403,
                  Text("This app cannot be connected",
                       {absl::StrCat("The broker no longer has a user app "
                                     "named ",
                                     found->app, ".")}));
  }
  const std::string base = PublicBase(*app);
  absl::StatusOr<std::string> client_id =
      ResolveAppSecret(*app, app->client_id, "client id");
  if (base.empty() || !client_id.ok()) {
    LogError(
        "oauth: cannot start a sign-in",
        {{"app", app->name},
         {"error", base.empty() ? "no public URL yet"
                                : std::string(client_id.status().message())}});
    return refuse(found->minted_by, app->name, "broker not ready", 503,
                  Text("The broker cannot start this sign-in now",
                       {"The broker could not prepare the sign-in (its log "
                        "says why). Your link is still valid: try it again "
                        "in a moment, or tell an operator."}));
  }
  SignInSetup setup;
  setup.redirect_uri = RedirectUri(*app, base);
  setup.cookie_name = std::string(BindingCookieName(base));
  absl::StatusOr<StartedSignIn> started = pending_->BeginSignIn(*ticket, setup);
  if (!started.ok()) {
    ClearSecret(&*client_id);
    if (!refused_ticket(started.status())) {
      return try_later(found->minted_by, app->name, started.status());
    }
    return refuse(found->minted_by, app->name,
                  absl::StrCat("could not begin: ", started.status().message()),
                  403,
                  Text("This sign-in link is not valid",
                       {"This link was used at the same moment elsewhere.",
                        absl::StrCat(kAskForLink, app->name)}));
  }

  OAuthFormFields fields = {
      {"response_type", "code"},
      {"client_id", *client_id},
      {"redirect_uri", setup.redirect_uri},
      {"scope", absl::StrJoin(RequestedScopes(*app), " ")},
      {"state", started->state}};
  if (app->pkce) {
    fields.emplace_back("code_challenge",
                        PkceS256Challenge(started->code_verifier));
    fields.emplace_back("code_challenge_method", "S256");
  }
  for (const auto& param : app->authorize_params) fields.push_back(param);
  ClearSecret(&*client_id);
  const absl::string_view separator =
      absl::StrContains(app->authorize_path, '?') ? "&" : "?";
  PageResponse page = RedirectPage(absl::StrCat(
      app->base_url, app->authorize_path, separator, FormEncode(fields)));
  page.headers.emplace_back(
      "Set-Cookie", BindingCookieHeader(setup.cookie_name, started->cookie,
                                        options_.oauth.state_ttl));
  starts_.fetch_add(1, std::memory_order_relaxed);
  Audit(kRpc, found->minted_by, app->name, "", {}, true, "sign-in started",
        request.peer);
  LogInfo("oauth: sign-in started",
          {{"app", app->name}, {"caller", found->minted_by}});
  return page;
}

void OAuthFlow::Audit(absl::string_view rpc, absl::string_view caller,
                      absl::string_view app, absl::string_view user,
                      const std::vector<std::string>& scopes, bool allowed,
                      absl::string_view reason, absl::string_view peer) {
  AuditRecord record;
  record.time = clock_.Now();
  record.event = "connect";
  record.caller = std::string(caller);
  record.auth = "none";
  record.peer = std::string(peer);
  record.rpc = std::string(rpc);
  record.app = std::string(app);
  record.user = std::string(user);
  record.scopes = scopes;
  record.decision = allowed ? "allow" : "deny";
  record.reason = std::string(reason);
  if (absl::Status status = audit_.Write(record); !status.ok()) {
    LogError("oauth: audit record not written",
             {{"error", std::string(status.message())}});
  }
}

OAuthFlowStats OAuthFlow::stats() const {
  OAuthFlowStats stats;
  stats.links_created = links_created_->load(std::memory_order_relaxed);
  stats.starts = starts_.load(std::memory_order_relaxed);
  stats.starts_refused = starts_refused_.load(std::memory_order_relaxed);
  const std::vector<std::string>& names = CallbackOutcomeNames();
  for (size_t i = 0; i < names.size(); ++i) {
    stats.callbacks[names[i]] =
        callback_counts_[i].load(std::memory_order_relaxed);
  }
  stats.pending = pending_->pending();
  return stats;
}

}  // namespace tokenbroker
