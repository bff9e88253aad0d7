#ifndef TOKENBROKER_SERVICE_UPSTREAM_HTTP_CLIENT_H_
#define TOKENBROKER_SERVICE_UPSTREAM_HTTP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tokenbroker {

// Ordered list of HTTP headers; a name may repeat.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Returns the first value of header `name` (case-insensitive), or nullptr.
const std::string* FindHeader(const HttpHeaders& headers,
                              absl::string_view name);

// Receives a response body piece by piece instead of collecting it in
// HttpResponse::body. Called on the client's I/O thread; must not block.
class HttpBodyStream {
 public:
  virtual ~HttpBodyStream() = default;

  // Called once, before any body data (also for an empty body), with the
  // final status and headers.
  virtual void OnHeaders(int status, const HttpHeaders& headers) = 0;

  // Called for each piece of the body, in order; the piece is consumed.
  // Return false to pause the transfer until HttpClient::Resume().
  virtual bool OnData(absl::string_view data) = 0;
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, PATCH or DELETE.
  std::string url;             // Absolute http:// or https:// URL.
  HttpHeaders headers;
  std::string body;
  // Bounds the whole transfer, connection set-up included.
  absl::Duration timeout = absl::Seconds(10);
  // Response bodies larger than this fail with RESOURCE_EXHAUSTED.
  size_t max_response_bytes = 32 << 20;
  // When set, the body goes to this stream and HttpResponse::body stays
  // empty. Clients that cannot stream deliver it all at once before `done`.
  std::shared_ptr<HttpBodyStream> body_stream;
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // In the order received; names as sent by the server.
  std::string body;
};

// Completion callback of an HTTP exchange. Runs exactly once, on the client's
// I/O thread (or inline if the request fails before it is started): it must
// not block.
using HttpCallback = absl::AnyInvocable<void(absl::StatusOr<HttpResponse>)>;

// Counters of an HTTP client since it was created; approximate while
// requests run. The neutral shape in which a client (CurlHttpClient::stats())
// reports to metrics/, which does not know the implementation.
struct UpstreamStats {
  uint64_t requests_started = 0;
  uint64_t requests_completed = 0;  // With any outcome.
  uint64_t connections_opened = 0;  // New connections.
  uint64_t connections_reused = 0;  // Requests that opened no connection.
};

// Identifies a request started with HttpClient::Start(); 0 is never used.
using HttpRequestId = uint64_t;
inline constexpr HttpRequestId kNoHttpRequestId = 0;

// Sends HTTP requests. An HTTP status (even 4xx/5xx) is a successful
// exchange; transport failures are errors:
//   UNAVAILABLE         connection refused or reset, TLS or DNS failure.
//   DEADLINE_EXCEEDED   `timeout` passed.
//   RESOURCE_EXHAUSTED  the response body exceeded `max_response_bytes`.
//   INVALID_ARGUMENT    the request is malformed (bad URL or method).
//   CANCELLED           the client shut down before the exchange finished.
// Error messages never contain request headers or bodies (they may hold
// secrets). Implementations are thread-safe.
class HttpClient {
 public:
  virtual ~HttpClient() = default;

  // Starts `request`; `done` receives the outcome.
  virtual void Send(HttpRequest request, HttpCallback done) = 0;

  // Like Send(), and returns an id that Cancel() accepts. The default
  // implementation (for clients that cannot cancel) calls Send() and returns
  // kNoHttpRequestId. If the request fails inline, `done` has already run
  // when Start() returns.
  virtual HttpRequestId Start(HttpRequest request, HttpCallback done);

  // Completes the request `id` with CANCELLED if it has not completed yet;
  // otherwise (or for an unknown id) does nothing. `done` may still be
  // running or about to run with another outcome when Cancel() returns,
  // since the exchange may finish concurrently. The default does nothing.
  virtual void Cancel(HttpRequestId id);

  // Resumes a transfer whose HttpBodyStream paused it. Unknown or finished
  // ids are ignored. The default does nothing.
  virtual void Resume(HttpRequestId id);

  // Sends `request` and blocks the calling thread until it completes. Never
  // call it from a callback of this client.
  absl::StatusOr<HttpResponse> SendAndWait(HttpRequest request);
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_HTTP_CLIENT_H_
