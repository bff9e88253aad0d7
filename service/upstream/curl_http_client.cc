#include "service/upstream/curl_http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <climits>
#include <limits>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/common/thread_name.h"

namespace tokenbroker {
namespace internal {

struct CurlTransfer {
  HttpRequestId id = 0;
  CURL* easy = nullptr;
  HttpRequest request;
  HttpCallback done;
  std::string host;
  curl_slist* headers = nullptr;
  HttpResponse response;
  size_t body_bytes = 0;           // Received so far (streamed or not).
  bool headers_delivered = false;  // OnHeaders() called (streams only).
  bool too_large = false;
  char error_buffer[CURL_ERROR_SIZE] = {0};
};

}  // namespace internal

namespace {

using internal::CurlTransfer;

// Idle easy handles kept for reuse beyond this are freed.
constexpr size_t kMaxIdleEasies = 64;

bool IsSupportedMethod(absl::string_view method) {
  return method == "GET" || method == "HEAD" || method == "POST" ||
         method == "PUT" || method == "PATCH" || method == "DELETE";
}

bool HasLineBreakOrNul(absl::string_view s) {
  return s.find_first_of(absl::string_view("\r\n\0", 3)) !=
         absl::string_view::npos;
}

// Checks the URL and returns "host[:port]" for error messages: never the
// userinfo, path or query, which may carry credentials.
absl::StatusOr<std::string> UrlHostForMessages(const std::string& url) {
  CURLU* u = curl_url();
  if (u == nullptr) return absl::ResourceExhaustedError("out of memory");
  absl::Status status;
  std::string host;
  char* scheme = nullptr;
  char* part = nullptr;
  char* port = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &part, 0) != CURLUE_OK) {
    status = absl::InvalidArgumentError("malformed URL");
  } else if (!absl::EqualsIgnoreCase(scheme, "http") &&
             !absl::EqualsIgnoreCase(scheme, "https")) {
    status = absl::InvalidArgumentError(
        "unsupported URL scheme: only http and https are allowed");
  } else {
    host = part;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
      absl::StrAppend(&host, ":", port);
    }
  }
  curl_free(scheme);
  curl_free(part);
  curl_free(port);
  curl_url_cleanup(u);
  if (!status.ok()) return status;
  return host;
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

std::once_flag global_init_once;
CURLcode global_init_result = CURLE_OK;

size_t OnHeaderLine(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<CurlTransfer*>(user);
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

void DeliverStreamHeaders(CurlTransfer* transfer) {
  if (transfer->headers_delivered) return;
  transfer->headers_delivered = true;
  long status = 0;
  curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
  transfer->request.body_stream->OnHeaders(static_cast<int>(status),
                                           transfer->response.headers);
}

size_t OnBodyData(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<CurlTransfer*>(user);
  const size_t length = size * count;
  const size_t limit = transfer->request.max_response_bytes;
  if (length > limit - std::min(transfer->body_bytes, limit)) {
    transfer->too_large = true;
    return 0;  // Anything but `length` aborts with CURLE_WRITE_ERROR.
  }
  transfer->body_bytes += length;
  if (HttpBodyStream* stream = transfer->request.body_stream.get()) {
    DeliverStreamHeaders(transfer);
    if (!stream->OnData(absl::string_view(data, length))) {
      // Consumed; take no more until Resume(). Allowed from this callback.
      curl_easy_pause(transfer->easy, CURLPAUSE_RECV);
    }
    return length;
  }
  transfer->response.body.append(data, length);
  return length;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CurlHttpClient>> CurlHttpClient::Create(
    CurlHttpClientOptions options) {
  std::call_once(global_init_once, [] {
    global_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  });
  if (global_init_result != CURLE_OK) {
    return absl::InternalError(absl::StrCat(
        "curl_global_init failed: ", curl_easy_strerror(global_init_result)));
  }
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return absl::InternalError("curl_multi_init failed");
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    options.max_total_connections);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    options.max_host_connections);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  return std::unique_ptr<CurlHttpClient>(
      new CurlHttpClient(std::move(options), multi));
}

CurlHttpClient::CurlHttpClient(CurlHttpClientOptions options, void* multi)
    : options_(std::move(options)), multi_(multi), loop_([this] { Loop(); }) {}

CurlHttpClient::~CurlHttpClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  curl_multi_wakeup(multi_);
  loop_.join();
  for (void* easy : idle_easies_) curl_easy_cleanup(easy);
  curl_multi_cleanup(multi_);
}

void CurlHttpClient::Send(HttpRequest request, HttpCallback done) {
  Start(std::move(request), std::move(done));
}

HttpRequestId CurlHttpClient::Start(HttpRequest request, HttpCallback done) {
  absl::Status invalid;
  if (!IsSupportedMethod(request.method)) {
    invalid = absl::InvalidArgumentError(
        absl::StrCat("unsupported HTTP method \"",
                     absl::CHexEscape(request.method.substr(0, 16)),
                     "\": use GET, HEAD, POST, PUT, PATCH or DELETE"));
  } else if ((request.method == "GET" || request.method == "HEAD") &&
             !request.body.empty()) {
    invalid = absl::InvalidArgumentError(
        absl::StrCat(request.method, " requests cannot have a body"));
  } else if (HasLineBreakOrNul(request.url)) {
    invalid = absl::InvalidArgumentError("malformed URL");
  } else {
    for (const auto& [name, value] : request.headers) {
      if (name.empty() || HasLineBreakOrNul(name) || HasLineBreakOrNul(value) ||
          name.find(':') != std::string::npos) {
        invalid = absl::InvalidArgumentError(
            "malformed request header: empty name, ':' in the name, or a line "
            "break in the name or value");
        break;
      }
    }
  }
  if (!invalid.ok()) {
    done(std::move(invalid));
    return kNoHttpRequestId;
  }
  HttpRequestId id = kNoHttpRequestId;
  bool wake = false;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      id = next_id_++;
      queued_.push_back(Pending{id, std::move(request), std::move(done)});
      wake = polling_;
    }
  }
  if (id == kNoHttpRequestId) {
    done(absl::CancelledError("the HTTP client is shutting down"));
    return kNoHttpRequestId;
  }
  requests_started_.fetch_add(1, std::memory_order_relaxed);
  if (wake) curl_multi_wakeup(multi_);
  return id;
}

void CurlHttpClient::Resume(HttpRequestId id) {
  QueueForLoop(LoopAction::kResume, id);
}

void CurlHttpClient::Cancel(HttpRequestId id) {
  QueueForLoop(LoopAction::kCancel, id);
}

void CurlHttpClient::QueueForLoop(LoopAction action, HttpRequestId id) {
  if (id == kNoHttpRequestId) return;
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    (action == LoopAction::kCancel ? cancels_ : resumes_).push_back(id);
    wake = polling_;
  }
  if (wake) curl_multi_wakeup(multi_);
}

CurlHttpClientStats CurlHttpClient::stats() const {
  CurlHttpClientStats stats;
  stats.requests_started = requests_started_.load(std::memory_order_relaxed);
  stats.requests_completed =
      requests_completed_.load(std::memory_order_relaxed);
  stats.connections_opened =
      connections_opened_.load(std::memory_order_relaxed);
  stats.connections_reused =
      connections_reused_.load(std::memory_order_relaxed);
  return stats;
}

void CurlHttpClient::Loop() {
  SetCurrentThreadName("tb-curl");
  for (;;) {
    std::deque<Pending> queued;
    std::vector<HttpRequestId> cancels;
    std::vector<HttpRequestId> resumes;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      queued.swap(queued_);
      cancels.swap(cancels_);
      resumes.swap(resumes_);
      stopping = stopping_;
    }
    if (stopping) {
      for (Pending& pending : queued) {
        requests_completed_.fetch_add(1, std::memory_order_relaxed);
        pending.done(absl::CancelledError("the HTTP client shut down"));
      }
      break;
    }
    for (Pending& pending : queued) AddTransfer(std::move(pending));
    for (HttpRequestId id : cancels) CancelTransfer(id);
    for (HttpRequestId id : resumes) {
      if (auto it = active_.find(id); it != active_.end()) {
        curl_easy_pause(it->second->easy, CURLPAUSE_CONT);
      }
    }

    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) {
        FinishTransfer(msg->easy_handle, msg->data.result);
      }
    }
    {
      absl::MutexLock lock(&mu_);
      // Work queued meanwhile is taken at once, without polling.
      if (!queued_.empty() || !cancels_.empty() || !resumes_.empty() ||
          stopping_) {
        continue;
      }
      polling_ = true;
    }
    // Returns early on socket activity, libcurl's own timers or a wakeup.
    curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    absl::MutexLock lock(&mu_);
    polling_ = false;
  }
  while (!active_.empty()) {
    auto it = active_.begin();
    std::unique_ptr<CurlTransfer> transfer = std::move(it->second);
    active_.erase(it);
    HttpCallback done = std::move(transfer->done);
    ReleaseEasy(transfer->easy);
    curl_slist_free_all(transfer->headers);
    transfer.reset();
    requests_completed_.fetch_add(1, std::memory_order_relaxed);
    done(absl::CancelledError("the HTTP client shut down"));
  }
}

void CurlHttpClient::AddTransfer(Pending pending) {
  auto transfer = std::make_unique<CurlTransfer>();
  transfer->id = pending.id;
  transfer->request = std::move(pending.request);
  transfer->done = std::move(pending.done);
  const HttpRequest& request = transfer->request;

  absl::StatusOr<std::string> host = UrlHostForMessages(request.url);
  CURL* easy = nullptr;
  if (host.ok()) {
    transfer->host = *std::move(host);
    if (!idle_easies_.empty()) {
      easy = idle_easies_.back();
      idle_easies_.pop_back();
      // Keeps the handle's DNS and TLS session caches; connections live in
      // the multi handle's cache anyway.
      curl_easy_reset(easy);
    } else {
      easy = curl_easy_init();
    }
  }
  if (easy == nullptr) {
    requests_completed_.fetch_add(1, std::memory_order_relaxed);
    transfer->done(host.ok() ? absl::ResourceExhaustedError(
                                   "cannot create a libcurl handle")
                             : host.status());
    return;
  }
  transfer->easy = easy;

  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
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
  const long timeout_ms = static_cast<long>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(request.timeout), 1, LONG_MAX));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  const long connect_ms = static_cast<long>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(options_.connect_timeout), 1, LONG_MAX));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error_buffer);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeaderLine);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBodyData);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  // Fails early when Content-Length announces too much; OnBodyData catches
  // the chunked case.
  if (request.method != "HEAD") {
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(std::min<uint64_t>(
                         request.max_response_bytes,
                         std::numeric_limits<curl_off_t>::max())));
  }
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());

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
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "Expect")) has_expect = true;
    // "Name;" is libcurl's syntax for a header with an empty value.
    std::string line = value.empty() ? absl::StrCat(name, ";")
                                     : absl::StrCat(name, ": ", value);
    transfer->headers = curl_slist_append(transfer->headers, line.c_str());
  }
  // libcurl would wait for "100 Continue" before sending larger bodies.
  if (!has_expect) {
    transfer->headers = curl_slist_append(transfer->headers, "Expect:");
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);

  CURLMcode added = curl_multi_add_handle(multi_, easy);
  if (added != CURLM_OK) {
    curl_slist_free_all(transfer->headers);
    transfer->headers = nullptr;
    curl_easy_cleanup(easy);
    requests_completed_.fetch_add(1, std::memory_order_relaxed);
    transfer->done(absl::InternalError(absl::StrCat(
        "cannot start HTTP request: ", curl_multi_strerror(added))));
    return;
  }
  const HttpRequestId id = transfer->id;
  active_.emplace(id, std::move(transfer));
}

void CurlHttpClient::FinishTransfer(void* easy, int curl_code) {
  CurlTransfer* raw = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
  if (raw == nullptr) return;
  auto it = active_.find(raw->id);
  if (it == active_.end()) return;
  std::unique_ptr<CurlTransfer> transfer = std::move(it->second);
  active_.erase(it);

  const auto code = static_cast<CURLcode>(curl_code);
  long connects = 0;
  if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
    if (connects > 0) {
      connections_opened_.fetch_add(connects, std::memory_order_relaxed);
    } else if (code == CURLE_OK) {
      connections_reused_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  absl::StatusOr<HttpResponse> result;
  if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    transfer->response.status = static_cast<int>(status);
    // An empty streamed body still announces its status and headers.
    if (transfer->request.body_stream != nullptr) {
      DeliverStreamHeaders(transfer.get());
    }
    result = std::move(transfer->response);
  } else {
    result =
        CurlError(code, transfer->too_large, transfer->host,
                  transfer->error_buffer, transfer->request.max_response_bytes);
  }
  HttpCallback done = std::move(transfer->done);
  ReleaseEasy(easy);
  curl_slist_free_all(transfer->headers);
  transfer.reset();
  requests_completed_.fetch_add(1, std::memory_order_relaxed);
  done(std::move(result));
}

void CurlHttpClient::CancelTransfer(HttpRequestId id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;  // Already finished.
  std::unique_ptr<CurlTransfer> transfer = std::move(it->second);
  active_.erase(it);
  HttpCallback done = std::move(transfer->done);
  ReleaseEasy(transfer->easy);
  curl_slist_free_all(transfer->headers);
  transfer.reset();
  requests_completed_.fetch_add(1, std::memory_order_relaxed);
  done(absl::CancelledError("the HTTP request was cancelled"));
}

void CurlHttpClient::ReleaseEasy(void* easy) {
  curl_multi_remove_handle(multi_, easy);
  if (idle_easies_.size() < kMaxIdleEasies) {
    idle_easies_.push_back(easy);
  } else {
    curl_easy_cleanup(easy);
  }
}

}  // namespace tokenbroker
