#include "service/http/oauth_request.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/common/path_segments.h"

namespace tokenbroker {
namespace internal {
namespace {

constexpr absl::string_view kOfflineAccess = "offline_access";

}  // namespace

absl::StatusOr<QueryParams> ParseQuery(absl::string_view query) {
  if (query.size() > kMaxQueryBytes) {
    return absl::InvalidArgumentError("a query string over 4 KiB");
  }
  QueryParams params;
  for (absl::string_view pair : absl::StrSplit(query, '&')) {
    if (pair.empty()) continue;
    std::pair<std::string, std::string> raw =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    std::string name;
    std::string value;
    std::replace(raw.first.begin(), raw.first.end(), '+', ' ');
    std::replace(raw.second.begin(), raw.second.end(), '+', ' ');
    if (!PercentDecodeOnce(raw.first, &name) ||
        !PercentDecodeOnce(raw.second, &value)) {
      return absl::InvalidArgumentError("a malformed %-escape");
    }
    if (!params.emplace(std::move(name), std::move(value)).second) {
      return absl::InvalidArgumentError("a repeated parameter");
    }
  }
  return params;
}

const std::string* FindParam(const QueryParams& params,
                             absl::string_view name) {
  auto it = params.find(std::string(name));
  return it == params.end() ? nullptr : &it->second;
}

RequestCookies ParseCookies(const std::vector<std::string>& headers) {
  RequestCookies cookies;
  for (const std::string& header : headers) {
    for (absl::string_view part : absl::StrSplit(header, ';')) {
      part = absl::StripAsciiWhitespace(part);
      size_t equals = part.find('=');
      if (equals == absl::string_view::npos || cookies.size() >= kMaxCookies) {
        continue;
      }
      cookies.emplace_back(
          std::string(absl::StripAsciiWhitespace(part.substr(0, equals))),
          std::string(absl::StripAsciiWhitespace(part.substr(equals + 1))));
    }
  }
  return cookies;
}

absl::string_view BindingCookieName(absl::string_view public_base) {
  return absl::StartsWithIgnoreCase(public_base, "https://") ? kSecureCookieName
                                                             : kPlainCookieName;
}

std::string BindingCookieHeader(absl::string_view name, absl::string_view value,
                                absl::Duration max_age) {
  const bool secure = name == kSecureCookieName;
  return absl::StrCat(name, "=", value, "; Path=", secure ? "/" : "/oauth",
                      "; Max-Age=", absl::ToInt64Seconds(max_age), "; HttpOnly",
                      secure ? "; Secure" : "", "; SameSite=Lax");
}

std::string SanitizeErrorCode(absl::string_view error) {
  if (error.empty() || error.size() > 64) return "(unrecognized error)";
  for (char c : error) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-' && c != '.') {
      return "(unrecognized error)";
    }
  }
  return std::string(error);
}

bool IsPlausibleCode(absl::string_view code) {
  if (code.empty() || code.size() > 2048) return false;
  for (char c : code) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::vector<std::string> RequestedScopes(const AppConfig& app) {
  std::vector<std::string> scopes = app.scopes;
  if (std::find(scopes.begin(), scopes.end(), kOfflineAccess) == scopes.end()) {
    scopes.emplace_back(kOfflineAccess);
  }
  return scopes;
}

}  // namespace internal
}  // namespace tokenbroker
