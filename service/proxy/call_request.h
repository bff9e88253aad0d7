#ifndef TOKENBROKER_SERVICE_PROXY_CALL_REQUEST_H_
#define TOKENBROKER_SERVICE_PROXY_CALL_REQUEST_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {

struct CallLimits {
  size_t max_request_body_bytes = 8 << 20;
  size_t max_response_body_bytes = 32 << 20;
  size_t max_path_bytes = 8192;
  size_t max_headers = 100;
  size_t max_header_bytes = 16384;  // One header's name plus value.
};

// Checks a caller's request before any network I/O, so that it can reach
// only the app's base URL and the upstream sees the request the route policy
// was checked against:
// - method: GET, HEAD, POST, PUT, PATCH or DELETE (upper case);
// - path: origin form ("/a/b?q"), only printable ASCII, no '\' and no
//   fragment anywhere; the part before the query must split into segments
//   with SplitPathSegments() (service/common/path_segments.h), the same
//   function the route matcher uses: no host ("//"), no '@', and in every
//   segment, raw or decoded at any level, no ';' (path parameters such as
//   "..;"), no "." or ".." segment, no encoded '/' or '\', no control
//   character, no malformed '%' escape, only valid UTF-8 (no overlong
//   forms such as %c0%ae); the query: no NUL, CR or LF after decoding, no
//   malformed escape;
// - headers: valid names; no CR, LF or NUL in values; the caller may not
//   set Authorization, Host, Cookie, Proxy-*, Content-Length or hop-by-hop
//   headers (Connection, Keep-Alive, Transfer-Encoding, TE, Trailer,
//   Upgrade), nor headers that proxies and frameworks honour to override
//   the method, path, host, scheme or client address (X-HTTP-Method-Override,
//   X-HTTP-Method, X-Method-Override, X-Original-*, X-Rewrite-URL,
//   X-Forwarded-*, Forwarded, X-Real-IP and the like, X-Envoy-*): such a
//   request is rejected, never silently changed;
// - sizes: path, header count and size, body (RESOURCE_EXHAUSTED).
// Errors: INVALID_ARGUMENT (or RESOURCE_EXHAUSTED) naming the field and the
// reason. Messages never quote header values (they may hold credentials).
absl::Status ValidateCallRequest(absl::string_view method,
                                 absl::string_view path,
                                 const HttpHeaders& headers, size_t body_size,
                                 const CallLimits& limits);

// Whether `method` is safe to send twice (GET, HEAD, PUT, DELETE).
bool IsIdempotentMethod(absl::string_view method);

// Removes Set-Cookie, hop-by-hop headers and those the Connection header
// names from an upstream response's headers, keeping the order of the rest.
HttpHeaders FilterResponseHeaders(const HttpHeaders& headers);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_PROXY_CALL_REQUEST_H_
