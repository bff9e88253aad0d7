#include "service/proxy/call_request.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/common/path_segments.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

bool IsTchar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string::npos;
}

absl::Status PathError(absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("path: ", why,
                   "; send an origin-form path such as "
                   "/accounts/api/me or /exchange/api/v2/assets/search?q=x"));
}

absl::Status CheckQuery(absl::string_view query) {
  std::string current(query);
  std::string decoded;
  for (int round = 0; round < kMaxPercentDecodeLevels; ++round) {
    for (char c : current) {
      if (c == '\0' || c == '\r' || c == '\n') {
        return PathError("NUL, CR and LF are not allowed in the query");
      }
    }
    if (current.find('%') == std::string::npos) return absl::OkStatus();
    if (!PercentDecodeOnce(current, &decoded)) {
      return PathError("'%' in the query must be followed by two hex digits");
    }
    current.swap(decoded);
  }
  return PathError("too many levels of percent-encoding in the query");
}

bool IsForbiddenRequestHeader(absl::string_view name) {
  static const char* const kForbidden[] = {"authorization",
                                           "host",
                                           "cookie",
                                           "content-length",
                                           "connection",
                                           "keep-alive",
                                           "transfer-encoding",
                                           "te",
                                           "trailer",
                                           "upgrade"};
  for (const char* forbidden : kForbidden) {
    if (absl::EqualsIgnoreCase(name, forbidden)) return true;
  }
  return absl::StartsWithIgnoreCase(name, "proxy-");
}

// Headers that reverse proxies, gateways and web frameworks honour to change
// the method, the path, the host, the scheme or the client's address of a
// request. Forwarded, they would let the caller change the request after the
// broker's route check (X-HTTP-Method-Override: DELETE on a granted GET,
// X-Original-URL: /accounts/api/me on a granted path).
bool IsOverrideHeader(absl::string_view name) {
  static const char* const kPrefixes[] = {
      "x-forwarded-",   // -For, -Host, -Proto, -Prefix, -Port, -Uri, ...
      "x-original-",    // -URL, -URI, -Method, -Host, -Path (IIS, nginx).
      "x-http-method",  // X-HTTP-Method and X-HTTP-Method-Override.
      "x-envoy-",       // Envoy's control headers (original path, ...).
  };
  for (const char* prefix : kPrefixes) {
    if (absl::StartsWithIgnoreCase(name, prefix)) return true;
  }
  static const char* const kExact[] = {
      // Method overrides.
      "x-method-override",
      // Path overrides (IIS URL Rewrite, Symfony, Zend, Spring).
      "x-rewrite-url",
      // Host and scheme.
      "forwarded",
      "x-host",
      "x-url-scheme",
      "x-scheme",
      "front-end-https",
      // The client's address (trusted by IP allow lists and rate limits).
      "x-real-ip",
      "x-client-ip",
      "client-ip",
      "true-client-ip",
      "x-cluster-client-ip",
      "cf-connecting-ip",
      "fastly-client-ip",
      "x-originating-ip",
      "x-remote-ip",
      "x-remote-addr",
      "x-proxyuser-ip",
  };
  for (const char* exact : kExact) {
    if (absl::EqualsIgnoreCase(name, exact)) return true;
  }
  return false;
}

}  // namespace

bool IsIdempotentMethod(absl::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" ||
         method == "DELETE";
}

absl::Status ValidateCallRequest(absl::string_view method,
                                 absl::string_view path,
                                 const HttpHeaders& headers, size_t body_size,
                                 const CallLimits& limits) {
  static const char* const kMethods[] = {"GET", "HEAD",  "POST",
                                         "PUT", "PATCH", "DELETE"};
  if (std::none_of(std::begin(kMethods), std::end(kMethods),
                   [&](const char* m) { return method == m; })) {
    return absl::InvalidArgumentError(
        "method: must be GET, HEAD, POST, PUT, PATCH or DELETE (upper case)");
  }

  if (path.empty() || path[0] != '/') {
    return PathError("must start with '/' (no scheme or host)");
  }
  if (path.size() > limits.max_path_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("path: longer than ", limits.max_path_bytes, " bytes"));
  }
  // The query too: printable ASCII, no '\\', no fragment.
  for (char c : path) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return PathError(
          "only printable ASCII without spaces; percent-encode the rest");
    }
    if (c == '\\') return PathError("'\\' is not allowed");
    if (c == '#') return PathError("a fragment ('#') is not allowed");
  }
  // The path's segments as the route matcher (RouteMatches) sees them.
  if (absl::StatusOr<std::vector<std::string>> segments =
          SplitPathSegments(path);
      !segments.ok()) {
    return PathError(segments.status().message());
  }
  absl::string_view query;
  if (size_t q = path.find('?'); q != absl::string_view::npos) {
    query = path.substr(q + 1);
  }
  TB_RETURN_IF_ERROR(CheckQuery(query));

  if (headers.size() > limits.max_headers) {
    return absl::InvalidArgumentError(
        absl::StrCat("headers: at most ", limits.max_headers, " headers"));
  }
  for (const auto& [name, value] : headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTchar)) {
      return absl::InvalidArgumentError(
          "headers: a header name is empty or has characters other than "
          "letters, digits and !#$%&'*+-.^_`|~");
    }
    if (IsForbiddenRequestHeader(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "headers: ", name,
          " may not be set by the caller (the broker sets Authorization, "
          "Host and Content-Length itself; cookies, Proxy-* and hop-by-hop "
          "headers are not forwarded)"));
    }
    if (IsOverrideHeader(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "headers: ", name,
          " may not be set by the caller: proxies and frameworks in front of "
          "Anypoint may honour it to change the method, path, host, scheme or "
          "client address after the broker checked the route"));
    }
    if (name.size() + value.size() > limits.max_header_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("headers: ", name, " is longer than ",
                       limits.max_header_bytes, " bytes"));
    }
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "headers: the value of ", name, " contains CR, LF or NUL"));
    }
  }

  if (body_size > limits.max_request_body_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("body: ", body_size, " bytes is over the limit of ",
                     limits.max_request_body_bytes, " bytes"));
  }
  return absl::OkStatus();
}

HttpHeaders FilterResponseHeaders(const HttpHeaders& headers) {
  std::vector<std::string> connection_named;
  for (const auto& [name, value] : headers) {
    if (!absl::EqualsIgnoreCase(name, "connection")) continue;
    for (absl::string_view token : absl::StrSplit(value, ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (!token.empty()) connection_named.emplace_back(token);
    }
  }
  static const char* const kDropped[] = {
      "set-cookie",      "set-cookie2",       "connection",
      "keep-alive",      "transfer-encoding", "te",
      "trailer",         "upgrade",           "proxy-authenticate",
      "proxy-connection"};
  HttpHeaders kept;
  for (const auto& header : headers) {
    // Not a structured binding: C++17 lambdas cannot capture those (clang
    // rejects it).
    const std::string& name = header.first;
    bool drop = std::any_of(std::begin(kDropped), std::end(kDropped),
                            [&](const char* d) {
                              return absl::EqualsIgnoreCase(name, d);
                            }) ||
                std::any_of(connection_named.begin(), connection_named.end(),
                            [&](const std::string& d) {
                              return absl::EqualsIgnoreCase(name, d);
                            });
    if (!drop) kept.push_back(header);
  }
  return kept;
}

}  // namespace tokenbroker
