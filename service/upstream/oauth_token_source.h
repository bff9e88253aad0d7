#ifndef TOKENBROKER_SERVICE_UPSTREAM_OAUTH_TOKEN_SOURCE_H_
#define TOKENBROKER_SERVICE_UPSTREAM_OAUTH_TOKEN_SOURCE_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/config/config.h"
#include "service/upstream/http_client.h"
#include "service/upstream/oauth_response.h"
#include "service/upstream/token_source.h"
#include "service/users/user_grants.h"

namespace tokenbroker {

struct OAuthTokenSourceOptions {
  // Lifetime assumed when a token answer has no usable `expires_in`.
  absl::Duration default_lifetime = absl::Seconds(3600);
  // A token answer with a shorter `expires_in` fails FAILED_PRECONDITION
  // (see ParseTokenResponse).
  absl::Duration min_lifetime = absl::Seconds(10);
  // Longer lifetimes are clamped to this.
  absl::Duration max_lifetime = absl::Hours(24);
  // Bound on one token or revoke request.
  absl::Duration fetch_timeout = absl::Seconds(10);
  std::string user_agent = "anypoint-token-broker/0.1";
};

// TokenSource speaking OAuth 2.0 (RFC 6749) to each app's authorization
// server: Anypoint by default, any compliant server through the app's
// endpoint paths, `send_scope` and `client_auth`.
//
// Apps acting on their own behalf use the client_credentials grant. Apps
// acting on behalf of users (authorization_code) use the refresh_token grant
// with the refresh token of the request's user from `grants`: a rotated
// refresh token is stored (UserGrants::StoreRotated) before the new access
// token is handed on; `invalid_grant` marks the user's grant as needing
// re-authorization and answers FAILED_PRECONDITION saying to connect the
// user again. Without `grants` (no grant store configured) user apps answer
// FAILED_PRECONDITION.
//
// Credentials are resolved (ResolveSecret) at every request, so a rotated
// secret file is picked up without a reload. A resolution failure is
// FAILED_PRECONDITION naming the file or variable, never the value. Errors of
// the server are mapped by ParseTokenResponse() (oauth_response.h); transport
// errors keep DEADLINE_EXCEEDED and CANCELLED and become UNAVAILABLE
// otherwise.
//
// Thread-safe. `http` and `clock` must outlive this object; callbacks run on
// the HttpClient's thread (or inline on early errors) and must not block.
class OAuthTokenSource final : public TokenSource {
 public:
  OAuthTokenSource(HttpClient& http, const Clock& clock,
                   OAuthTokenSourceOptions options,
                   UserGrants* grants = nullptr);

  // Replaces the known apps (config reload). Requests already sent keep the
  // config they started with.
  void SetApps(const std::vector<AppConfig>& apps);

  // Errors: see TokenSource; NOT_FOUND for an app not given to SetApps().
  void Fetch(const TokenRequest& request, TokenCallback done) override;

  // Revokes `token` of `app` at the app's revoke endpoint (RFC 7009) with the
  // app's client credentials; `token_type_hint` ("access_token",
  // "refresh_token") is sent when not empty. `done` receives OK for any 2xx
  // answer, else the errors of Fetch().
  void Revoke(const std::string& app, const std::string& token,
              absl::AnyInvocable<void(absl::Status)> done,
              absl::string_view token_type_hint = "");

 private:
  using FormFields = std::vector<std::pair<std::string, std::string>>;

  std::shared_ptr<const AppConfig> FindApp(const std::string& name) const;

  // Builds a POST of `fields` plus the app's client authentication to
  // base_url + `path`. Errors: FAILED_PRECONDITION if a secret cannot be
  // resolved.
  absl::StatusOr<HttpRequest> BuildFormPost(const AppConfig& app,
                                            const std::string& path,
                                            FormFields fields) const;

  // Sends a token request built from grant-specific `fields` (a
  // refresh_token grant is the same call with other fields).
  void RequestToken(const AppConfig& app, FormFields fields,
                    std::vector<std::string> default_scopes,
                    TokenCallback done);

  // The refresh_token grant for the user `request.user` of user app `app`.
  void FetchForUser(std::shared_ptr<const AppConfig> app,
                    const TokenRequest& request, TokenCallback done);
  // Handles the answer of a refresh: stores a rotated refresh token first.
  void OnUserTokenAnswer(const AppConfig& app, const std::string& user_id,
                         RefreshCredential credential,
                         absl::StatusOr<HttpResponse> response,
                         TokenCallback done);
  TokenParseOptions ParseOptions(const AppConfig& app) const;

  HttpClient& http_;
  const Clock& clock_;
  const OAuthTokenSourceOptions options_;
  UserGrants* const grants_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const AppConfig>> apps_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_OAUTH_TOKEN_SOURCE_H_
