#include "service/config/value_checks.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/config/config.h"

namespace tokenbroker {
namespace config_internal {
namespace {

bool IsVisibleOrNonAscii(unsigned char c) {
  return !absl::ascii_isspace(c) && !absl::ascii_iscntrl(c);
}

bool IsLowerOrDigit(unsigned char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c);
}

bool IsValidPort(absl::string_view port) {
  if (port.empty() || port.size() > 5 ||
      !AllCharsIn(port, absl::ascii_isdigit)) {
    return false;
  }
  int value = 0;
  return absl::SimpleAtoi(port, &value) && value >= 0 && value <= 65535;
}

bool IsValidHostName(absl::string_view host) {
  return !host.empty() && host.size() <= 253 &&
         AllCharsIn(host, absl::ascii_isalnum, ".-_");
}

bool IsValidIpv6Literal(absl::string_view host) {
  return !host.empty() && AllCharsIn(host, absl::ascii_isxdigit, ":.") &&
         absl::StrContains(host, ':');
}

}  // namespace

bool AllCharsIn(absl::string_view text, bool (*in_class)(unsigned char),
                absl::string_view extra) {
  return std::all_of(text.begin(), text.end(), [&](char c) {
    return in_class(static_cast<unsigned char>(c)) ||
           extra.find(c) != absl::string_view::npos;
  });
}

bool HasWhitespaceOrControl(absl::string_view text) {
  return !AllCharsIn(text, IsVisibleOrNonAscii);
}

bool IsValidName(absl::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         AllCharsIn(name, absl::ascii_isalnum, "._-");
}

bool IsValidEnvName(absl::string_view name) {
  return !name.empty() &&
         !absl::ascii_isdigit(static_cast<unsigned char>(name[0])) &&
         AllCharsIn(name, absl::ascii_isalnum, "_");
}

bool IsSha256Hex(absl::string_view text) {
  return text.size() == 64 && AllCharsIn(text, absl::ascii_isdigit, "abcdef");
}

std::string CheckHostPort(absl::string_view authority, bool port_required) {
  absl::string_view host;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return "an IPv6 address must be closed with ']'";
    }
    host = authority.substr(1, close - 1);
    absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return "expected ':PORT' after ']'";
      has_port = true;
      port = rest.substr(1);
    }
    if (!IsValidIpv6Literal(host)) return "the IPv6 address is not valid";
  } else {
    size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos) {
      has_port = true;
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (absl::StrContains(host, ':')) {
        return "an IPv6 address must be written in brackets, as [ADDR]:PORT";
      }
    } else {
      host = authority;
    }
    if (!IsValidHostName(host)) {
      return "the host must be a name or IPv4 address (letters, digits, '.', "
             "'-')";
    }
  }
  if (port_required && !has_port) return "a port is required, as HOST:PORT";
  if (has_port && !IsValidPort(port)) {
    return "the port must be a number from 0 to 65535";
  }
  return "";
}

std::string CheckUrlPath(absl::string_view path) {
  if (!absl::StartsWith(path, "/") || absl::StartsWith(path, "//")) {
    return absl::StrCat("'", path,
                        "' must be a path starting with a single '/', e.g. "
                        "/accounts/api/v2/oauth2/token");
  }
  if (absl::StrContains(path, '?') || absl::StrContains(path, '#')) {
    return absl::StrCat("'", path,
                        "' must be a plain path with no query or fragment");
  }
  return "";
}

std::string CheckBaseUrl(absl::string_view url, std::string* normalized) {
  constexpr absl::string_view kHint =
      "; write http(s)://HOST[:PORT], e.g. https://anypoint.mulesoft.com";
  absl::string_view rest = url;
  std::string scheme;
  size_t sep = rest.find("://");
  if (sep != absl::string_view::npos) {
    scheme = absl::AsciiStrToLower(rest.substr(0, sep));
    rest.remove_prefix(sep + 3);
  }
  if (scheme != "http" && scheme != "https") {
    return absl::StrCat("'", url, "' must start with https:// or http://",
                        kHint);
  }
  while (absl::ConsumeSuffix(&rest, "/")) {
  }
  if (rest.find_first_of("/?#") != absl::string_view::npos) {
    return absl::StrCat("'", url,
                        "' must not have a path, query or fragment (endpoint "
                        "paths are set with token_path, revoke_path and "
                        "authorize_path)");
  }
  if (absl::StrContains(rest, '@')) {
    // Do not echo it: userinfo may hold a password.
    return absl::StrCat("must not contain user information (user:password@)",
                        kHint);
  }
  std::string problem = CheckHostPort(rest, /*port_required=*/false);
  if (!problem.empty()) return absl::StrCat("'", url, "': ", problem, kHint);
  *normalized = absl::StrCat(scheme, "://", rest);
  return "";
}

bool IsLoopbackBaseUrl(absl::string_view normalized) {
  absl::string_view rest = normalized;
  size_t sep = rest.find("://");
  if (sep != absl::string_view::npos) rest.remove_prefix(sep + 3);
  absl::string_view host = rest;
  if (absl::StartsWith(host, "[")) {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  host = absl::StripSuffix(host, ".");
  return absl::EqualsIgnoreCase(host, "localhost") || host == "[::1]" ||
         absl::StartsWith(host, "127.");
}

std::string CheckPublicUrl(absl::string_view url, std::string* normalized) {
  std::string candidate;
  if (std::string problem = CheckBaseUrl(url, &candidate); !problem.empty()) {
    return problem;
  }
  if (!absl::StartsWith(candidate, "https://") &&
      !IsLoopbackBaseUrl(candidate)) {
    return absl::StrCat("'", url,
                        "' must use https:// (browsers carry the sign-in "
                        "cookie and the authorization code through it); "
                        "http:// is allowed only for a loopback host");
  }
  *normalized = std::move(candidate);
  return "";
}

std::string CheckRedirectUri(absl::string_view uri) {
  constexpr absl::string_view kCallback = "/oauth/callback";
  absl::string_view base = uri;
  if (!absl::ConsumeSuffix(&base, kCallback)) {
    return absl::StrCat("'", uri,
                        "' must be the broker's callback, "
                        "http(s)://HOST[:PORT]/oauth/callback, with no query "
                        "or fragment");
  }
  std::string normalized;
  return CheckPublicUrl(base, &normalized);
}

}  // namespace config_internal

std::string CheckSpiffeId(absl::string_view id) {
  using config_internal::AllCharsIn;
  constexpr size_t kMaxLength = 2048;
  constexpr size_t kMaxTrustDomain = 255;
  if (id.size() > kMaxLength) return "longer than 2048 bytes";
  absl::string_view rest = id;
  if (!absl::ConsumePrefix(&rest, "spiffe://")) {
    return "it must start with spiffe:// (lower case)";
  }
  size_t slash = rest.find('/');
  absl::string_view trust_domain = rest.substr(0, slash);
  if (trust_domain.empty()) return "the trust domain is empty";
  if (trust_domain.size() > kMaxTrustDomain) {
    return "the trust domain is longer than 255 characters";
  }
  if (!AllCharsIn(trust_domain, config_internal::IsLowerOrDigit, ".-_")) {
    return "the trust domain may hold only a-z, 0-9, '.', '-' and '_' (no "
           "upper case, port, user info, query or fragment)";
  }
  if (slash == absl::string_view::npos) {
    return "it has no path: a workload's id is spiffe://TRUST-DOMAIN/PATH";
  }
  absl::string_view path = rest.substr(slash + 1);
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty()) {
      return "the path has an empty segment (\"//\" or a trailing '/')";
    }
    if (segment == "." || segment == "..") {
      return "the path has a '.' or '..' segment";
    }
    if (!AllCharsIn(segment, absl::ascii_isalnum, ".-_")) {
      return "the path may hold only letters, digits, '.', '-', '_' and "
             "'/' (no percent-encoding, query or fragment)";
    }
  }
  return "";
}

}  // namespace tokenbroker
