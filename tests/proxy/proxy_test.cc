#include "service/proxy/proxy.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/timer_queue.h"
#include "service/proxy/token_scrubber.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_http_client.h"
#include "tests/testing/fake_token_provider.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::FakeHttpClient;
using ::tokenbroker::testing::FakeTokenProvider;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::MakeTestToken;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::StatusIs;
using ::tokenbroker::testing::TestFingerprint;

constexpr char kToken1[] = "secret-token-1";
constexpr char kToken2[] = "secret-token-2";
constexpr char kToken3[] = "secret-token-3";

// The outcome of one Proxy::Start(): counts the calls of `done` (it must
// run exactly once) and keeps the last result.
class Outcome {
 public:
  ProxyCallback Callback() {
    return [this](absl::StatusOr<ProxyResult> result) {
      absl::MutexLock lock(&mu_);
      ++calls_;
      result_ = std::move(result);
    };
  }

  // Waits for `done` (it may run on the timer thread); bounded so that a
  // broken test fails instead of hanging.
  bool Wait() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](int* calls) { return *calls > 0; }, &calls_),
        absl::Seconds(30));
  }

  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  absl::StatusOr<ProxyResult> result() const {
    absl::MutexLock lock(&mu_);
    return result_;
  }

 private:
  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::StatusOr<ProxyResult> result_ ABSL_GUARDED_BY(mu_) =
      absl::UnknownError("done did not run");
};

// Records what a CallStream caller receives.
class RecordingBodyStream final : public ProxyBodyStream {
 public:
  void OnHead(int status, const HttpHeaders& headers) override {
    absl::MutexLock lock(&mu_);
    statuses_.push_back(status);
    headers_ = headers;
  }
  bool OnData(absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    body_.append(data.data(), data.size());
    return true;
  }

  std::vector<int> statuses() const {
    absl::MutexLock lock(&mu_);
    return statuses_;
  }
  HttpHeaders headers() const {
    absl::MutexLock lock(&mu_);
    return headers_;
  }
  std::string body() const {
    absl::MutexLock lock(&mu_);
    return body_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<int> statuses_ ABSL_GUARDED_BY(mu_);
  HttpHeaders headers_ ABSL_GUARDED_BY(mu_);
  std::string body_ ABSL_GUARDED_BY(mu_);
};

const std::string* Authorization(const HttpRequest& request) {
  return FindHeader(request.headers, "Authorization");
}

HttpResponse Response(int status, std::string body = "") {
  return FakeHttpClient::Json(status, std::move(body));
}

class ProxyTest : public ::testing::Test {
 protected:
  // Retry delays of a microsecond: the timer queue runs in real time.
  static ProxyOptions Options() {
    ProxyOptions options;
    options.max_attempts = 3;
    options.backoff_base = absl::Microseconds(1);
    options.backoff_max = absl::Microseconds(1);
    options.request_timeout = absl::Seconds(30);
    options.min_ttl = absl::Seconds(45);
    return options;
  }

  ProxyRequest Request(std::string method = "GET") {
    ProxyRequest request;
    request.token.app = "orders";
    request.base_url = "https://anypoint.test";
    request.method = std::move(method);
    request.path = "/accounts/api/me?x=1";
    request.headers = {{"Accept", "application/json"}};
    request.deadline = clock_.Now() + absl::Minutes(1);
    return request;
  }

  // Every HTTP request fails with `error` (a transport failure).
  void FailEveryRequest(absl::Status error) {
    http_.SetHandler(
        [error](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
          return error;
        });
  }

  // Whatever a test leaves pending would complete into a destroyed Outcome.
  void TearDown() override {
    EXPECT_EQ(http_.pending_count(), 0u);
    EXPECT_EQ(tokens_.parked_count(), 0u);
  }

  FakeClock clock_;
  FakeTokenProvider tokens_;
  FakeHttpClient http_;
  TimerQueue timers_;
  Proxy proxy_{tokens_, http_, timers_, clock_, Options()};
};

TEST_F(ProxyTest, InjectsTheTokenAndForwardsTheRequest) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  http_.SetHandler([](const HttpRequest&) { return Response(200, "{}"); });
  ProxyRequest request = Request("PUT");
  request.body = "{\"a\":1}";
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  absl::StatusOr<ProxyResult> result = outcome.result();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->response.status, 200);
  EXPECT_EQ(result->response.body, "{}");
  EXPECT_EQ(result->attempts, 1);
  EXPECT_EQ(result->token_fingerprint, TestFingerprint(kToken1));
  ASSERT_EQ(tokens_.requests().size(), 1u);
  EXPECT_EQ(tokens_.requests()[0].app, "orders");
  EXPECT_THAT(tokens_.min_ttls(), ElementsAre(absl::Seconds(45)));
  std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].method, "PUT");
  EXPECT_EQ(sent[0].url, "https://anypoint.test/accounts/api/me?x=1");
  EXPECT_EQ(sent[0].body, "{\"a\":1}");
  ASSERT_NE(Authorization(sent[0]), nullptr);
  EXPECT_EQ(*Authorization(sent[0]), absl::StrCat("Bearer ", kToken1));
  EXPECT_THAT(tokens_.invalidated(), IsEmpty());
}

TEST_F(ProxyTest, UnauthorizedInvalidatesTheTokenAndRetriesOnceWithAFreshOne) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  tokens_.AnswerNext(MakeTestToken(kToken2));
  http_.SetHandler([](const HttpRequest& request) {
    const std::string* auth = Authorization(request);
    bool fresh = auth != nullptr && *auth == absl::StrCat("Bearer ", kToken2);
    return fresh ? Response(200, "{\"ok\":true}") : Response(401);
  });
  Outcome outcome;
  proxy_.Start(Request("POST"), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  absl::StatusOr<ProxyResult> result = outcome.result();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->response.status, 200);
  EXPECT_EQ(result->attempts, 2);
  EXPECT_EQ(result->token_fingerprint, TestFingerprint(kToken2));
  EXPECT_THAT(tokens_.invalidated(), ElementsAre(kToken1));
  EXPECT_EQ(tokens_.await_count(), 2);
  EXPECT_EQ(http_.requests().size(), 2u);
}

TEST_F(ProxyTest, SecondUnauthorizedIsReturnedAsItIs) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  tokens_.AnswerNext(MakeTestToken(kToken2));
  http_.SetHandler([](const HttpRequest&) {
    return Response(401, "{\"error\":\"invalid_token\"}");
  });
  Outcome outcome;
  proxy_.Start(Request(), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  absl::StatusOr<ProxyResult> result = outcome.result();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->response.status, 401);
  EXPECT_EQ(result->response.body, "{\"error\":\"invalid_token\"}");
  EXPECT_EQ(result->attempts, 2);
  EXPECT_THAT(tokens_.invalidated(), ElementsAre(kToken1));
  EXPECT_EQ(tokens_.await_count(), 2);
  EXPECT_EQ(http_.requests().size(), 2u);
}

TEST_F(ProxyTest, ForbiddenIsReturnedWithoutRetry) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  http_.SetHandler([](const HttpRequest&) { return Response(403); });
  Outcome outcome;
  proxy_.Start(Request(), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  ASSERT_THAT(outcome.result(), IsOk());
  EXPECT_EQ(outcome.result()->response.status, 403);
  EXPECT_THAT(tokens_.invalidated(), IsEmpty());
  EXPECT_EQ(http_.requests().size(), 1u);
}

TEST_F(ProxyTest, TokenErrorIsTheCallsError) {
  tokens_.AnswerNext(absl::FailedPreconditionError("bad client secret"));
  Outcome outcome;
  proxy_.Start(Request(), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ProxyTest, IdempotentMethodIsRetriedOnUnavailableUpToMaxAttempts) {
  for (const char* token : {kToken1, kToken2, kToken3}) {
    tokens_.AnswerNext(MakeTestToken(token));
  }
  FailEveryRequest(absl::UnavailableError("connection refused"));
  Outcome outcome;
  proxy_.Start(Request("GET"), outcome.Callback());

  ASSERT_TRUE(outcome.Wait()) << "the proxy did not finish";
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(http_.requests().size(), 3u);
  // Each attempt asks for the token again (it may have been refreshed).
  EXPECT_EQ(tokens_.await_count(), 3);
  EXPECT_EQ(outcome.calls(), 1);
}

TEST_F(ProxyTest, RetryAfterUnavailableCanSucceed) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  tokens_.AnswerNext(MakeTestToken(kToken1));
  int answered = 0;
  http_.SetHandler(
      [&answered](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        if (answered++ == 0) return absl::UnavailableError("reset");
        return Response(200, "{}");
      });
  Outcome outcome;
  proxy_.Start(Request("DELETE"), outcome.Callback());

  ASSERT_TRUE(outcome.Wait()) << "the proxy did not finish";
  ASSERT_THAT(outcome.result(), IsOk());
  EXPECT_EQ(outcome.result()->response.status, 200);
  EXPECT_EQ(outcome.result()->attempts, 2);
}

TEST_F(ProxyTest, PostIsNotRetriedOnUnavailable) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  FailEveryRequest(absl::UnavailableError("connection reset"));
  Outcome outcome;
  proxy_.Start(Request("POST"), outcome.Callback());

  // Not retried: finished inline, no timer involved.
  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(http_.requests().size(), 1u);
  EXPECT_EQ(tokens_.await_count(), 1);
}

TEST_F(ProxyTest, NoRetryWhenTheBackoffWouldPassTheDeadline) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  ProxyRequest request = Request("GET");
  absl::Time deadline = request.deadline;
  // The attempt fails when the caller's deadline is reached: any delay
  // would end past it.
  http_.SetHandler(
      [this, deadline](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        clock_.Set(deadline);
        return absl::UnavailableError("connection refused");
      });
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(http_.requests().size(), 1u);
}

TEST_F(ProxyTest, EachAttemptIsBoundedByTheDeadlineAndTheRequestTimeout) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  tokens_.AnswerNext(MakeTestToken(kToken1));
  http_.SetHandler([](const HttpRequest&) { return Response(200); });
  ProxyRequest near = Request();
  near.deadline = clock_.Now() + absl::Seconds(5);
  Outcome first;
  proxy_.Start(std::move(near), first.Callback());
  ProxyRequest far = Request();
  far.deadline = clock_.Now() + absl::Hours(1);
  Outcome second;
  proxy_.Start(std::move(far), second.Callback());

  std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].timeout, absl::Seconds(5));
  EXPECT_EQ(sent[1].timeout, absl::Seconds(30));
  EXPECT_EQ(first.calls(), 1);
  EXPECT_EQ(second.calls(), 1);
}

TEST_F(ProxyTest, DeadlinePassedWhileWaitingForTheToken) {
  ProxyRequest request = Request();
  absl::Time deadline = request.deadline;
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());
  ASSERT_EQ(tokens_.parked_count(), 1u);

  clock_.Set(deadline);
  ASSERT_TRUE(tokens_.CompleteParked(MakeTestToken(kToken1)));
  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ProxyTest, UpstreamTimeoutIsDeadlineExceededAndNotRetried) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  FailEveryRequest(absl::DeadlineExceededError("timed out after 30 s"));
  Outcome outcome;
  proxy_.Start(Request("GET"), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                         HasSubstr("did not answer in time")));
  EXPECT_EQ(http_.requests().size(), 1u);
}

TEST_F(ProxyTest, CancelWhileWaitingForTheTokenWithdrawsTheWaiter) {
  Outcome outcome;
  std::shared_ptr<ProxyCall> call = proxy_.Start(Request(), outcome.Callback());
  ASSERT_EQ(tokens_.parked_count(), 1u);
  EXPECT_EQ(outcome.calls(), 0);

  call->Cancel();
  EXPECT_EQ(tokens_.withdrawn_count(), 1);
  EXPECT_EQ(tokens_.parked_count(), 0u);
  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kCancelled));

  // Nothing is left to complete, and a second Cancel() changes nothing.
  EXPECT_FALSE(tokens_.CompleteParked(MakeTestToken(kToken1)));
  call->Cancel();
  EXPECT_EQ(outcome.calls(), 1);
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ProxyTest, CancelDuringTheHttpExchangeCancelsTheRequest) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  Outcome outcome;
  std::shared_ptr<ProxyCall> call = proxy_.Start(Request(), outcome.Callback());
  ASSERT_EQ(http_.pending_count(), 1u);
  EXPECT_EQ(outcome.calls(), 0);

  call->Cancel();
  // The fake completes a request only when it is cancelled by its id.
  EXPECT_EQ(http_.pending_count(), 0u);
  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kCancelled));
  call->Cancel();
  EXPECT_EQ(outcome.calls(), 1);
  EXPECT_EQ(tokens_.withdrawn_count(), 0);
}

TEST_F(ProxyTest, CancelDuringTheBackoffEndsTheCall) {
  ProxyOptions options = Options();
  // A retry that would not run during the test.
  options.backoff_base = absl::Hours(24 * 365);
  options.backoff_max = absl::Hours(24 * 365);
  proxy_.SetOptions(options);
  tokens_.AnswerNext(MakeTestToken(kToken1));
  FailEveryRequest(absl::UnavailableError("connection refused"));
  ProxyRequest request = Request("GET");
  request.deadline = absl::InfiniteFuture();
  Outcome outcome;
  std::shared_ptr<ProxyCall> call =
      proxy_.Start(std::move(request), outcome.Callback());
  EXPECT_EQ(outcome.calls(), 0) << "waiting for the retry";

  call->Cancel();
  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(http_.requests().size(), 1u);
  EXPECT_EQ(tokens_.await_count(), 1);
}

TEST_F(ProxyTest, TokenIsScrubbedFromAUnaryAnswer) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  // An endpoint that echoes the request's headers.
  http_.SetHandler([](const HttpRequest& request) {
    const std::string* auth = Authorization(request);
    HttpResponse response =
        Response(200, absl::StrCat("{\"authorization\":\"", *auth, "\"}"));
    response.headers.emplace_back("X-Echo-Authorization", *auth);
    return response;
  });
  Outcome outcome;
  proxy_.Start(Request(), outcome.Callback());

  ASSERT_EQ(outcome.calls(), 1);
  absl::StatusOr<ProxyResult> result = outcome.result();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->response.body, absl::StrCat("{\"authorization\":\"Bearer ",
                                                kTokenRemovedMarker, "\"}"));
  const std::string* echoed =
      FindHeader(result->response.headers, "X-Echo-Authorization");
  ASSERT_NE(echoed, nullptr);
  EXPECT_THAT(*echoed, Not(HasSubstr(kToken1)));
  EXPECT_EQ(proxy_.tokens_scrubbed(), 2);
}

TEST_F(ProxyTest, TokenSplitAcrossStreamedPiecesIsScrubbed) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  auto stream = std::make_shared<RecordingBodyStream>();
  ProxyRequest request = Request();
  request.stream = stream;
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());
  std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_NE(sent[0].body_stream, nullptr);

  HttpBodyStream& upstream = *sent[0].body_stream;
  upstream.OnHeaders(200, {{"Content-Type", "text/plain"},
                           {"X-Echo", absl::StrCat("Bearer ", kToken1)}});
  // "secret-token-1" in three pieces, one of them a single byte.
  upstream.OnData("before Bearer secr");
  upstream.OnData("e");
  upstream.OnData("t-token-1 after; and a near miss: secret-tok");
  ASSERT_TRUE(http_.CompleteNext(Response(200)));

  ASSERT_EQ(outcome.calls(), 1);
  ASSERT_THAT(outcome.result(), IsOk());
  EXPECT_THAT(stream->statuses(), ElementsAre(200));
  EXPECT_EQ(stream->body(),
            absl::StrCat("before Bearer ", kTokenRemovedMarker,
                         " after; and a near miss: secret-tok"));
  HttpHeaders headers = stream->headers();  // FindHeader points into it.
  const std::string* echoed = FindHeader(headers, "X-Echo");
  ASSERT_NE(echoed, nullptr);
  EXPECT_EQ(*echoed, absl::StrCat("Bearer ", kTokenRemovedMarker));
  EXPECT_EQ(proxy_.tokens_scrubbed(), 2);
}

TEST_F(ProxyTest, StreamedUnauthorizedIsNotForwardedBeforeTheRetry) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  tokens_.AnswerNext(MakeTestToken(kToken2));
  auto stream = std::make_shared<RecordingBodyStream>();
  ProxyRequest request = Request();
  request.stream = stream;
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());

  ASSERT_EQ(http_.requests().size(), 1u);
  http_.requests()[0].body_stream->OnHeaders(401, {});
  http_.requests()[0].body_stream->OnData("{\"error\":\"invalid_token\"}");
  ASSERT_TRUE(http_.CompleteNext(Response(401)));
  EXPECT_THAT(tokens_.invalidated(), ElementsAre(kToken1));

  ASSERT_EQ(http_.requests().size(), 2u);
  http_.requests()[1].body_stream->OnHeaders(200, {});
  http_.requests()[1].body_stream->OnData("fresh");
  ASSERT_TRUE(http_.CompleteNext(Response(200)));

  ASSERT_EQ(outcome.calls(), 1);
  ASSERT_THAT(outcome.result(), IsOk());
  EXPECT_EQ(outcome.result()->attempts, 2);
  EXPECT_THAT(stream->statuses(), ElementsAre(200));
  EXPECT_EQ(stream->body(), "fresh");
}

TEST_F(ProxyTest, CallStreamIsNotRetriedAfterBytesWereForwarded) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  auto stream = std::make_shared<RecordingBodyStream>();
  ProxyRequest request = Request("GET");
  request.stream = stream;
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());

  ASSERT_EQ(http_.requests().size(), 1u);
  http_.requests()[0].body_stream->OnHeaders(200, {});
  http_.requests()[0].body_stream->OnData("partial");
  ASSERT_TRUE(http_.CompleteNext(absl::UnavailableError("connection reset")));

  ASSERT_EQ(outcome.calls(), 1);
  EXPECT_THAT(outcome.result(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(http_.requests().size(), 1u);
  EXPECT_EQ(tokens_.await_count(), 1);
  EXPECT_EQ(stream->body(), "partial");
}

TEST_F(ProxyTest, CallStreamIsRetriedWhenNothingWasForwarded) {
  tokens_.AnswerNext(MakeTestToken(kToken1));
  tokens_.AnswerNext(MakeTestToken(kToken2));
  auto stream = std::make_shared<RecordingBodyStream>();
  ProxyRequest request = Request("GET");
  request.stream = stream;
  Outcome outcome;
  proxy_.Start(std::move(request), outcome.Callback());

  ASSERT_TRUE(http_.CompleteNext(absl::UnavailableError("refused")));
  // The retry starts on the timer thread.
  ASSERT_TRUE(PollUntil([&] { return http_.pending_count() == 1; }))
      << "the retry was not sent";
  std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 2u);
  sent[1].body_stream->OnHeaders(200, {});
  sent[1].body_stream->OnData("whole");
  ASSERT_TRUE(http_.CompleteNext(Response(200)));

  ASSERT_TRUE(outcome.Wait());
  ASSERT_THAT(outcome.result(), IsOk());
  EXPECT_EQ(outcome.result()->attempts, 2);
  EXPECT_THAT(stream->statuses(), ElementsAre(200));
  EXPECT_EQ(stream->body(), "whole");
}

}  // namespace
}  // namespace tokenbroker

namespace tokenbroker {
namespace {

// A token answered inline leads to a 401 and a refetch before the first
// FetchToken() has stored its (answered) wait: the refetch's wait must
// stay, not be withdrawn in its place (the CallStream then hung until its
// deadline).
TEST_F(ProxyTest, RefetchStartedInsideAnInlineAnswerIsNotWithdrawn) {
  tokens_.AnswerNext(MakeTestToken(kToken1));  // Inline; the refetch parks.
  http_.SetHandler([](const HttpRequest& request) {
    const std::string* auth = Authorization(request);
    bool fresh = auth != nullptr && *auth == absl::StrCat("Bearer ", kToken2);
    return fresh ? Response(200, "{}") : Response(401);
  });
  Outcome outcome;
  proxy_.Start(Request("GET"), outcome.Callback());

  ASSERT_EQ(tokens_.parked_count(), 1u) << "the refetch waits for a token";
  EXPECT_EQ(tokens_.withdrawn_count(), 0);
  EXPECT_EQ(outcome.calls(), 0);
  ASSERT_TRUE(tokens_.CompleteParked(MakeTestToken(kToken2)));
  ASSERT_EQ(outcome.calls(), 1);
  ASSERT_THAT(outcome.result(), IsOk());
  EXPECT_EQ(outcome.result()->response.status, 200);
}

}  // namespace
}  // namespace tokenbroker
