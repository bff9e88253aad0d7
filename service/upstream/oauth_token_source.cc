#include "service/upstream/oauth_token_source.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/crash_point.h"
#include "service/common/status_macros.h"
#include "service/upstream/client_auth.h"
#include "service/upstream/oauth_response.h"

namespace tokenbroker {

OAuthTokenSource::OAuthTokenSource(HttpClient& http, const Clock& clock,
                                   OAuthTokenSourceOptions options,
                                   UserGrants* grants)
    : http_(http),
      clock_(clock),
      options_(std::move(options)),
      grants_(grants) {}

void OAuthTokenSource::SetApps(const std::vector<AppConfig>& apps) {
  std::map<std::string, std::shared_ptr<const AppConfig>> fresh;
  for (const AppConfig& app : apps) {
    fresh[app.name] = std::make_shared<const AppConfig>(app);
  }
  absl::MutexLock lock(&mu_);
  apps_.swap(fresh);
}

std::shared_ptr<const AppConfig> OAuthTokenSource::FindApp(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(name);
  return it == apps_.end() ? nullptr : it->second;
}

void OAuthTokenSource::Fetch(const TokenRequest& request, TokenCallback done) {
  std::shared_ptr<const AppConfig> app = FindApp(request.app);
  if (app == nullptr) {
    done(absl::NotFoundError(absl::StrCat("unknown app \"",
                                          SanitizeForMessage(request.app, 64),
                                          "\": check the broker config")));
    return;
  }
  switch (app->grant_type) {
    case GrantType::kClientCredentials: {
      FormFields fields = {{"grant_type", "client_credentials"}};
      if (app->send_scope && !request.scopes.empty()) {
        fields.emplace_back("scope", absl::StrJoin(request.scopes, " "));
      }
      RequestToken(*app, std::move(fields), app->scopes, std::move(done));
      return;
    }
    case GrantType::kAuthorizationCode:
      FetchForUser(std::move(app), request, std::move(done));
      return;
  }
  done(absl::InternalError("unknown grant type"));
}

void OAuthTokenSource::Revoke(const std::string& app_name,
                              const std::string& token,
                              absl::AnyInvocable<void(absl::Status)> done,
                              absl::string_view token_type_hint) {
  std::shared_ptr<const AppConfig> app = FindApp(app_name);
  if (app == nullptr) {
    done(absl::NotFoundError(absl::StrCat("unknown app \"",
                                          SanitizeForMessage(app_name, 64),
                                          "\": check the broker config")));
    return;
  }
  FormFields fields = {{"token", token}};
  if (!token_type_hint.empty()) {
    fields.emplace_back("token_type_hint", std::string(token_type_hint));
  }
  absl::StatusOr<HttpRequest> request =
      BuildFormPost(*app, app->revoke_path, std::move(fields));
  if (!request.ok()) {
    done(request.status());
    return;
  }
  http_.Send(
      *std::move(request), [this, app, done = std::move(done)](
                               absl::StatusOr<HttpResponse> response) mutable {
        if (!response.ok()) {
          done(UpstreamTransportError(app->name, "revoke", response.status()));
          return;
        }
        done(OAuthErrorStatus(*response, clock_.Now(), app->name, "revoke"));
      });
}

absl::StatusOr<HttpRequest> OAuthTokenSource::BuildFormPost(
    const AppConfig& app, const std::string& path, FormFields fields) const {
  return BuildClientAuthFormPost(app, path, std::move(fields),
                                 options_.fetch_timeout, options_.user_agent);
}

void OAuthTokenSource::RequestToken(const AppConfig& app, FormFields fields,
                                    std::vector<std::string> default_scopes,
                                    TokenCallback done) {
  absl::StatusOr<HttpRequest> request =
      BuildFormPost(app, app.token_path, std::move(fields));
  if (!request.ok()) {
    done(request.status());
    return;
  }
  http_.Send(
      *std::move(request),
      [this, app_name = app.name, parse_options = ParseOptions(app),
       default_scopes = std::move(default_scopes),
       done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
        if (!response.ok()) {
          done(UpstreamTransportError(app_name, "token", response.status()));
          return;
        }
        absl::StatusOr<Token> token =
            ParseTokenResponse(*response, clock_.Now(), parse_options);
        if (token.ok() && token->scopes.empty()) {
          token->scopes = std::move(default_scopes);
        }
        done(std::move(token));
      });
}

TokenParseOptions OAuthTokenSource::ParseOptions(const AppConfig& app) const {
  TokenParseOptions parse_options;
  parse_options.app = app.name;
  parse_options.default_lifetime = options_.default_lifetime;
  parse_options.min_lifetime = options_.min_lifetime;
  parse_options.max_lifetime = options_.max_lifetime;
  return parse_options;
}

void OAuthTokenSource::FetchForUser(std::shared_ptr<const AppConfig> app,
                                    const TokenRequest& request,
                                    TokenCallback done) {
  if (grants_ == nullptr) {
    done(absl::FailedPreconditionError(absl::StrCat(
        "app \"", app->name,
        "\" acts on behalf of users, but no grant_store is configured")));
    return;
  }
  if (request.user.empty()) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "app \"", app->name, "\" acts on behalf of users: name the user")));
    return;
  }
  absl::StatusOr<RefreshCredential> credential =
      grants_->BorrowRefreshToken(app->name, request.user);
  if (!credential.ok()) {
    done(credential.status());
    return;
  }
  // RFC 6749 6: no scope, so the token carries every scope of the grant.
  absl::StatusOr<HttpRequest> http_request =
      BuildFormPost(*app, app->token_path,
                    {{"grant_type", "refresh_token"},
                     {"refresh_token", credential->refresh_token}});
  if (!http_request.ok()) {
    done(http_request.status());
    return;
  }
  CrashPoint("rotation.before_request");
  http_.Send(
      *std::move(http_request),
      [this, app, user_id = request.user, credential = *std::move(credential),
       done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
        OnUserTokenAnswer(*app, user_id, std::move(credential),
                          std::move(response), std::move(done));
      });
}

void OAuthTokenSource::OnUserTokenAnswer(const AppConfig& app,
                                         const std::string& user_id,
                                         RefreshCredential credential,
                                         absl::StatusOr<HttpResponse> response,
                                         TokenCallback done) {
  if (!response.ok()) {
    done(UpstreamTransportError(app.name, "token", response.status()));
    return;
  }
  CrashPoint("rotation.after_response");
  absl::StatusOr<UserTokenResponse> parsed =
      ParseUserTokenResponse(*response, clock_.Now(), ParseOptions(app));
  if (!parsed.ok()) {
    if (OAuthErrorCode(*response) == "invalid_grant") {
      grants_->MarkNeedsReauthorization(
          app.name, user_id, credential.version,
          "the authorization server refused the refresh token (invalid_grant: "
          "revoked, expired, or the user's password changed)");
      done(absl::FailedPreconditionError(absl::StrCat(
          "app \"", app.name, "\": the grant of user ", credential.username,
          " was refused by the authorization server (invalid_grant: revoked, "
          "expired, or the user's password changed); connect the user again: "
          "tokenbrokerctl connect ",
          app.name)));
      return;
    }
    done(parsed.status());
    return;
  }
  Token token = std::move(parsed->token);
  if (!parsed->scope_present) token.scopes = credential.scopes;
  const bool rotated = !parsed->refresh_token.empty() &&
                       parsed->refresh_token != credential.refresh_token;
  if (!rotated) {
    done(std::move(token));
    return;
  }
  // The old refresh token may be dead already: the new one is stored before
  // anyone gets the access token, so that a crash loses no grant.
  grants_->StoreRotated(
      app.name, user_id, credential.version, std::move(parsed->refresh_token),
      [app_name = app.name, token = std::move(token),
       done = std::move(done)](absl::Status stored) mutable {
        if (stored.ok() || absl::IsAborted(stored)) {
          CrashPoint("rotation.after_store");
          done(std::move(token));
          return;
        }
        done(absl::UnavailableError(absl::StrCat(
            "app \"", app_name,
            "\": the rotated refresh token could not be stored (",
            stored.message(),
            "); the new access token is withheld until the grant store "
            "works")));
      });
}

}  // namespace tokenbroker
