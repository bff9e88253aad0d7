#include "service/upstream/curl_transfer.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tokenbroker {
namespace internal {
namespace {

// The one conversion between the `void*` libcurl hands to callbacks (and
// CURLOPT_PRIVATE) and the transfer it was given.
CurlTransfer* FromUserData(void* user) {
  return static_cast<CurlTransfer*>(user);
}

size_t OnHeaderLine(char* data, size_t size, size_t count, void* user) {
  CurlTransfer* transfer = FromUserData(user);
  const size_t length = size * count;
  absl::string_view line(data, length);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  HttpHeaders& headers = transfer->response.headers;
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line: 1xx interim answers, a proxy's CONNECT answer or a
    // redirect came before; only the final response's headers count.
    headers.clear();
  } else if (line.empty()) {
    // End of a header block.
  } else if (line.front() == ' ' || line.front() == '\t') {
    // Obsolete line folding: continues the previous value.
    if (!headers.empty()) {
      absl::string_view more = absl::StripAsciiWhitespace(line);
      if (!more.empty()) absl::StrAppend(&headers.back().second, " ", more);
    }
  } else {
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos && colon > 0) {
      headers.emplace_back(
          std::string(
              absl::StripTrailingAsciiWhitespace(line.substr(0, colon))),
          std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
    }
  }
  return length;
}

void DeliverStreamHeaders(CurlTransfer& transfer) {
  if (transfer.headers_delivered) return;
  transfer.headers_delivered = true;
  long status = 0;
  curl_easy_getinfo(transfer.easy.get(), CURLINFO_RESPONSE_CODE, &status);
  transfer.request.body_stream->OnHeaders(static_cast<int>(status),
                                          transfer.response.headers);
}

size_t OnBodyData(char* data, size_t size, size_t count, void* user) {
  CurlTransfer* transfer = FromUserData(user);
  const size_t length = size * count;
  const size_t limit = transfer->request.max_response_bytes;
  if (length > limit - std::min(transfer->body_bytes, limit)) {
    transfer->too_large = true;
    return 0;  // Anything but `length` aborts with CURLE_WRITE_ERROR.
  }
  transfer->body_bytes += length;
  if (HttpBodyStream* stream = transfer->request.body_stream.get()) {
    DeliverStreamHeaders(*transfer);
    if (!stream->OnData(absl::string_view(data, length))) {
      // Consumed; take no more until Resume(). Allowed from this callback.
      curl_easy_pause(transfer->easy.get(), CURLPAUSE_RECV);
    }
    return length;
  }
  transfer->response.body.append(data, length);
  return length;
}

absl::Status CurlError(CURLcode code, bool too_large, const std::string& host,
                       const char* error_buffer, size_t limit) {
  if (too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("HTTP response from ", host, " exceeds ", limit,
                     " bytes; the transfer was aborted"));
  }
  // libcurl's error buffer names hosts, ports and OS errors; it never holds
  // request headers or bodies.
  std::string detail =
      error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  std::string message =
      absl::StrCat("HTTP request to ", host, " failed: ", detail);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(message);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(message);
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
      return absl::FailedPreconditionError(
          absl::StrCat(message, "; check the configured CA file"));
    case CURLE_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(message);
    case CURLE_ABORTED_BY_CALLBACK:
      return absl::CancelledError(message);
    default:
      // Connect, resolve, send, receive, TLS, proxy, partial and empty
      // answers: all transient from the caller's point of view.
      return absl::UnavailableError(message);
  }
}

long ClampedMilliseconds(absl::Duration duration) {
  return static_cast<long>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(duration), 1, LONG_MAX));
}

}  // namespace

absl::StatusOr<std::string> UrlHostForMessages(const std::string& url) {
  CurlUrlPtr u(curl_url());
  if (u == nullptr) return absl::ResourceExhaustedError("out of memory");
  char* scheme = nullptr;
  char* host = nullptr;
  const bool parsed =
      curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK;
  CurlStringPtr owned_scheme(scheme);
  CurlStringPtr owned_host(host);
  if (!parsed) return absl::InvalidArgumentError("malformed URL");
  if (!absl::EqualsIgnoreCase(scheme, "http") &&
      !absl::EqualsIgnoreCase(scheme, "https")) {
    return absl::InvalidArgumentError(
        "unsupported URL scheme: only http and https are allowed");
  }
  std::string result = host;
  char* port = nullptr;
  if (curl_url_get(u.get(), CURLUPART_PORT, &port, 0) == CURLUE_OK) {
    absl::StrAppend(&result, ":", port);
  }
  CurlStringPtr owned_port(port);
  return result;
}

absl::Status ConfigureTransfer(CurlTransfer& transfer,
                               const std::string& ca_file,
                               absl::Duration connect_timeout) {
  CURL* easy = transfer.easy.get();
  const HttpRequest& request = transfer.request;
  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file.c_str());
  }
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                   static_cast<long>(CURL_HTTP_VERSION_2TLS));
  // Over TLS, wait for a connection that may multiplex (HTTP/2, learnt from
  // ALPN) rather than opening a second one to the same host. Plain http is
  // HTTP/1.1 here: waiting would queue every request behind a slow answer.
  if (absl::StartsWithIgnoreCase(request.url, "https://")) {
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
  }
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   ClampedMilliseconds(request.timeout));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   ClampedMilliseconds(connect_timeout));
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer.error_buffer);
  void* const user = static_cast<void*>(&transfer);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeaderLine);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, user);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBodyData);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, user);
  // Fails early when Content-Length announces too much; OnBodyData catches
  // the chunked case.
  if (request.method != "HEAD") {
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(std::min<uint64_t>(
                         request.max_response_bytes,
                         std::numeric_limits<curl_off_t>::max())));
  }
  curl_easy_setopt(easy, CURLOPT_PRIVATE, user);

  const std::string& method = request.method;
  if (method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (method == "DELETE" && request.body.empty()) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else {
    // The body lives in `transfer` until the transfer ends: no copy.
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    if (method != "POST") {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
  }

  bool has_expect = false;
  bool allocated = true;
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "Expect")) has_expect = true;
    // "Name;" is libcurl's syntax for a header with an empty value.
    std::string line = value.empty() ? absl::StrCat(name, ";")
                                     : absl::StrCat(name, ": ", value);
    allocated = allocated && CurlSlistAppend(transfer.headers, line.c_str());
  }
  // libcurl would wait for "100 Continue" before sending larger bodies.
  if (!has_expect) {
    allocated = allocated && CurlSlistAppend(transfer.headers, "Expect:");
  }
  if (!allocated) {
    return absl::ResourceExhaustedError(
        "cannot allocate the HTTP request's header list");
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer.headers.get());
  return absl::OkStatus();
}

CurlTransfer* TransferOf(CURL* easy) {
  char* user = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &user) != CURLE_OK) {
    return nullptr;
  }
  return FromUserData(user);
}

absl::StatusOr<HttpResponse> TransferResult(CurlTransfer& transfer,
                                            CURLcode code) {
  if (code != CURLE_OK) {
    return CurlError(code, transfer.too_large, transfer.host,
                     transfer.error_buffer,
                     transfer.request.max_response_bytes);
  }
  long status = 0;
  curl_easy_getinfo(transfer.easy.get(), CURLINFO_RESPONSE_CODE, &status);
  transfer.response.status = static_cast<int>(status);
  // An empty streamed body still announces its status and headers.
  if (transfer.request.body_stream != nullptr) DeliverStreamHeaders(transfer);
  return std::move(transfer.response);
}

}  // namespace internal
}  // namespace tokenbroker
