#ifndef TOKENBROKER_SERVICE_HTTP_OAUTH_FLOW_H_
#define TOKENBROKER_SERVICE_HTTP_OAUTH_FLOW_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/auth/audit.h"
#include "service/common/clock.h"
#include "service/config/config.h"
#include "service/http/oauth_pages.h"
#include "service/http/pending_flows.h"
#include "service/store/grant_store.h"
#include "service/upstream/authorization_code_client.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {

// Stores the grant of a completed sign-in durably, replacing the user's
// previous one; returns once it is stored (the broker passes
// UserGrants::Connect). Called on a listener thread; may block briefly.
using GrantConnector = std::function<absl::Status(UserGrant)>;

struct OAuthFlowOptions {
  OAuthFlowConfig oauth;  // Config::oauth (public_url, TTLs, limits).
  // For the token answers of the code exchange (cache.default_lifetime,
  // min_lifetime, max_lifetime); request_timeout is taken from `oauth`.
  AuthorizationCodeClientOptions client;
  // Callbacks that may wait on the authorization server at once (each holds
  // a listener thread for up to about 2 * request_timeout); more are asked
  // to retry (503) with their state left unused.
  int max_concurrent_callbacks = 4;
  // Makes the store of sign-ins in progress from the flow's clock and
  // oauth.start_link_ttl, state_ttl and max_pending. Empty: a
  // MemoryPendingFlows (a sign-in starts and completes on the replica that
  // minted its link); with shared state, a RedisPendingFlows. Called once,
  // by the constructor; must not return null.
  std::function<std::unique_ptr<PendingFlows>(const Clock&,
                                              PendingFlowsOptions)>
      pending_flows;
};

// A one-time link that starts one sign-in of one app.
struct StartLink {
  std::string url;  // public URL + "/oauth/start?ticket=..." (a secret)
  absl::Time expires_at;
};

// Counters since start, for metrics (never a secret).
struct OAuthFlowStats {
  uint64_t links_created = 0;
  uint64_t starts = 0;          // Browsers sent to an authorization server.
  uint64_t starts_refused = 0;  // No, unknown, used or expired ticket, ...
  // Callbacks by outcome: every name of CallbackOutcomeNames(), zeros too.
  std::map<std::string, uint64_t> callbacks;
  int pending = 0;  // Links and sign-ins pending now.
};

// The names of the callback outcomes OAuthFlowStats::callbacks counts:
// connected, declined, authorization_error, bad_request, unknown_state,
// expired_state, no_cookie, cookie_mismatch, issuer_mismatch,
// app_unavailable, exchange_failed, no_refresh_token, scopes_narrower,
// userinfo_failed, store_failed, timeout, busy, unavailable (the shared
// store of pending sign-ins cannot be reached).
const std::vector<std::string>& CallbackOutcomeNames();

// The browser flow of user apps (RFC 6749 4.1 with PKCE, RFC 7636, and the
// RFC 9207 issuer check), hosted by the broker:
//
//   GET /oauth/start?ticket=T
//     T is a one-time ticket minted by an admin (CreateStartLink, behind
//     the admin RPC `tokenbrokerctl connect APP`). It is the ONLY way to
//     start a sign-in: there is no ?app= form, so whoever merely reaches
//     the port cannot bind a grant to an app. A valid ticket is used up and
//     the browser is sent (302) to the app's authorize endpoint with
//     response_type=code, client_id, redirect_uri, scope = the app's scopes
//     plus offline_access, a fresh state, the PKCE S256 challenge (unless
//     `pkce: false`) and the app's authorize_params; a fresh random cookie
//     binds the state to this browser: "__Host-tb_oauth" (Secure; Path=/)
//     when the public URL is https, else "tb_oauth" (Path=/oauth); always
//     HttpOnly, SameSite=Lax, Max-Age = state_ttl. No, unknown, used or
//     expired ticket: 403 and nothing changes.
//
//   GET /oauth/callback?code=..|error=..&state=..[&iss=..]
//     In this order: the state exists and is unexpired (it is used up at
//     once, whatever follows); the request carries its cookie; `iss`, if
//     present, equals IssuerOf(app); `error` (access_denied: declined, or
//     not allowed to use the app); the code is exchanged with the state's
//     redirect_uri and verifier; the answer must hold a refresh token; the
//     granted scopes
//     (`scope`, else those requested) must cover the app's, else the
//     refresh token is revoked; userinfo names the user; the grant is
//     stored (GrantConnector). A refresh token issued for a sign-in that
//     then fails is revoked (RFC 7009), also when it arrives after the page
//     gave up waiting. The page names the app, the user and the granted
//     scopes, or says what failed and what to do. Once the state and its
//     cookie matched, every answer clears the cookie; a cookie that matched
//     no state is left alone (it may bind another sign-in of this browser,
//     which a forced navigation to the callback must not end).
//
// Every answer carries PageSecurityHeaders(); only GET is served (405),
// queries over 4 KiB and repeated parameters are refused (400). Status
// codes: 400 malformed, 403 refused, 502 the authorization server failed,
// 500 the grant could not be stored, 503 busy or not ready. Every outcome
// is audited (event "connect", caller = the admin who minted the link,
// decision, reason, app, user when known); no page, log or audit record
// holds a ticket, state, cookie, code or token.
//
// Thread-safe. `http`, `audit` and `clock` must outlive this object and
// every request it started (destroy the HttpClient's users first, as for
// OAuthTokenSource); a late answer touches only shared state.
class OAuthFlow final : public OAuthPageHandler {
 public:
  OAuthFlow(OAuthFlowOptions options, HttpClient& http, AuditSink& audit,
            const Clock& clock, GrantConnector connect);
  ~OAuthFlow() override;

  OAuthFlow(const OAuthFlow&) = delete;
  OAuthFlow& operator=(const OAuthFlow&) = delete;

  // Replaces the known apps (at start and on config reload). Sign-ins in
  // progress use the app's current config at their callback (and the
  // redirect_uri they began with); an app removed meanwhile is refused.
  void SetApps(const std::vector<AppConfig>& apps);

  // The public URL to use when oauth.public_url is empty: the listener that
  // serves the pages, "http://127.0.0.1:PORT" (AdminHttpServer::url()),
  // known once it is bound. Ignored when oauth.public_url is set.
  void SetListenerUrl(std::string url);

  // Mints a one-time link that starts a sign-in of user app `app` and
  // gives it to `done`; the admin caller `minted_by` is recorded with it and
  // named in the audit record of the sign-in. The link's origin is that of
  // the app's redirect_uri, else the public URL. Never blocks (gRPC
  // threads call it): `done` runs exactly once, inline or on the thread that
  // answers for the PendingFlows (the Redis client's loop thread), and must
  // not block. Errors: NOT_FOUND (unknown app), FAILED_PRECONDITION (not a
  // user app; no public URL yet), RESOURCE_EXHAUSTED (oauth.max_pending),
  // UNAVAILABLE (the shared state is down), INTERNAL (random generator).
  using StartLinkCallback = absl::AnyInvocable<void(absl::StatusOr<StartLink>)>;
  void CreateStartLink(absl::string_view app, absl::string_view minted_by,
                       StartLinkCallback done);

  // Serves /oauth/start and /oauth/callback (404 for other paths).
  PageResponse Handle(const PageRequest& request) override;

  OAuthFlowStats stats() const;

 private:
  enum class Outcome;
  struct CallbackContext;

  PageResponse Start(const std::map<std::string, std::string>& params,
                     const PageRequest& request);
  PageResponse Callback(const std::map<std::string, std::string>& params,
                        const PageRequest& request);
  // The steps after the state and cookie checks, with the sign-in's app.
  PageResponse CompleteSignIn(CallbackContext& context,
                              const std::map<std::string, std::string>& params);
  PageResponse Finish(CallbackContext& context, Outcome outcome, int status,
                      PageText text);
  void RevokeQuietly(const AppConfig& app, std::string refresh_token);

  std::shared_ptr<const AppConfig> FindApp(absl::string_view name) const;
  // The URL browsers reach the pages at for `app`, or empty if unknown.
  std::string PublicBase(const AppConfig& app) const;
  void Audit(absl::string_view rpc, absl::string_view caller,
             absl::string_view app, absl::string_view user,
             const std::vector<std::string>& scopes, bool allowed,
             absl::string_view reason, absl::string_view peer);

  const OAuthFlowOptions options_;
  AuditSink& audit_;
  const Clock& clock_;
  const GrantConnector connect_;
  // Shared with the completions of requests still in flight.
  const std::shared_ptr<AuthorizationCodeClient> client_;
  const std::unique_ptr<PendingFlows> pending_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const AppConfig>, std::less<>> apps_
      ABSL_GUARDED_BY(mu_);
  std::string listener_url_ ABSL_GUARDED_BY(mu_);

  std::atomic<int> callbacks_in_flight_{0};
  // Shared with the answers of links being minted.
  const std::shared_ptr<std::atomic<uint64_t>> links_created_;
  std::atomic<uint64_t> starts_{0};
  std::atomic<uint64_t> starts_refused_{0};
  std::vector<std::atomic<uint64_t>> callback_counts_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_OAUTH_FLOW_H_
