#include "service/upstream/curl_http_client.h"

#include <curl/curl.h>

#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/common/thread_name.h"
#include "service/upstream/curl_transfer.h"

namespace tokenbroker {
namespace {

using internal::CurlEasyPtr;
using internal::CurlMultiPtr;
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

std::once_flag global_init_once;
CURLcode global_init_result = CURLE_OK;

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
  CurlMultiPtr multi(curl_multi_init());
  if (multi == nullptr) return absl::InternalError("curl_multi_init failed");
  curl_multi_setopt(multi.get(), CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    options.max_total_connections);
  curl_multi_setopt(multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS,
                    options.max_host_connections);
  curl_multi_setopt(multi.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  return std::unique_ptr<CurlHttpClient>(
      new CurlHttpClient(std::move(options), std::move(multi)));
}

CurlHttpClient::CurlHttpClient(CurlHttpClientOptions options,
                               CurlMultiPtr multi)
    : options_(std::move(options)),
      multi_(std::move(multi)),
      loop_([this] { Loop(); }) {}

CurlHttpClient::~CurlHttpClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  curl_multi_wakeup(multi_.get());
  loop_.join();
  // The members free the idle easy handles, then the multi handle.
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
  if (wake) curl_multi_wakeup(multi_.get());
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
  if (wake) curl_multi_wakeup(multi_.get());
}

UpstreamStats CurlHttpClient::stats() const {
  UpstreamStats stats;
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
        curl_easy_pause(it->second->easy.get(), CURLPAUSE_CONT);
      }
    }

    int running = 0;
    curl_multi_perform(multi_.get(), &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
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
    curl_multi_poll(multi_.get(), nullptr, 0, 1000, nullptr);
    absl::MutexLock lock(&mu_);
    polling_ = false;
  }
  while (!active_.empty()) {
    auto it = active_.begin();
    std::unique_ptr<CurlTransfer> transfer = std::move(it->second);
    active_.erase(it);
    CompleteTransfer(std::move(transfer),
                     absl::CancelledError("the HTTP client shut down"));
  }
}

void CurlHttpClient::AddTransfer(Pending pending) {
  auto transfer = std::make_unique<CurlTransfer>();
  transfer->id = pending.id;
  transfer->request = std::move(pending.request);
  transfer->done = std::move(pending.done);

  absl::StatusOr<std::string> host =
      internal::UrlHostForMessages(transfer->request.url);
  if (!host.ok()) {
    CompleteTransfer(std::move(transfer), host.status());
    return;
  }
  transfer->host = *std::move(host);
  if (!idle_easies_.empty()) {
    transfer->easy = std::move(idle_easies_.back());
    idle_easies_.pop_back();
    // Keeps the handle's DNS and TLS session caches; connections live in
    // the multi handle's cache anyway.
    curl_easy_reset(transfer->easy.get());
  } else {
    transfer->easy = CurlEasyPtr(curl_easy_init());
    if (transfer->easy == nullptr) {
      CompleteTransfer(
          std::move(transfer),
          absl::ResourceExhaustedError("cannot create a libcurl handle"));
      return;
    }
  }
  absl::Status configured =
      ConfigureTransfer(*transfer, options_.ca_file, options_.connect_timeout);
  CURLMcode added = CURLM_OK;
  if (configured.ok()) {
    added = curl_multi_add_handle(multi_.get(), transfer->easy.get());
    if (added != CURLM_OK) {
      configured = absl::InternalError(absl::StrCat(
          "cannot start HTTP request: ", curl_multi_strerror(added)));
    }
  }
  if (!configured.ok()) {
    // Not in the multi handle: freed rather than kept for reuse.
    transfer->easy.reset();
    CompleteTransfer(std::move(transfer), std::move(configured));
    return;
  }
  const HttpRequestId id = transfer->id;
  active_.emplace(id, std::move(transfer));
}

void CurlHttpClient::FinishTransfer(CURL* easy, CURLcode code) {
  CurlTransfer* raw = internal::TransferOf(easy);
  if (raw == nullptr) return;
  auto it = active_.find(raw->id);
  if (it == active_.end()) return;
  std::unique_ptr<CurlTransfer> transfer = std::move(it->second);
  active_.erase(it);

  long connects = 0;
  if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
    if (connects > 0) {
      connections_opened_.fetch_add(connects, std::memory_order_relaxed);
    } else if (code == CURLE_OK) {
      connections_reused_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  absl::StatusOr<HttpResponse> result =
      internal::TransferResult(*transfer, code);
  CompleteTransfer(std::move(transfer), std::move(result));
}

void CurlHttpClient::CancelTransfer(HttpRequestId id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;  // Already finished.
  std::unique_ptr<CurlTransfer> transfer = std::move(it->second);
  active_.erase(it);
  CompleteTransfer(std::move(transfer),
                   absl::CancelledError("the HTTP request was cancelled"));
}

void CurlHttpClient::CompleteTransfer(std::unique_ptr<CurlTransfer> transfer,
                                      absl::StatusOr<HttpResponse> result) {
  HttpCallback done = std::move(transfer->done);
  if (transfer->easy != nullptr) {
    curl_multi_remove_handle(multi_.get(), transfer->easy.get());
    if (idle_easies_.size() < kMaxIdleEasies) {
      idle_easies_.push_back(std::move(transfer->easy));
    }
  }
  transfer.reset();  // Frees the header list (and the easy handle if not kept).
  requests_completed_.fetch_add(1, std::memory_order_relaxed);
  done(std::move(result));
}

}  // namespace tokenbroker
