// TokenBroker.Call against the real emulator over loopback sockets.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::BrokerFixture;
using ::tokenbroker::testing::PollUntil;
using json = nlohmann::json;

constexpr char kOrg[] = "c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f";
constexpr char kOwner[] = "5d0f7a3c-2e1b-4a9d-8c7f-6e5d4c3b2a10";

class CallTest : public BrokerFixture {
 protected:
  grpc::Status Call(
      const pb::CallRequest& request, pb::CallResponse* response,
      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    return stub_->Call(&context, request, response);
  }

  static pb::CallRequest Request(const std::string& method,
                                 const std::string& path,
                                 const std::string& app = "design-center") {
    pb::CallRequest request;
    request.set_app(app);
    request.set_method(method);
    request.set_path(path);
    return request;
  }

  static void AddHeader(pb::CallRequest& request, const std::string& name,
                        const std::string& value) {
    pb::Header* header = request.add_headers();
    header->set_name(name);
    header->set_value(value);
  }

  static std::vector<std::pair<std::string, std::string>> Headers(
      const pb::CallResponse& response, const std::string& name) {
    std::vector<std::pair<std::string, std::string>> found;
    for (const pb::Header& h : response.headers()) {
      if (absl::EqualsIgnoreCase(h.name(), name)) {
        found.emplace_back(h.name(), h.value());
      }
    }
    return found;
  }

  int64_t Requests(const std::string& endpoint) const {
    emulator::Counters counters = emulator_->GetCounters();
    auto it = counters.requests_by_endpoint.find(endpoint);
    return it == counters.requests_by_endpoint.end() ? 0 : it->second;
  }

  // Requests to `endpoint` whose client (the broker) closed the connection
  // while a latency fault held the answer back.
  int64_t Aborted(const std::string& endpoint) const {
    emulator::Counters counters = emulator_->GetCounters();
    auto it = counters.aborted_by_client.find(endpoint);
    return it == counters.aborted_by_client.end() ? 0 : it->second;
  }
};

TEST_F(CallTest, RoundTripsEveryMethodWithHeadersAndBody) {
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    pb::CallRequest request =
        Request(method, "/_emulator/authed-echo/things/1?x=1&y=a%20b");
    AddHeader(request, "X-Trace", "first");
    AddHeader(request, "X-Trace", "second");
    AddHeader(request, "Content-Type", "application/json");
    AddHeader(request, "X-ORGANIZATION-ID", kOrg);
    std::string body = method == std::string("GET") ? ""
                       : method == std::string("DELETE")
                           ? ""
                           : absl::StrCat("{\"method\":\"", method, "\"}");
    request.set_body(body);
    pb::CallResponse response;
    grpc::Status status = Call(request, &response);
    ASSERT_TRUE(status.ok()) << method << ": " << status.error_message();
    EXPECT_EQ(response.status(), 200) << response.body();
    json echo = json::parse(response.body());
    EXPECT_EQ(echo["method"], method);
    EXPECT_EQ(echo["path"], "/_emulator/authed-echo/things/1");
    EXPECT_EQ(echo["body"], body);
    EXPECT_EQ(echo["client_id"], "design-center-app");
    std::vector<std::string> traces;
    bool org_seen = false;
    for (const auto& header : echo["headers"]) {
      if (header[0] == "X-Trace") traces.push_back(header[1]);
      if (header[0] == "X-ORGANIZATION-ID" && header[1] == kOrg) {
        org_seen = true;
      }
    }
    EXPECT_THAT(traces, ElementsAre("first", "second"));
    EXPECT_TRUE(org_seen);
  }
}

TEST_F(CallTest, HeadReturnsHeadersOnly) {
  pb::CallResponse response;
  grpc::Status status =
      Call(Request("HEAD", "/_emulator/authed-echo/x"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), 200);
  EXPECT_TRUE(response.body().empty());
}

TEST_F(CallTest, ResponseDropsCookiesAndHopByHopKeepsRepeatedHeaders) {
  pb::CallResponse response;
  grpc::Status status = Call(
      Request(
          "GET",
          "/_emulator/echo/h?add_header=Link:%3Ca%3E&add_header=Set-Cookie:"
          "s%3D1&add_header=Link:%3Cb%3E&add_header=Keep-Alive:timeout%3D5"),
      &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Headers(response, "Link"),
              ElementsAre(std::pair<std::string, std::string>{"Link", "<a>"},
                          std::pair<std::string, std::string>{"Link", "<b>"}));
  EXPECT_TRUE(Headers(response, "Set-Cookie").empty());
  EXPECT_TRUE(Headers(response, "Keep-Alive").empty());
  EXPECT_TRUE(Headers(response, "Connection").empty());
}

TEST_F(CallTest, WalkthroughScopeRemovedGives403AfterOneRefresh) {
  pb::CallRequest request =
      Request("GET", "/designcenter/api-designer/projects");
  AddHeader(request, "X-ORGANIZATION-ID", kOrg);
  AddHeader(request, "X-OWNER-ID", kOwner);
  pb::CallResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  EXPECT_EQ(response.status(), 200);
  EXPECT_THAT(response.body(), HasSubstr("Orders API"));
  int64_t tokens_before = TokenRequests("design-center-app");

  ASSERT_TRUE(
      emulator_
          ->SetAppScopes("design-center-app", {{"view:environment", kOrg, ""},
                                               {"read:exchange", "", ""}})
          .ok());
  int64_t projects_before = Requests("designcenter_projects");
  response.Clear();
  grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // 401 with the old token -> one fresh token -> 403 returned as data.
  EXPECT_EQ(response.status(), 403);
  EXPECT_THAT(response.body(), HasSubstr("view:design_center"));
  EXPECT_EQ(TokenRequests("design-center-app"), tokens_before + 1);
  EXPECT_EQ(Requests("designcenter_projects"), projects_before + 2);

  // The 403 does not trigger another fetch.
  response.Clear();
  ASSERT_TRUE(Call(request, &response).ok());
  EXPECT_EQ(response.status(), 403);
  EXPECT_EQ(TokenRequests("design-center-app"), tokens_before + 1);
}

TEST_F(CallTest, SecondUnauthorizedIsReturnedWithoutLooping) {
  // The echo answers 401 whatever the token: retried once, then returned.
  pb::CallResponse response;
  int64_t before = TokenRequests("design-center-app");
  grpc::Status status =
      Call(Request("GET", "/_emulator/echo/x?status=401"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), 401);
  EXPECT_LE(TokenRequests("design-center-app"), before + 2);
  EXPECT_EQ(Requests("echo"), 2);
}

TEST_F(CallTest, HostileRequestsAreRejectedBeforeAnyTraffic) {
  pb::CallResponse warm;
  ASSERT_TRUE(Call(Request("GET", "/_emulator/echo/warm"), &warm).ok());
  emulator::Counters before = emulator_->GetCounters();
  struct Hostile {
    std::string method, path, header;
  };
  for (const Hostile& h :
       std::vector<Hostile>{{"GET", "http://evil.example/", ""},
                            {"GET", "//evil.example/x", ""},
                            {"GET", "/a/%2e%2e/b", ""},
                            {"GET", "/a/%252e%252e/b", ""},
                            {"GET", "/a%2fb", ""},
                            {"GET", "/a\r\nHost: evil", ""},
                            {"TRACE", "/x", ""},
                            {"GET", "/x", "Authorization"},
                            {"GET", "/x", "Host"},
                            {"GET", "/x", "Transfer-Encoding"}}) {
    pb::CallRequest request = Request(h.method, h.path);
    if (!h.header.empty()) AddHeader(request, h.header, "x");
    pb::CallResponse response;
    grpc::Status status = Call(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << h.method << " " << h.path << " " << h.header;
  }
  emulator::Counters after = emulator_->GetCounters();
  EXPECT_EQ(after.requests_by_endpoint, before.requests_by_endpoint);
  EXPECT_EQ(after.connections, before.connections);
}

TEST_F(CallTest, BodyLimits) {
  pb::CallRequest big = Request("POST", "/_emulator/echo/x");
  big.set_body(std::string((8 << 20) + 1, 'a'));
  pb::CallResponse response;
  grpc::Status status = Call(big, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Requests("echo"), 0);

  status = Call(Request("GET", "/_emulator/echo/x?bytes=33554433"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_EQ(response.body().size(), 0u);

  status = Call(Request("GET", "/_emulator/echo/x?bytes=1048576"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.body().size(), 1048576u);
}

TEST_F(CallTest, CallerDeadlineBoundsTheCall) {
  emulator::Fault slow;
  slow.endpoint = "echo";
  slow.kind = emulator::FaultKind::kLatency;
  slow.latency_ms = 1000;
  emulator_->AddFault(slow);
  pb::CallResponse response;
  grpc::Status status = Call(Request("GET", "/_emulator/echo/slow"), &response,
                             std::chrono::milliseconds(300));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

// Upstream requests time out long after PollUntil's bound, so that only a
// cancellation can end one within it.
class CallCancelTest : public CallTest {
 protected:
  std::string ExtraYaml() const override {
    return "upstream:\n  request_timeout: 600s\n";
  }
};

TEST_F(CallCancelTest, CancelledCallCancelsTheUpstreamTransfer) {
  // Far longer than the test: the emulator answers only if the broker keeps
  // the transfer open, and counts an abort when the broker closes it.
  emulator::Fault slow;
  slow.endpoint = "echo";
  slow.kind = emulator::FaultKind::kLatency;
  slow.latency_ms = 300000;
  emulator_->AddFault(slow);
  grpc::ClientContext context;
  pb::CallRequest request = Request("GET", "/_emulator/echo/slow");
  pb::CallResponse response;
  absl::Notification done;
  grpc::Status status;
  stub_->async()->Call(&context, &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  // Cancel once the request has reached the emulator.
  bool arrived = PollUntil([&] { return Requests("echo") == 1; });
  EXPECT_TRUE(arrived) << "the Call reached the emulator";
  context.TryCancel();
  done.WaitForNotification();
  ASSERT_TRUE(arrived);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  // gRPC reports CANCELLED to this client whatever the broker does; the
  // emulator shows that the broker dropped the upstream transfer too.
  EXPECT_TRUE(PollUntil([&] { return Aborted("echo") == 1; }))
      << "the emulator saw the broker close the upstream connection";
  EXPECT_EQ(Requests("echo"), 1);
}

TEST_F(CallTest, UpstreamResetIsRetriedForIdempotentMethodsThenUnavailable) {
  emulator::Fault reset;
  reset.endpoint = "echo";
  reset.kind = emulator::FaultKind::kReset;
  emulator_->AddFault(reset);
  pb::CallResponse response;
  grpc::Status status = Call(Request("GET", "/_emulator/echo/r"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("127.0.0.1"));
  // Three attempts by the broker. libcurl itself resends once on a fresh
  // connection when a reused one dies before answering, hence the range.
  int64_t get_requests = Requests("echo");
  EXPECT_GE(get_requests, 3);
  EXPECT_LE(get_requests, 6);

  status = Call(Request("POST", "/_emulator/echo/r"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  // Not retried by the broker: one attempt (plus libcurl's own resend).
  EXPECT_LE(Requests("echo") - get_requests, 2);

  // One reset, then success: the retry hides it.
  emulator_->ClearFaults();
  reset.count = 1;
  emulator_->AddFault(reset);
  status = Call(Request("GET", "/_emulator/echo/r"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), 200);
}

TEST_F(CallTest, Upstream503IsDataNotAnError) {
  emulator::Fault busy;
  busy.endpoint = "echo";
  busy.kind = emulator::FaultKind::kRateLimit503;
  busy.count = 1;
  emulator_->AddFault(busy);
  pb::CallResponse response;
  grpc::Status status = Call(Request("GET", "/_emulator/echo/b"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), 503);
  EXPECT_FALSE(Headers(response, "X-RateLimit-Reset").empty());
}

TEST_F(CallTest, ConnectionsToAnypointAreReused) {
  pb::CallResponse response;
  ASSERT_TRUE(Call(Request("GET", "/_emulator/echo/warm"), &response).ok());
  int64_t before = emulator_->GetCounters().connections;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(Call(Request("GET", "/_emulator/echo/again"), &response).ok());
  }
  EXPECT_LE(emulator_->GetCounters().connections - before, 2);
}

TEST_F(CallTest, RouteAndAppErrors) {
  pb::CallResponse response;
  grpc::Status status = Call(Request("GET", "/x", "no-such-app"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status = Call(Request("GET", "/x", ""), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::CallRequest scoped = Request("GET", "/x", "exchange-reader");
  scoped.add_scopes("view:design_center");
  status = Call(scoped, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

// Reads a whole CallStream; returns the status, first message and body.
struct StreamResult {
  grpc::Status status;
  pb::CallStreamResponse head;
  std::string body;
  int messages = 0;
};

// Reads a whole CallStream; `after_first` runs once the first message has
// arrived, before any other is read.
StreamResult ReadStream(pb::TokenBroker::Stub& stub,
                        const pb::CallRequest& request,
                        const std::function<void()>& after_first = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  auto reader = stub.CallStream(&context, request);
  StreamResult result;
  pb::CallStreamResponse message;
  while (reader->Read(&message)) {
    EXPECT_LE(message.body_chunk().size(), 64u << 10);
    if (result.messages++ == 0) {
      result.head = message;
      if (after_first) after_first();
    }
    result.body += message.body_chunk();
  }
  result.status = reader->Finish();
  return result;
}

TEST_F(CallTest, CallStreamDeliversALargeBodyInPieces) {
  pb::CallRequest request =
      Request("GET", "/_emulator/authed-echo/asset?bytes=20000000");
  // This reader stops after the first message until the broker has paused
  // the upstream transfer (its queue reached the high-water mark), which
  // keeps the broker's memory bounded whatever the answer's size.
  bool paused = false;
  StreamResult result = ReadStream(*stub_, request, [&] {
    paused = PollUntil([&] {
      std::string text = broker_->metrics().Serialize();
      const std::string series = "\ntokenbroker_call_stream_pauses_total ";
      size_t at = text.find(series);
      return at != std::string::npos &&
             text.compare(at + series.size(), 2, "0\n") != 0;
    });
  });
  EXPECT_TRUE(paused) << "the broker paused the upstream transfer";
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.head.status(), 200);
  EXPECT_GT(result.head.headers_size(), 0);
  EXPECT_EQ(result.body.size(), 20000000u);
  EXPECT_EQ(result.body.find_first_not_of('x'), std::string::npos);
  EXPECT_GT(result.messages, 100);  // In pieces of at most 64 KiB.
}

TEST_F(CallTest, CallStreamAppliesTheSameValidationAndLimits) {
  StreamResult hostile =
      ReadStream(*stub_, Request("GET", "/a/%2e%2e/accounts"));
  EXPECT_EQ(hostile.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(hostile.messages, 0);

  StreamResult too_large =
      ReadStream(*stub_, Request("GET", "/_emulator/echo/x?bytes=33554433"));
  EXPECT_EQ(too_large.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << too_large.status.error_message();
}

TEST_F(CallTest, CallStreamRetriesA401WithAFreshToken) {
  pb::CallRequest request =
      Request("GET", "/designcenter/api-designer/projects");
  AddHeader(request, "X-ORGANIZATION-ID", kOrg);
  AddHeader(request, "X-OWNER-ID", kOwner);
  StreamResult first = ReadStream(*stub_, request);
  ASSERT_TRUE(first.status.ok());
  EXPECT_EQ(first.head.status(), 200);
  // Revoking the app's tokens makes the cached one get a 401 upstream.
  ASSERT_TRUE(emulator_->RevokeApp("design-center-app").ok());
  StreamResult second = ReadStream(*stub_, request);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.head.status(), 200);
  EXPECT_THAT(second.body, HasSubstr("Orders API"));
}

}  // namespace
}  // namespace tokenbroker

namespace tokenbroker {
namespace {

// An endpoint that echoes the request (here the emulator's echo, which
// answers with every request header, Authorization included) must not hand
// the caller the token the broker injected.
TEST_F(CallTest, TheInjectedTokenIsScrubbedFromAnswers) {
  pb::GetTokenResponse token;
  ASSERT_TRUE(GetToken("design-center", &token).ok());
  const std::string& secret = token.access_token();

  pb::CallResponse response;
  grpc::Status status = Call(Request("GET", "/_emulator/echo/x"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.body().find(secret), std::string::npos);
  EXPECT_THAT(response.body(),
              HasSubstr("Bearer [token removed by the broker]"));

  StreamResult streamed =
      ReadStream(*stub_, Request("GET", "/_emulator/echo/y"));
  ASSERT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  EXPECT_EQ(streamed.body.find(secret), std::string::npos);
  EXPECT_THAT(streamed.body, HasSubstr("Bearer [token removed by the broker]"));
  EXPECT_THAT(broker_->metrics().Serialize(),
              HasSubstr("tokenbroker_call_tokens_scrubbed_total 2"));
}

}  // namespace
}  // namespace tokenbroker
