#ifndef TOKENBROKER_SERVICE_PROXY_PROXY_H_
#define TOKENBROKER_SERVICE_PROXY_PROXY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/cache/token_provider.h"
#include "service/cache/token_request.h"
#include "service/common/clock.h"
#include "service/common/timer_queue.h"
#include "service/proxy/call_request.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {

// Receives a streamed answer (CallStream). Called on the HTTP client's I/O
// thread; must not block.
class ProxyBodyStream {
 public:
  virtual ~ProxyBodyStream() = default;
  // Once, before any data: the status and the filtered headers.
  virtual void OnHead(int status, const HttpHeaders& headers) = 0;
  // Each piece of the body; consumed. Return false to pause the transfer
  // until ProxyCall::Resume().
  virtual bool OnData(absl::string_view data) = 0;
};

// A validated Call to forward (see ValidateCallRequest()).
struct ProxyRequest {
  TokenRequest token;    // Whose token to inject.
  std::string base_url;  // The app's control plane; the only destination.
  std::string method;
  std::string path;  // Origin form, with query.
  HttpHeaders headers;
  std::string body;
  absl::Time deadline = absl::InfiniteFuture();  // The caller's.
  // Set for CallStream: the body goes there, not into ProxyResult. A
  // transport failure is retried only before anything was streamed.
  std::shared_ptr<ProxyBodyStream> stream;
};

struct ProxyResult {
  HttpResponse response;          // Headers filtered (FilterResponseHeaders()).
  std::string token_fingerprint;  // Of the token of the last attempt.
  int attempts = 0;               // HTTP requests sent.
};

using ProxyCallback = absl::AnyInvocable<void(absl::StatusOr<ProxyResult>)>;

struct ProxyOptions {
  size_t max_response_body_bytes = 32 << 20;
  absl::Duration request_timeout = absl::Seconds(30);  // Per attempt.
  absl::Duration min_ttl = absl::Seconds(30);          // Of the injected token.
  int max_attempts = 3;  // For transport failures of idempotent methods.
  absl::Duration backoff_base = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(2);
};

// One forwarded request in flight; Cancel() ends it with CANCELLED (the
// upstream transfer is aborted). Thread-safe.
class ProxyCall {
 public:
  virtual ~ProxyCall() = default;
  virtual void Cancel() = 0;
  // Resumes a transfer its ProxyBodyStream paused.
  virtual void Resume() = 0;
};

// Forwards Calls to Anypoint with the app's bearer token injected:
// - the token comes from the provider (the cache: single flight holds); a
//   call cancelled while it waits for the token withdraws its waiter;
// - a 401 to a cached token invalidates it, and the request is retried once
//   with a fresh token; a second 401, or a 403, is returned as it is;
// - transport failures (refused, reset, TLS) of idempotent methods are
//   retried with exponential backoff and full jitter, within the deadline;
// - every attempt is bounded by the caller's deadline and request_timeout.
// Upstream HTTP statuses are data; errors are UNAVAILABLE (transport),
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (response too large), CANCELLED,
// or the token's error (FAILED_PRECONDITION, UNAVAILABLE).
// Thread-safe; `done` runs exactly once, on an I/O or timer thread (or
// inline), and must not block.
class Proxy {
 public:
  Proxy(TokenProvider& tokens, HttpClient& http, TimerQueue& timers,
        const Clock& clock, ProxyOptions options);

  std::shared_ptr<ProxyCall> Start(ProxyRequest request, ProxyCallback done);

  void SetOptions(const ProxyOptions& options);

  // Copies of the injected token removed from answers so far.
  int64_t tokens_scrubbed() const {
    return tokens_scrubbed_.load(std::memory_order_relaxed);
  }

 private:
  class Call;

  TokenProvider& tokens_;
  HttpClient& http_;
  TimerQueue& timers_;
  const Clock& clock_;
  absl::Mutex mu_;
  ProxyOptions options_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> tokens_scrubbed_{0};
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_PROXY_PROXY_H_
