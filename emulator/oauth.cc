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

constexpr absl::Duration kRefreshTokenLifetime = absl::Hours(24 * 90);

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
                                       absl::Duration lifetime) {
  const absl::Time now = absl::Now();
  if (tokens_.size() > 100000) PurgeExpired(now);
  std::string token = internal::RandomToken(32);
  TokenRecord record;
  record.kind = kind;
  record.client_id = app.app.client_id;
  record.user_id = user_id;
  record.scopes = scopes;
  record.generation = app.generation;
  record.expires = now + lifetime;
  tokens_[token] = std::move(record);
  ++counters_.tokens_issued;
  return token;
}

void Emulator::Impl::PurgeExpired(absl::Time now) {
  absl::erase_if(tokens_, [now](const auto& entry) {
    return entry.second.expires <= now || entry.second.revoked;
  });
  absl::erase_if(codes_, [now](const auto& entry) {
    return entry.second.expires <= now || entry.second.used;
  });
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
  const absl::Time now = absl::Now();
  std::string user_id;
  std::vector<std::string> scopes;
  bool with_refresh = false;
  if (grant_type == "authorization_code") {
    const std::string code = ParamOr(*params, "code");
    const std::string redirect_uri = ParamOr(*params, "redirect_uri");
    if (code.empty() || redirect_uri.empty()) {
      SetOAuthError(res, 400, "invalid_request",
                    "code and redirect_uri are required");
      return;
    }
    auto it = codes_.find(code);
    if (it == codes_.end() || it->second.client_id != current.app.client_id) {
      SetOAuthError(res, 400, "invalid_grant", "unknown authorization code");
      return;
    }
    CodeRecord& record = it->second;
    if (record.used) {
      SetOAuthError(res, 400, "invalid_grant",
                    "the authorization code was already used");
      return;
    }
    if (record.expires <= now || record.generation != current.generation) {
      SetOAuthError(res, 400, "invalid_grant",
                    "the authorization code expired or was revoked");
      return;
    }
    if (record.redirect_uri != redirect_uri) {
      SetOAuthError(res, 400, "invalid_grant",
                    "redirect_uri differs from the one sent to authorize");
      return;
    }
    record.used = true;
    user_id = record.user_id;
    scopes = record.scopes;
    with_refresh = std::find(scopes.begin(), scopes.end(), "offline_access") !=
                   scopes.end();
  } else if (grant_type == "refresh_token") {
    const std::string refresh = ParamOr(*params, "refresh_token");
    if (refresh.empty()) {
      SetOAuthError(res, 400, "invalid_request", "refresh_token is required");
      return;
    }
    auto it = tokens_.find(refresh);
    if (it == tokens_.end() || it->second.kind != TokenKind::kRefresh ||
        it->second.client_id != current.app.client_id) {
      SetOAuthError(res, 400, "invalid_grant", "unknown refresh token");
      return;
    }
    TokenRecord& record = it->second;
    if (record.revoked || record.generation != current.generation) {
      SetOAuthError(res, 400, "invalid_grant",
                    "the refresh token was revoked or already used");
      return;
    }
    if (record.expires <= now) {
      SetOAuthError(res, 400, "invalid_grant", "the refresh token expired");
      return;
    }
    user_id = record.user_id;
    scopes = record.scopes;
    with_refresh = fixture_.rotate_refresh_tokens;
    if (with_refresh) record.revoked = true;
  }
  answer["access_token"] = IssueToken(TokenKind::kAccess, current, user_id,
                                      scopes, absl::Seconds(lifetime));
  answer["token_type"] = "bearer";
  answer["expires_in"] = lifetime;
  if (with_refresh) {
    answer["refresh_token"] = IssueToken(TokenKind::kRefresh, current, user_id,
                                         scopes, kRefreshTokenLifetime);
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
  if (record.revoked) {
    return unauthorized("Unauthorized: the access token was revoked");
  }
  if (record.expires <= absl::Now()) {
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

void Emulator::Impl::HandleDiscovery(const httplib::Request& req,
                                     httplib::Response& res) {
  std::string base = base_url();
  const std::string host = req.get_header_value("Host");
  if (!host.empty()) base = "http://" + host;
  const std::string oauth = base + "/accounts/api/v2/oauth2";
  SetJson(res, 200,
          json{{"issuer", oauth},
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
                {"client_secret_post", "client_secret_basic"}}});
}

}  // namespace tokenbroker::emulator
