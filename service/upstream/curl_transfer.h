#ifndef TOKENBROKER_SERVICE_UPSTREAM_CURL_TRANSFER_H_
#define TOKENBROKER_SERVICE_UPSTREAM_CURL_TRANSFER_H_

#include <curl/curl.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/upstream/curl_wrappers.h"
#include "service/upstream/http_client.h"

// One transfer of CurlHttpClient: its state, how its easy handle is set up,
// libcurl's callbacks for it and how its outcome reads. The client's event
// loop (curl_http_client.cc) owns the transfers; everything here runs on
// that loop thread.

namespace tokenbroker {
namespace internal {

// One request in flight. Owns its libcurl handles: whatever ends the
// transfer, destroying it frees them (CurlHttpClient may first take `easy`
// back for reuse).
struct CurlTransfer {
  HttpRequestId id = kNoHttpRequestId;
  // Its body is libcurl's CURLOPT_POSTFIELDS (not copied): it lives as long
  // as the transfer.
  HttpRequest request;
  HttpCallback done;
  std::string host;  // "host[:port]" for messages (UrlHostForMessages).
  HttpResponse response;
  size_t body_bytes = 0;           // Received so far (streamed or not).
  bool headers_delivered = false;  // OnHeaders() called (streams only).
  bool too_large = false;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  // Last, so destroyed first: the easy handle points at the header list and
  // the buffers above.
  CurlSlistPtr headers;
  CurlEasyPtr easy;
};

// Checks the URL and returns "host[:port]" for error messages: never the
// userinfo, path or query, which may carry credentials.
// Errors: INVALID_ARGUMENT (malformed, or not http/https),
// RESOURCE_EXHAUSTED (out of memory).
absl::StatusOr<std::string> UrlHostForMessages(const std::string& url);

// Sets every option of `transfer.easy` (a fresh or reset handle) for
// `transfer.request`, with the client's policy (see CurlHttpClient). Points
// libcurl's callbacks and CURLOPT_PRIVATE at `transfer`, which must not move
// while the handle is in use. Errors: RESOURCE_EXHAUSTED if the header list
// cannot be allocated.
absl::Status ConfigureTransfer(CurlTransfer& transfer,
                               const std::string& ca_file,
                               absl::Duration connect_timeout);

// The transfer whose easy handle is `easy` (its CURLOPT_PRIVATE), or nullptr.
CurlTransfer* TransferOf(CURL* easy);

// The outcome of a transfer libcurl finished with `code`: the response (for
// a stream: its status and headers delivered, if they were not yet) or the
// error (HttpClient's error contract).
absl::StatusOr<HttpResponse> TransferResult(CurlTransfer& transfer,
                                            CURLcode code);

}  // namespace internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_CURL_TRANSFER_H_
