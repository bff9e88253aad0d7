#include "service/proxy/proxy.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/backoff_policy.h"
#include "service/common/log.h"
#include "service/proxy/token_scrubber.h"

namespace tokenbroker {

namespace {

// Adapts one HTTP attempt's body to the caller's stream, with the injected
// token scrubbed from headers and body. A 401 that will be retried with a
// fresh token is swallowed, not forwarded.
class AttemptStream final : public HttpBodyStream {
 public:
  AttemptStream(std::shared_ptr<ProxyBodyStream> out, bool may_retry_401,
                absl::string_view token, std::atomic<int64_t>& scrubbed)
      : out_(std::move(out)),
        may_retry_401_(may_retry_401),
        header_scrubber_(token),
        scrubber_(token),
        scrubbed_(scrubbed) {}

  void OnHeaders(int status, const HttpHeaders& headers) override {
    if (status == 401 && may_retry_401_) {
      discard_ = true;
      return;
    }
    forwarded_.store(true);
    HttpHeaders filtered = FilterResponseHeaders(headers);
    Count(header_scrubber_.ScrubHeaders(filtered));
    out_->OnHead(status, filtered);
  }

  bool OnData(absl::string_view data) override {
    if (discard_) return true;
    piece_.clear();
    Count(scrubber_.Write(data, &piece_));
    return out_->OnData(piece_);
  }

  // At the end of a forwarded body: passes on what the scrubber held back
  // (a possible start of the token that did not become one).
  void Flush() {
    if (discard_ || !forwarded_.load()) return;
    piece_.clear();
    scrubber_.Finish(&piece_);
    if (!piece_.empty()) out_->OnData(piece_);
  }

  // Whether anything reached the caller (then the attempt cannot be redone).
  bool forwarded() const { return forwarded_.load(); }

 private:
  void Count(size_t n) {
    if (n > 0) scrubbed_.fetch_add(static_cast<int64_t>(n));
  }

  const std::shared_ptr<ProxyBodyStream> out_;
  const bool may_retry_401_;
  const TokenScrubber header_scrubber_;
  // Only touched on the I/O thread.
  StreamingTokenScrubber scrubber_;
  std::string piece_;
  bool discard_ = false;
  std::atomic<bool> forwarded_{false};
  std::atomic<int64_t>& scrubbed_;
};

}  // namespace

class Proxy::Call final : public ProxyCall,
                          public std::enable_shared_from_this<Proxy::Call> {
 public:
  Call(Proxy& proxy, ProxyRequest request, ProxyOptions options,
       ProxyCallback done)
      : proxy_(proxy),
        request_(std::move(request)),
        options_(options),
        backoff_(options.backoff_base, options.backoff_max),
        done_(std::move(done)) {}

  void Begin() { FetchToken(); }

  void Resume() override {
    HttpRequestId id;
    {
      absl::MutexLock lock(&mu_);
      id = http_id_;
    }
    proxy_.http_.Resume(id);
  }

  void Cancel() override {
    HttpRequestId http_id = kNoHttpRequestId;
    TimerQueue::TimerId timer_id = 0;
    TokenWait token_wait;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      cancelled_ = true;
      http_id = http_id_;
      timer_id = timer_id_;
      token_wait = std::move(token_wait_);
    }
    // Waiting for a token: withdraw from the cache (outside mu_, which
    // OnToken() takes). If the token came meanwhile, OnToken() has seen
    // cancelled_ and finished.
    token_wait.Cancel();
    // An HTTP exchange in flight completes with CANCELLED through
    // OnResponse(); otherwise finish here.
    if (http_id != kNoHttpRequestId) {
      proxy_.http_.Cancel(http_id);
      return;
    }
    if (timer_id != 0) proxy_.timers_.Cancel(timer_id);
    Finish(absl::CancelledError("the call was cancelled"));
  }

 private:
  void FetchToken() {
    uint64_t fetch;
    {
      absl::MutexLock lock(&mu_);
      fetch = ++token_fetches_;
    }
    std::shared_ptr<Call> self = shared_from_this();
    TokenWait wait = proxy_.tokens_.Await(
        request_.token, options_.min_ttl, request_.deadline,
        [self](absl::StatusOr<TokenPtr> token) {
          self->OnToken(std::move(token));
        });
    // Kept only while it can matter. Dropped (outside mu_) when the call
    // ended meanwhile, or when a later FetchToken() began (a token answered
    // inline can lead to a 401 and a refetch before this point): that
    // later wait must stay, this one was answered.
    TokenWait dropped;
    absl::MutexLock lock(&mu_);
    if (!finished_ && !cancelled_ && token_fetches_ == fetch) {
      dropped = std::move(token_wait_);
      token_wait_ = std::move(wait);
    }
  }

  void OnToken(absl::StatusOr<TokenPtr> token) {
    if (!token.ok()) {
      Finish(token.status());
      return;
    }
    absl::Duration left = request_.deadline - proxy_.clock_.Now();
    if (left <= absl::ZeroDuration()) {
      Finish(absl::DeadlineExceededError(
          "the caller's deadline passed before the request could be sent"));
      return;
    }
    HttpRequest http;
    http.method = request_.method;
    http.url = absl::StrCat(request_.base_url, request_.path);
    http.headers = request_.headers;
    http.headers.emplace_back("Authorization",
                              absl::StrCat("Bearer ", (*token)->access_token));
    http.body = request_.body;
    http.timeout = std::min(left, options_.request_timeout);
    http.max_response_bytes = options_.max_response_body_bytes;

    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      cancelled = cancelled_;
      if (!cancelled) {
        token_ = *token;
        ++attempts_;
        responded_ = false;
        if (request_.stream != nullptr) {
          attempt_stream_ = std::make_shared<AttemptStream>(
              request_.stream, !retried_401_, (*token)->access_token,
              proxy_.tokens_scrubbed_);
          http.body_stream = attempt_stream_;
        }
      }
    }
    if (cancelled) {
      Finish(absl::CancelledError("the call was cancelled"));
      return;
    }
    // Start() may complete inline, and OnResponse() takes mu_: start the
    // exchange without holding it.
    std::shared_ptr<Call> self = shared_from_this();
    HttpRequestId id = proxy_.http_.Start(
        std::move(http), [self](absl::StatusOr<HttpResponse> response) {
          self->OnResponse(std::move(response));
        });
    bool cancel_now;
    {
      absl::MutexLock lock(&mu_);
      if (!responded_) http_id_ = id;
      // Cancel() ran between the two critical sections.
      cancel_now = cancelled_ && !responded_;
    }
    if (cancel_now) proxy_.http_.Cancel(id);
  }

  void OnResponse(absl::StatusOr<HttpResponse> response) {
    TokenPtr token;
    bool cancelled;
    bool retry_401;
    int attempts;
    bool streamed;
    {
      absl::MutexLock lock(&mu_);
      streamed = attempt_stream_ != nullptr && attempt_stream_->forwarded();
      responded_ = true;
      http_id_ = kNoHttpRequestId;
      token = token_;
      cancelled = cancelled_;
      attempts = attempts_;
      retry_401 = response.ok() && response->status == 401 && !retried_401_;
      if (retry_401) retried_401_ = true;
    }
    if (cancelled) {
      Finish(absl::CancelledError("the call was cancelled"));
      return;
    }
    if (response.ok()) {
      if (retry_401) {
        // The cached token was refused: drop it, fetch a fresh one (single
        // flight with every other caller of the app), try once more.
        LogInfo("upstream answered 401; retrying once with a fresh token",
                {{"app", request_.token.app}, {"token", token->fingerprint}});
        proxy_.tokens_.Invalidate(request_.token, token->access_token);
        FetchToken();
        return;
      }
      ProxyResult result;
      result.response.status = response->status;
      result.response.headers = FilterResponseHeaders(response->headers);
      result.response.body = std::move(response->body);
      // An endpoint that echoes the request must not hand a Call-only
      // caller the token it was never given.
      std::shared_ptr<AttemptStream> stream;
      {
        absl::MutexLock lock(&mu_);
        stream = attempt_stream_;
      }
      if (stream != nullptr) {
        stream->Flush();
      } else {
        TokenScrubber scrubber(token->access_token);
        size_t scrubbed = scrubber.ScrubHeaders(result.response.headers) +
                          scrubber.ScrubText(result.response.body);
        if (scrubbed > 0) {
          proxy_.tokens_scrubbed_.fetch_add(static_cast<int64_t>(scrubbed));
        }
      }
      result.token_fingerprint = token->fingerprint;
      result.attempts = attempts;
      Finish(std::move(result));
      return;
    }
    const absl::Status& error = response.status();
    if (error.code() == absl::StatusCode::kUnavailable &&
        IsIdempotentMethod(request_.method) && !streamed &&
        attempts < options_.max_attempts) {
      absl::Duration delay;
      {
        absl::MutexLock lock(&mu_);
        delay = backoff_.OnCompletion();
      }
      if (proxy_.clock_.Now() + delay < request_.deadline) {
        ScheduleRetry(delay);
        return;
      }
    }
    if (error.code() == absl::StatusCode::kDeadlineExceeded) {
      Finish(absl::DeadlineExceededError(
          absl::StrCat("Anypoint did not answer in time: ", error.message())));
      return;
    }
    Finish(error);
  }

  void ScheduleRetry(absl::Duration delay) {
    std::shared_ptr<Call> self = shared_from_this();
    absl::MutexLock lock(&mu_);
    timer_id_ = proxy_.timers_.Schedule(delay, [self] {
      {
        absl::MutexLock lock(&self->mu_);
        self->timer_id_ = 0;
      }
      self->FetchToken();
    });
  }

  void Finish(absl::StatusOr<ProxyResult> result) {
    ProxyCallback done;
    TokenWait token_wait;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      done = std::move(done_);
      token_wait = std::move(token_wait_);
    }
    done(std::move(result));
  }

  Proxy& proxy_;
  const ProxyRequest request_;
  const ProxyOptions options_;
  absl::Mutex mu_;
  ExponentialBackoffPolicy backoff_ ABSL_GUARDED_BY(mu_);
  bool retried_401_ ABSL_GUARDED_BY(mu_) = false;
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<AttemptStream> attempt_stream_ ABSL_GUARDED_BY(mu_);
  ProxyCallback done_ ABSL_GUARDED_BY(mu_);
  // While waiting for a token; withdrawn by Cancel().
  TokenWait token_wait_ ABSL_GUARDED_BY(mu_);
  uint64_t token_fetches_ ABSL_GUARDED_BY(mu_) = 0;  // FetchToken() calls.
  TokenPtr token_ ABSL_GUARDED_BY(mu_);
  HttpRequestId http_id_ ABSL_GUARDED_BY(mu_) = kNoHttpRequestId;
  TimerQueue::TimerId timer_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool responded_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

Proxy::Proxy(TokenProvider& tokens, HttpClient& http, TimerQueue& timers,
             const Clock& clock, ProxyOptions options)
    : tokens_(tokens),
      http_(http),
      timers_(timers),
      clock_(clock),
      options_(options) {}

void Proxy::SetOptions(const ProxyOptions& options) {
  absl::MutexLock lock(&mu_);
  options_ = options;
}

std::shared_ptr<ProxyCall> Proxy::Start(ProxyRequest request,
                                        ProxyCallback done) {
  ProxyOptions options;
  {
    absl::MutexLock lock(&mu_);
    options = options_;
  }
  auto call = std::make_shared<Call>(*this, std::move(request), options,
                                     std::move(done));
  call->Begin();
  return call;
}

}  // namespace tokenbroker
