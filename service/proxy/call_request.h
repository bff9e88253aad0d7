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
// only the app's base URL:
// - method: GET, HEAD, POST, PUT, PATCH or DELETE (upper case);
// - path: origin form ("/a/b?q"), no scheme, host, port or userinfo (no
//   leading "//", no '@' before the query, no '\'), no fragment, only
//   printable ASCII; after percent-decoding (repeatedly, so double encoding
//   is seen through) no "." or ".." segment, no encoded '/' or '\', no NUL,
//   CR or LF anywhere;
// - headers: valid names; no CR, LF or NUL in values; the caller may not
//   set Authorization, Host, Cookie, Proxy-*, Content-Length or hop-by-hop
//   headers (Connection, Keep-Alive, Transfer-Encoding, TE, Trailer,
//   Upgrade): such a request is rejected, never silently changed;
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
