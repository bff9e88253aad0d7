#ifndef TOKENBROKER_SERVICE_UPSTREAM_AUTHORIZATION_CODE_CLIENT_H_
#define TOKENBROKER_SERVICE_UPSTREAM_AUTHORIZATION_CODE_CLIENT_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/config/config.h"
#include "service/upstream/http_client.h"
#include "service/upstream/oauth_response.h"

namespace tokenbroker {

struct AuthorizationCodeClientOptions {
  // Bound on each request (oauth.request_timeout).
  absl::Duration request_timeout = absl::Seconds(10);
  // As in TokenParseOptions (cache.default_lifetime, min_lifetime,
  // max_lifetime).
  absl::Duration default_lifetime = absl::Seconds(3600);
  absl::Duration min_lifetime = absl::Seconds(10);
  absl::Duration max_lifetime = absl::Hours(24);
  std::string user_agent = "anypoint-token-broker/0.1";
};

// Who signed in, as the authorization server's userinfo endpoint says (the
// only source of a user's identity: never a value from the browser).
struct UserInfo {
  std::string sub;  // The user's stable id: 1 to 256 bytes, printable UTF-8.
  // For display: preferred_username, else username (Anypoint), else email,
  // else `sub`; at most 256 bytes, printable UTF-8.
  std::string username;
};

// The requests of the authorization code grant (RFC 6749 4.1) at an app's
// authorization server, over HttpClient:
//   ExchangeCode        4.1.3: the code for tokens (with the PKCE verifier,
//                       RFC 7636 4.5).
//   FetchUserinfo       who the access token belongs to (OIDC Core 5.3).
//   RevokeRefreshToken  RFC 7009 with token_type_hint=refresh_token: when a
//                       sign-in is refused after its code was exchanged, and
//                       to revoke a stored grant.
// The client authentication is the app's (client_auth.h), resolved at every
// request. Each request is bounded by `request_timeout`.
//
// Errors (never holding a code, token or secret; an authorization server's
// error_description is left out too, since servers may echo what they
// received):
//   FAILED_PRECONDITION  a credential cannot be resolved; the server refused
//                        (4xx: invalid_grant, invalid_client, ...; the
//                        message names the HTTP status and OAuth error code);
//                        a refresh token or user id the broker cannot store.
//   UNAVAILABLE          transport failure; 408, 429, 5xx; a malformed answer.
//   DEADLINE_EXCEEDED    the request timed out.   CANCELLED  client shut down.
//
// Thread-safe. Callbacks run on the HttpClient's thread (or inline when the
// request cannot be built) and must not block. A callback touches neither
// this object nor the AppConfig passed in, only `http` and `clock`, which
// must outlive every request started here: this object may go first.
class AuthorizationCodeClient {
 public:
  using ExchangeCallback =
      absl::AnyInvocable<void(absl::StatusOr<UserTokenResponse>)>;
  using UserInfoCallback = absl::AnyInvocable<void(absl::StatusOr<UserInfo>)>;
  using RevokeCallback = absl::AnyInvocable<void(absl::Status)>;

  AuthorizationCodeClient(HttpClient& http, const Clock& clock,
                          AuthorizationCodeClientOptions options);

  // POSTs grant_type=authorization_code, `code`, `redirect_uri` (the one of
  // the authorization request) and, when non-empty, `code_verifier` to the
  // app's token endpoint. The answer's token scopes are those of its
  // `scope` (UserTokenResponse::scope_present says whether it had one).
  // A 2xx answer without a refresh token is not an error here.
  void ExchangeCode(const AppConfig& app, std::string code,
                    std::string redirect_uri, std::string code_verifier,
                    ExchangeCallback done);

  // GETs base_url + userinfo_path with `access_token` as a bearer token.
  // The answer must be a JSON object with a string `sub`; otherwise
  // UNAVAILABLE (malformed). A 401 or 403 is FAILED_PRECONDITION.
  void FetchUserinfo(const AppConfig& app, std::string access_token,
                     UserInfoCallback done);

  // POSTs token=`refresh_token`&token_type_hint=refresh_token to the app's
  // revoke endpoint. OK for any 2xx (RFC 7009 2.2: also for a token the
  // server no longer knows).
  void RevokeRefreshToken(const AppConfig& app, std::string refresh_token,
                          RevokeCallback done);

 private:
  HttpClient& http_;
  const Clock& clock_;
  const AuthorizationCodeClientOptions options_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_AUTHORIZATION_CODE_CLIENT_H_
