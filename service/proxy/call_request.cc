#include "service/proxy/call_request.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tokenbroker {
namespace {

constexpr int kMaxDecodeRounds = 4;

bool IsTchar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string::npos;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes once. A '%' not followed by two hex digits is an
// error: servers disagree on what it means.
bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

absl::Status PathError(absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("path: ", why,
                   "; send an origin-form path such as "
                   "/accounts/api/me or /exchange/api/v2/assets/search?q=x"));
}

// Checks one path segment through every level of percent-encoding.
absl::Status CheckSegment(absl::string_view raw) {
  std::string current(raw);
  std::string decoded;
  for (int round = 0; round < kMaxDecodeRounds; ++round) {
    if (current == "." || current == "..") {
      return PathError("'.' and '..' segments are not allowed");
    }
    for (char c : current) {
      if (c == '\0' || c == '\r' || c == '\n') {
        return PathError("NUL, CR and LF are not allowed, even encoded");
      }
      if (round > 0 && (c == '/' || c == '\\')) {
        return PathError("encoded '/' or '\\' is not allowed in a segment");
      }
    }
    if (current.find('%') == std::string::npos) return absl::OkStatus();
    if (!PercentDecode(current, &decoded)) {
      return PathError("'%' must be followed by two hex digits");
    }
    current.swap(decoded);
  }
  return PathError("too many levels of percent-encoding");
}

absl::Status CheckQuery(absl::string_view query) {
  std::string current(query);
  std::string decoded;
  for (int round = 0; round < kMaxDecodeRounds; ++round) {
    for (char c : current) {
      if (c == '\0' || c == '\r' || c == '\n') {
        return PathError("NUL, CR and LF are not allowed in the query");
      }
    }
    if (current.find('%') == std::string::npos) return absl::OkStatus();
    if (!PercentDecode(current, &decoded)) {
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
  if (absl::StartsWith(path, "//")) {
    return PathError("'//' would name a host");
  }
  for (char c : path) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return PathError(
          "only printable ASCII without spaces; percent-encode the rest");
    }
    if (c == '\\') return PathError("'\\' is not allowed");
    if (c == '#') return PathError("a fragment ('#') is not allowed");
  }
  absl::string_view query;
  if (size_t q = path.find('?'); q != absl::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (absl::StrContains(path, '@')) {
    return PathError("'@' is not allowed (it reads as userinfo)");
  }
  std::vector<absl::string_view> segments = absl::StrSplit(path.substr(1), '/');
  for (absl::string_view segment : segments) {
    if (absl::Status s = CheckSegment(segment); !s.ok()) return s;
  }
  if (absl::Status s = CheckQuery(query); !s.ok()) return s;

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
