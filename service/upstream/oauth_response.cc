#include "service/upstream/oauth_response.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "service/common/retry_info.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

constexpr absl::Duration kMaxRetryDelay = absl::Hours(1);

// Parses without exceptions: a body is never trusted to be JSON.
nlohmann::json ParseJson(const std::string& body) {
  return nlohmann::json::parse(body, /*cb=*/nullptr,
                               /*allow_exceptions=*/false);
}

std::string JsonString(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// What to do about an OAuth error code that will not go away by retrying.
absl::string_view AdviceFor(absl::string_view error, int status) {
  if (error == "invalid_client" || (error.empty() && status == 401)) {
    return "check the client id and secret, and that the connected app still "
           "exists";
  }
  if (error == "unauthorized_client") {
    return "the app may not use this grant type; check its grant types in "
           "Anypoint";
  }
  if (error == "invalid_grant") {
    return "the authorization code or refresh token is invalid, expired or "
           "revoked; authorize the app again";
  }
  if (error == "invalid_scope") {
    return "check the app's scopes in the broker config and in Anypoint";
  }
  if (error == "unsupported_grant_type") {
    return "the server does not support this grant type; check the app's "
           "grant_type";
  }
  if (status == 404 || status == 405 || (status >= 300 && status < 400)) {
    return "check the app's base_url and endpoint paths";
  }
  return "check the app's configuration (base_url, endpoint paths, "
         "client_auth)";
}

bool IsRetryableStatus(int status) {
  return status == 408 || status == 429 || status >= 500;
}

// Appends `text` form-encoded. `out` must have room for 3 * text.size()
// more bytes: the callers reserve it, so that encoding a client secret never
// reallocates and leaves a partial copy behind in freed memory.
void AppendFormEncoded(absl::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out->push_back(c);
    } else if (c == ' ') {
      out->push_back('+');
    } else {
      out->push_back('%');
      out->push_back(kHex[byte >> 4]);
      out->push_back(kHex[byte & 0xF]);
    }
  }
}

}  // namespace

std::string SanitizeForMessage(absl::string_view text, size_t max_length) {
  std::string out;
  out.reserve(std::min(text.size(), max_length) + 3);
  for (char c : text) {
    if (out.size() == max_length) {
      out += "...";
      break;
    }
    out += absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?';
  }
  return out;
}

std::string FormEncodeComponent(absl::string_view text) {
  std::string out;
  out.reserve(3 * text.size());
  AppendFormEncoded(text, &out);
  return out;
}

std::string FormEncode(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t size = 0;
  for (const auto& [name, value] : fields) {
    size += 3 * (name.size() + value.size()) + 2;
  }
  std::string out;
  out.reserve(size);
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out.push_back('&');
    AppendFormEncoded(name, &out);
    out.push_back('=');
    AppendFormEncoded(value, &out);
  }
  return out;
}

std::optional<absl::Duration> ParseRetryDelay(const HttpHeaders& headers,
                                              absl::Time now) {
  auto bound = [](absl::Duration d) {
    return std::clamp(d, absl::ZeroDuration(), kMaxRetryDelay);
  };
  if (const std::string* value = FindHeader(headers, "Retry-After")) {
    absl::string_view text = absl::StripAsciiWhitespace(*value);
    int64_t seconds = 0;
    if (absl::SimpleAtoi(text, &seconds)) return bound(absl::Seconds(seconds));
    absl::Time when;
    std::string error;
    if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", text, absl::UTCTimeZone(),
                        &when, &error)) {
      return bound(when - now);
    }
  }
  if (const std::string* value = FindHeader(headers, "X-RateLimit-Reset")) {
    double number = 0;
    if (absl::SimpleAtod(absl::StripAsciiWhitespace(*value), &number) &&
        number == number) {
      // Anypoint documents epoch seconds; some servers send a delta.
      if (number < 1e9) return bound(absl::Seconds(number));
      return bound(
          absl::FromUnixSeconds(static_cast<int64_t>(std::min(number, 1e15))) -
          now);
    }
  }
  return std::nullopt;
}

absl::Status OAuthErrorStatus(const HttpResponse& response, absl::Time now,
                              absl::string_view app,
                              absl::string_view endpoint) {
  const int status = response.status;
  if (status >= 200 && status < 300) return absl::OkStatus();
  // Never assume JSON: Anypoint answers some 401s in text/plain, and proxies
  // answer with HTML.
  const nlohmann::json json = ParseJson(response.body);
  const std::string error = SanitizeForMessage(JsonString(json, "error"), 64);
  const std::string description =
      SanitizeForMessage(JsonString(json, "error_description"), 200);

  std::string message = absl::StrCat("app \"", app, "\": ", endpoint,
                                     " endpoint answered HTTP ", status);
  if (!error.empty()) absl::StrAppend(&message, " ", error);
  if (!description.empty()) absl::StrAppend(&message, " (", description, ")");

  if (IsRetryableStatus(status)) {
    absl::StrAppend(&message,
                    status == 429 || status == 503
                        ? ": rate limited or overloaded; will retry later"
                        : ": server error; will retry later");
    absl::Status result = absl::UnavailableError(message);
    if (std::optional<absl::Duration> delay =
            ParseRetryDelay(response.headers, now)) {
      SetRetryAfter(result, *delay);
    }
    return result;
  }
  absl::StrAppend(&message, ": ", AdviceFor(error, status));
  return absl::FailedPreconditionError(message);
}

absl::StatusOr<Token> ParseTokenResponse(const HttpResponse& response,
                                         absl::Time now,
                                         const TokenParseOptions& options) {
  TB_ASSIGN_OR_RETURN(UserTokenResponse parsed,
                      ParseUserTokenResponse(response, now, options));
  return std::move(parsed.token);
}

UserTokenResponse::UserTokenResponse(UserTokenResponse&& other) noexcept
    : token(std::move(other.token)),
      refresh_token(std::move(other.refresh_token)),
      scope_present(other.scope_present) {}

UserTokenResponse::~UserTokenResponse() {
  OPENSSL_cleanse(refresh_token.data(), refresh_token.size());
}

std::string OAuthErrorCode(const HttpResponse& response) {
  const nlohmann::json json = ParseJson(response.body);
  if (json.is_discarded() || !json.is_object()) return "";
  return SanitizeForMessage(JsonString(json, "error"), 64);
}

absl::StatusOr<UserTokenResponse> ParseUserTokenResponse(
    const HttpResponse& response, absl::Time now,
    const TokenParseOptions& options) {
  if (response.status < 200 || response.status >= 300) {
    return OAuthErrorStatus(response, now, options.app, "token");
  }
  const std::string prefix =
      absl::StrCat("app \"", options.app, "\": malformed token response (HTTP ",
                   response.status, "): ");
  const nlohmann::json json = ParseJson(response.body);
  if (json.is_discarded()) {
    return absl::UnavailableError(absl::StrCat(prefix, "not JSON"));
  }
  if (!json.is_object()) {
    return absl::UnavailableError(absl::StrCat(prefix, "not a JSON object"));
  }
  UserTokenResponse parsed;
  Token& token = parsed.token;
  token.access_token = JsonString(json, "access_token");
  if (token.access_token.empty()) {
    return absl::UnavailableError(
        absl::StrCat(prefix, "no access_token string"));
  }
  if (auto it = json.find("token_type"); it != json.end()) {
    const std::string type = it->is_string() ? it->get<std::string>() : "";
    if (!absl::EqualsIgnoreCase(type, "bearer")) {
      return absl::FailedPreconditionError(
          absl::StrCat("app \"", options.app, "\": unsupported token_type \"",
                       SanitizeForMessage(type, 32),
                       "\": the broker handles only Bearer tokens"));
    }
  }

  // A value that is not a number says no more than a missing one, so the
  // default applies (the token is still good, and a 401 will tell when it is
  // not). A number is the server's word: too short a lifetime is refused
  // rather than cached as already expired and refetched at once, forever.
  absl::Duration lifetime = options.default_lifetime;
  if (auto it = json.find("expires_in"); it != json.end()) {
    double seconds = 0;
    bool numeric = false;
    if (it->is_number()) {
      seconds = it->get<double>();
      numeric = true;
    } else if (it->is_string()) {
      numeric = absl::SimpleAtod(
          absl::StripAsciiWhitespace(it->get<std::string>()), &seconds);
    }
    if (numeric && !std::isnan(seconds)) {
      if (seconds < absl::ToDoubleSeconds(options.min_lifetime)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "app \"", options.app,
            "\": the token endpoint issued a token "
            "that expires in ",
            seconds,
            " s (expires_in), less than the "
            "broker's minimum of ",
            absl::FormatDuration(options.min_lifetime),
            ": it would expire before callers could use it; raise the access "
            "token lifetime of the app at the authorization server, or lower "
            "cache.min_lifetime"));
      }
      lifetime = seconds >= absl::ToDoubleSeconds(options.max_lifetime)
                     ? options.max_lifetime
                     : absl::Seconds(seconds);
    }
  }
  lifetime = std::min(lifetime, options.max_lifetime);

  for (absl::string_view scope :
       absl::StrSplit(JsonString(json, "scope"), ' ', absl::SkipWhitespace())) {
    token.scopes.emplace_back(scope);
  }
  std::sort(token.scopes.begin(), token.scopes.end());
  token.scopes.erase(std::unique(token.scopes.begin(), token.scopes.end()),
                     token.scopes.end());

  token.token_type = "Bearer";
  token.issued_at = now;
  token.expires_at = now + lifetime;
  parsed.scope_present = json.contains("scope");
  parsed.refresh_token = JsonString(json, "refresh_token");
  return parsed;
}

}  // namespace tokenbroker
