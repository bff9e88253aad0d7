// The OAuth endpoints under /accounts/api/v2/oauth2/ other than authorize:
// token (client_credentials, authorization_code, refresh_token), revoke
// (RFC 7009), userinfo and OpenID discovery; with the client authentication,
// bearer token validation and token issue they share with authorize and the
// resource endpoints. Authorize and its pages are in oauth_authorize.cc.

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using internal::ParamOr;
using internal::Params;
using internal::SetJson;
using internal::SetMessage;
using internal::SetOAuthError;

}  // namespace

std::optional<Emulator::Impl::AppState> Emulator::Impl::AuthenticateClient(
    const httplib::Request& req, const Params& params, httplib::Response& res) {
  std::string client_id, secret;
  bool basic = false;
  internal::ClientCredentials(req, params, &client_id, &secret, &basic);
  if (client_id.empty()) {
    SetOAuthError(res, 400, "invalid_request",
                  "client_id is required (in the body, or HTTP Basic)");
    return std::nullopt;
  }
  if (secret.empty()) {
    SetOAuthError(res, 400, "invalid_request", "client_secret is required");
    return std::nullopt;
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end() ||
      !internal::SecretsEqual(it->second.app.client_secret, secret)) {
    if (basic) res.set_header("WWW-Authenticate", "Basic realm=\"anypoint\"");
    SetOAuthError(res, 401, "invalid_client",
                  "client authentication failed: unknown client_id or wrong "
                  "client_secret");
    return std::nullopt;
  }
  return it->second;
}

std::string Emulator::Impl::IssueToken(TokenKind kind, const AppState& app,
                                       const std::string& user_id,
                                       const std::vector<std::string>& scopes,
                                       absl::Duration lifetime,
                                       const std::string& grant_id) {
  const absl::Time now = Now();
  if (tokens_.size() > 100000) PurgeExpired(now);
  std::string token = internal::RandomToken(32);
  TokenRecord record;
  record.kind = kind;
  record.client_id = app.app.client_id;
  record.user_id = user_id;
  record.scopes = scopes;
  record.grant_id = grant_id;
  record.generation = app.generation;
  record.issued = now;
  record.expires = now + lifetime;
  tokens_[token] = std::move(record);
  if (kind == TokenKind::kRefresh && !grant_id.empty()) {
    grants_[grant_id].refresh_tokens.push_back(token);
  }
  ++counters_.tokens_issued;
  return token;
}

absl::Time Emulator::Impl::RefreshExpiry(const TokenRecord& record) const {
  auto app = apps_.find(record.client_id);
  const int64_t seconds = app == apps_.end()
                              ? kDefaultRefreshTokenLifetimeSeconds
                              : app->second.app.refresh_token_lifetime_seconds;
  return record.issued + absl::Seconds(seconds);
}

bool Emulator::Impl::GrantRevoked(const std::string& grant_id) const {
  if (grant_id.empty()) return false;  // client_credentials
  auto it = grants_.find(grant_id);
  return it == grants_.end() || it->second.revoked;
}

bool Emulator::Impl::RefreshTokenLive(const TokenRecord& record,
                                      absl::Time now) const {
  if (record.revoked || GrantRevoked(record.grant_id) ||
      RefreshExpiry(record) <= now) {
    return false;
  }
  if (record.successor.empty()) return true;
  auto successor = tokens_.find(record.successor);
  return successor == tokens_.end() || !successor->second.presented;
}

void Emulator::Impl::PurgeExpired(absl::Time now) {
  // Spent refresh tokens stay while they are not expired: reuse detection
  // needs them.
  // A loop, not erase_if: the lock analysis does not see into lambdas.
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    const TokenRecord& record = it->second;
    const absl::Time expires = record.kind == TokenKind::kRefresh
                                   ? RefreshExpiry(record)
                                   : record.expires;
    if (expires <= now || GrantRevoked(record.grant_id) ||
        (record.revoked && record.kind == TokenKind::kAccess)) {
      tokens_.erase(it++);
    } else {
      ++it;
    }
  }
  absl::erase_if(
      codes_, [now](const auto& entry) { return entry.second.expires <= now; });
}

bool Emulator::Impl::RedeemCode(const Params& params, const AppState& app,
                                absl::Time now, httplib::Response& res,
                                std::string* user_id,
                                std::vector<std::string>* scopes,
                                std::string* grant_id, bool* with_refresh) {
  const std::string code = ParamOr(params, "code");
  if (code.empty()) {
    SetOAuthError(res, 400, "invalid_request", "code is required");
    return false;
  }
  auto it = codes_.find(code);
  if (it == codes_.end() || it->second.client_id != app.app.client_id) {
    SetOAuthError(res, 400, "invalid_grant", "unknown authorization code");
    return false;
  }
  CodeRecord& record = it->second;
  if (record.used) {
    // RFC 6749 4.1.2: a replayed code revokes what it was exchanged for.
    auto grant = grants_.find(record.grant_id);
    if (grant != grants_.end()) grant->second.revoked = true;
    SetOAuthError(res, 400, "invalid_grant",
                  "the authorization code was already used; the tokens "
                  "issued with it are revoked");
    return false;
  }
  if (record.expires <= now) {
    SetOAuthError(res, 400, "invalid_grant",
                  "the authorization code expired (codes live 10 minutes)");
    return false;
  }
  if (record.generation != app.generation ||
      users_.at(record.user_id).epoch != record.user_epoch) {
    SetOAuthError(res, 400, "invalid_grant",
                  "the authorization code was revoked (the app changed or "
                  "the user's password changed)");
    return false;
  }
  // RFC 6749 4.1.3: identical to the authorization request's, if it had one.
  const std::string redirect_uri = ParamOr(params, "redirect_uri");
  if (record.redirect_uri_sent.empty()
          ? !redirect_uri.empty() && redirect_uri != record.redirect_uri
          : redirect_uri != record.redirect_uri_sent) {
    SetOAuthError(res, 400, "invalid_grant",
                  "redirect_uri must be identical to the one sent to "
                  "authorize");
    return false;
  }
  // RFC 7636 4.6.
  const std::string verifier = ParamOr(params, "code_verifier");
  if (record.code_challenge.empty()) {
    if (!verifier.empty()) {
      SetOAuthError(res, 400, "invalid_grant",
                    "code_verifier sent, but the authorization request had "
                    "no code_challenge");
      return false;
    }
  } else if (verifier.empty()) {
    SetOAuthError(res, 400, "invalid_grant",
                  "code_verifier is required: the authorization request had "
                  "a code_challenge");
    return false;
  } else if (!internal::IsPkceString(verifier, 43, 128,
                                     /*pkce_verifier=*/true) ||
             !internal::SecretsEqual(internal::S256Challenge(verifier),
                                     record.code_challenge)) {
    SetOAuthError(res, 400, "invalid_grant",
                  "code_verifier does not match the code_challenge (S256)");
    return false;
  }
  record.used = true;
  record.grant_id = internal::RandomToken(16);
  GrantRecord& grant = grants_[record.grant_id];
  grant.client_id = record.client_id;
  grant.user_id = record.user_id;
  grant.scopes = record.scopes;
  grant.created = now;
  grant.sequence = ++grant_sequence_;
  *user_id = record.user_id;
  *scopes = record.scopes;
  *grant_id = record.grant_id;
  *with_refresh = std::find(scopes->begin(), scopes->end(), "offline_access") !=
                  scopes->end();
  return true;
}

bool Emulator::Impl::RedeemRefreshToken(const Params& params,
                                        const AppState& app, absl::Time now,
                                        httplib::Response& res,
                                        std::string* user_id,
                                        std::vector<std::string>* scopes,
                                        std::string* grant_id,
                                        std::string* predecessor) {
  const std::string refresh = ParamOr(params, "refresh_token");
  if (refresh.empty()) {
    SetOAuthError(res, 400, "invalid_request", "refresh_token is required");
    return false;
  }
  auto it = tokens_.find(refresh);
  if (it == tokens_.end() || it->second.kind != TokenKind::kRefresh ||
      it->second.client_id != app.app.client_id) {
    SetOAuthError(res, 400, "invalid_grant", "unknown refresh token");
    return false;
  }
  TokenRecord& record = it->second;
  if (record.revoked || GrantRevoked(record.grant_id) ||
      record.generation != app.generation) {
    SetOAuthError(res, 400, "invalid_grant", "the refresh token was revoked");
    return false;
  }
  if (RefreshExpiry(record) <= now) {
    SetOAuthError(res, 400, "invalid_grant", "the refresh token expired");
    return false;
  }
  if (!record.successor.empty()) {
    auto successor = tokens_.find(record.successor);
    if (successor != tokens_.end() && successor->second.presented) {
      // Two parties hold the chain: end the whole grant.
      grants_[record.grant_id].revoked = true;
      ++counters_.refresh_token_reuse_detected;
      SetOAuthError(res, 400, "invalid_grant",
                    "the refresh token was already used (a newer one was "
                    "presented since); the whole grant is revoked");
      return false;
    }
  }
  record.presented = true;
  *user_id = record.user_id;
  *scopes = record.scopes;
  *grant_id = record.grant_id;
  *predecessor = refresh;
  return true;
}

void Emulator::Impl::HandleToken(const httplib::Request& req,
                                 httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("Pragma", "no-cache");
  absl::StatusOr<Params> params = internal::ParseBodyParams(req);
  if (!params.ok()) {
    SetOAuthError(res, 400, "invalid_request", params.status().message());
    return;
  }
  const std::string grant_type = ParamOr(*params, "grant_type");
  if (grant_type.empty()) {
    SetOAuthError(res, 400, "invalid_request", "grant_type is required");
    return;
  }
  std::optional<AppState> app = AuthenticateClient(req, *params, res);
  if (!app.has_value()) return;
  if (grant_type != "client_credentials" &&
      grant_type != "authorization_code" && grant_type != "refresh_token") {
    SetOAuthError(res, 400, "unsupported_grant_type",
                  absl::StrCat("grant_type ", grant_type,
                               " is not supported (use client_credentials, "
                               "authorization_code or refresh_token)"));
    return;
  }
  const auto& grants = app->app.grant_types;
  if (std::find(grants.begin(), grants.end(), grant_type) == grants.end()) {
    SetOAuthError(
        res, 400, "unauthorized_client",
        absl::StrCat("the app is not allowed the ", grant_type, " grant type"));
    return;
  }

  json answer;
  absl::MutexLock lock(&mu_);
  const int lifetime = token_lifetime_seconds_;
  // Re-read the app: it may have changed since AuthenticateClient.
  auto app_it = apps_.find(app->app.client_id);
  if (app_it == apps_.end()) return;
  const AppState& current = app_it->second;
  const absl::Time now = Now();
  std::string user_id, grant_id, predecessor;
  std::vector<std::string> scopes;
  bool with_refresh = false;
  if (grant_type == "authorization_code") {
    if (!RedeemCode(*params, current, now, res, &user_id, &scopes, &grant_id,
                    &with_refresh)) {
      return;
    }
  } else if (grant_type == "refresh_token") {
    if (!RedeemRefreshToken(*params, current, now, res, &user_id, &scopes,
                            &grant_id, &predecessor)) {
      return;
    }
    with_refresh = current.rotate_refresh_tokens;
  }
  answer["access_token"] =
      IssueToken(TokenKind::kAccess, current, user_id, scopes,
                 absl::Seconds(lifetime), grant_id);
  answer["token_type"] = "bearer";
  answer["expires_in"] = lifetime;
  if (with_refresh) {
    const std::string refresh =
        IssueToken(TokenKind::kRefresh, current, user_id, scopes,
                   absl::InfiniteDuration(), grant_id);
    if (!predecessor.empty()) {
      // One live chain per grant: an unused successor of the token just
      // presented is replaced by this one.
      TokenRecord& old = tokens_[predecessor];
      if (!old.successor.empty()) {
        auto unused = tokens_.find(old.successor);
        if (unused != tokens_.end()) unused->second.revoked = true;
      }
      old.successor = refresh;
    }
    answer["refresh_token"] = refresh;
  }
  SetJson(res, 200, answer);
}

void Emulator::Impl::HandleRevoke(const httplib::Request& req,
                                  httplib::Response& res) {
  absl::StatusOr<Params> params = internal::ParseBodyParams(req);
  if (!params.ok()) {
    SetOAuthError(res, 400, "invalid_request", params.status().message());
    return;
  }
  std::optional<AppState> app = AuthenticateClient(req, *params, res);
  if (!app.has_value()) return;
  const std::string token = ParamOr(*params, "token");
  if (token.empty()) {
    SetOAuthError(res, 400, "invalid_request", "token is required");
    return;
  }
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(token);
  // RFC 7009: unknown tokens and other clients' tokens are answered 200 too.
  if (it != tokens_.end() && it->second.client_id == app->app.client_id) {
    it->second.revoked = true;
    // RFC 7009 2.1: revoking a refresh token ends its grant, with every
    // access token issued from it.
    if (it->second.kind == TokenKind::kRefresh) {
      auto grant = grants_.find(it->second.grant_id);
      if (grant != grants_.end()) grant->second.revoked = true;
    }
  }
  res.status = 200;
}

std::optional<Emulator::Impl::Grant> Emulator::Impl::Authenticate(
    const httplib::Request& req, httplib::Response& res) {
  auto unauthorized = [&res](absl::string_view message) {
    res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    SetMessage(res, 401, message);
    return std::nullopt;
  };
  const std::optional<std::string> token = internal::BearerToken(req);
  if (!token.has_value()) {
    return unauthorized(
        "Unauthorized: send Authorization: Bearer <access token>");
  }
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(*token);
  if (it == tokens_.end() || it->second.kind != TokenKind::kAccess) {
    return unauthorized("Unauthorized: unknown access token");
  }
  const TokenRecord& record = it->second;
  if (record.revoked || GrantRevoked(record.grant_id)) {
    return unauthorized("Unauthorized: the access token was revoked");
  }
  if (record.expires <= Now()) {
    return unauthorized("Unauthorized: the access token expired");
  }
  auto app = apps_.find(record.client_id);
  if (app == apps_.end() || app->second.generation != record.generation) {
    return unauthorized(
        "Unauthorized: the access token was invalidated (the app's scopes "
        "changed or the app was revoked); get a new token");
  }
  Grant grant;
  grant.client_id = record.client_id;
  grant.user_id = record.user_id;
  grant.app_name = app->second.app.name;
  grant.app_org = app->second.app.org_id;
  for (const ScopeGrant& scope : app->second.app.scopes) {
    // User tokens hold only the assigned scopes that were requested.
    if (record.user_id.empty() ||
        std::find(record.scopes.begin(), record.scopes.end(), scope.scope) !=
            record.scopes.end()) {
      grant.scopes.push_back(scope);
    }
  }
  return grant;
}

void Emulator::Impl::HandleUserinfo(const httplib::Request& req,
                                    httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;
  if (grant->user_id.empty()) {
    SetMessage(res, 403,
               "Forbidden: userinfo needs a user token (authorization_code "
               "grant); this token was issued to the app itself");
    return;
  }
  for (const UserFixture& user : fixture_.users) {
    if (user.id != grant->user_id) continue;
    SetJson(res, 200,
            json{{"sub", user.id},
                 {"username", user.username},
                 {"preferred_username", user.username},
                 {"organization_id", user.org_id}});
    return;
  }
  SetMessage(res, 404, "the token's user is not in the fixture");
}

std::string Emulator::Impl::Issuer() const {
  absl::MutexLock lock(&mu_);
  return issuer_;
}

void Emulator::Impl::HandleDiscovery(const httplib::Request& req,
                                     httplib::Response& res) {
  std::string base = base_url();
  const std::string host = req.get_header_value("Host");
  if (!host.empty()) base = "http://" + host;
  const std::string oauth = base + "/accounts/api/v2/oauth2";
  // The endpoints as the client reached the emulator; the issuer is one
  // fixed name (the authorization response's `iss` must equal it).
  SetJson(res, 200,
          json{{"issuer", Issuer()},
               {"authorization_endpoint", oauth + "/authorize"},
               {"token_endpoint", oauth + "/token"},
               {"userinfo_endpoint", oauth + "/userinfo"},
               {"revocation_endpoint", oauth + "/revoke"},
               {"jwks_uri", oauth + "/certs"},
               {"response_types_supported", {"code"}},
               {"grant_types_supported",
                {"authorization_code", "refresh_token", "client_credentials"}},
               {"subject_types_supported", {"public"}},
               {"id_token_signing_alg_values_supported", {"RS256"}},
               {"scopes_supported",
                {"openid", "profile", "email", "offline_access"}},
               {"token_endpoint_auth_methods_supported",
                {"client_secret_post", "client_secret_basic"}},
               {"code_challenge_methods_supported", {"S256"}},
               {"authorization_response_iss_parameter_supported", true}});
}

}  // namespace tokenbroker::emulator
