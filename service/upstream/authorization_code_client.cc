#include "service/upstream/authorization_code_client.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "service/common/path_segments.h"
#include "service/common/process_hardening.h"
#include "service/upstream/client_auth.h"

namespace tokenbroker {
namespace {

constexpr size_t kMaxIdentityBytes = 256;
// Userinfo answers are small; anything larger is not one.
constexpr size_t kMaxUserinfoBytes = 64 << 10;

// Whether `text` is valid UTF-8 without ASCII control characters (what a
// grant store keeps and a page shows).
bool IsPrintableUtf8(absl::string_view text) {
  for (char c : text) {
    if ((c >= 0 && c < 0x20) || c == 0x7f) return false;
  }
  return IsValidUtf8(text);
}

// RFC 6749 A.17: a refresh token is VSCHAR (printable ASCII).
bool IsVisibleAscii(absl::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The answer's status with what is safe to say of a non-2xx answer: the
// HTTP status and OAuth error code. error_description is dropped (a server
// may quote the code or token it refused).
absl::Status ServerError(const HttpResponse& response, absl::Time now,
                         absl::string_view app, absl::string_view endpoint) {
  HttpResponse stripped;
  stripped.status = response.status;
  stripped.headers = response.headers;
  if (std::string error = OAuthErrorCode(response); !error.empty()) {
    stripped.body = nlohmann::json{{"error", error}}.dump();
  }
  return OAuthErrorStatus(stripped, now, app, endpoint);
}

std::string JsonString(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

absl::StatusOr<UserInfo> ParseUserinfo(const HttpResponse& response,
                                       absl::string_view app) {
  const std::string prefix =
      absl::StrCat("app \"", app, "\": malformed userinfo response (HTTP ",
                   response.status, "): ");
  nlohmann::json json = nlohmann::json::parse(response.body, nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::UnavailableError(
        absl::StrCat(prefix,
                     "not a JSON object (a signed JWT answer is not "
                     "supported)"));
  }
  UserInfo info;
  // OIDC Core 5.3.2: `sub` is a string. Some servers send a number.
  if (auto it = json.find("sub"); it != json.end() && it->is_number_integer()) {
    info.sub = it->dump();
  } else {
    info.sub = JsonString(json, "sub");
  }
  if (info.sub.empty()) {
    return absl::UnavailableError(absl::StrCat(prefix, "no sub"));
  }
  if (info.sub.size() > kMaxIdentityBytes || !IsPrintableUtf8(info.sub)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "app \"", app,
        "\": userinfo answered a user id (sub) the broker cannot store "
        "(longer than 256 bytes, control characters or not UTF-8)"));
  }
  for (const char* claim : {"preferred_username", "username", "email"}) {
    std::string value = JsonString(json, claim);
    if (!value.empty() && value.size() <= kMaxIdentityBytes &&
        IsPrintableUtf8(value)) {
      info.username = std::move(value);
      break;
    }
  }
  if (info.username.empty()) info.username = info.sub;
  return info;
}

}  // namespace

AuthorizationCodeClient::AuthorizationCodeClient(
    HttpClient& http, const Clock& clock,
    AuthorizationCodeClientOptions options)
    : http_(http), clock_(clock), options_(std::move(options)) {}

void AuthorizationCodeClient::ExchangeCode(const AppConfig& app,
                                           std::string code,
                                           std::string redirect_uri,
                                           std::string code_verifier,
                                           ExchangeCallback done) {
  OAuthFormFields fields;
  fields.reserve(6);
  fields.emplace_back("grant_type", "authorization_code");
  fields.emplace_back("code", std::move(code));
  fields.emplace_back("redirect_uri", std::move(redirect_uri));
  if (!code_verifier.empty()) {
    fields.emplace_back("code_verifier", std::move(code_verifier));
  }
  absl::StatusOr<HttpRequest> request =
      BuildClientAuthFormPost(app, app.token_path, std::move(fields),
                              options_.request_timeout, options_.user_agent);
  if (!request.ok()) {
    done(request.status());
    return;
  }
  TokenParseOptions parse;
  parse.app = app.name;
  parse.default_lifetime = options_.default_lifetime;
  parse.min_lifetime = options_.min_lifetime;
  parse.max_lifetime = options_.max_lifetime;
  http_.Send(
      *std::move(request),
      [clock = &clock_, parse = std::move(parse),
       done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
        if (!response.ok()) {
          done(UpstreamTransportError(parse.app, "token", response.status()));
          return;
        }
        const absl::Time now = clock->Now();
        absl::StatusOr<UserTokenResponse> parsed =
            response->status >= 200 && response->status < 300
                ? ParseUserTokenResponse(*response, now, parse)
                : absl::StatusOr<UserTokenResponse>(
                      ServerError(*response, now, parse.app, "token"));
        ClearSecret(&response->body);
        if (parsed.ok() && !IsVisibleAscii(parsed->refresh_token)) {
          done(absl::FailedPreconditionError(absl::StrCat(
              "app \"", parse.app,
              "\": the token endpoint issued a refresh token that is not "
              "printable ASCII (RFC 6749 A.17); the broker cannot store it")));
          return;
        }
        done(std::move(parsed));
      });
}

void AuthorizationCodeClient::FetchUserinfo(const AppConfig& app,
                                            std::string access_token,
                                            UserInfoCallback done) {
  HttpRequest request;
  request.method = "GET";
  request.url = absl::StrCat(app.base_url, app.userinfo_path);
  request.timeout = options_.request_timeout;
  request.max_response_bytes = kMaxUserinfoBytes;
  std::string authorization;
  authorization.reserve(7 + access_token.size());
  authorization.append("Bearer ").append(access_token);
  ClearSecret(&access_token);
  request.headers = {{"Accept", "application/json"},
                     {"User-Agent", options_.user_agent}};
  request.headers.emplace_back("Authorization", std::move(authorization));
  http_.Send(
      std::move(request),
      [clock = &clock_, app_name = app.name,
       done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
        if (!response.ok()) {
          done(UpstreamTransportError(app_name, "userinfo", response.status()));
          return;
        }
        if (response->status < 200 || response->status >= 300) {
          done(ServerError(*response, clock->Now(), app_name, "userinfo"));
          return;
        }
        done(ParseUserinfo(*response, app_name));
      });
}

void AuthorizationCodeClient::RevokeRefreshToken(const AppConfig& app,
                                                 std::string refresh_token,
                                                 RevokeCallback done) {
  OAuthFormFields fields;
  fields.reserve(4);
  fields.emplace_back("token", std::move(refresh_token));
  fields.emplace_back("token_type_hint", "refresh_token");
  absl::StatusOr<HttpRequest> request =
      BuildClientAuthFormPost(app, app.revoke_path, std::move(fields),
                              options_.request_timeout, options_.user_agent);
  if (!request.ok()) {
    done(request.status());
    return;
  }
  http_.Send(
      *std::move(request),
      [clock = &clock_, app_name = app.name,
       done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
        if (!response.ok()) {
          done(UpstreamTransportError(app_name, "revoke", response.status()));
          return;
        }
        if (response->status >= 200 && response->status < 300) {
          done(absl::OkStatus());
          return;
        }
        done(ServerError(*response, clock->Now(), app_name, "revoke"));
      });
}

}  // namespace tokenbroker
