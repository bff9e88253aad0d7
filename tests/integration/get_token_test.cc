// GetToken, WatchToken, ListApps and health against the real emulator over
// loopback sockets.

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "service/cache/token_cache.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::BrokerFixture;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::PollUntil;

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixNanos(
      google::protobuf::util::TimeUtil::TimestampToNanoseconds(ts));
}

class GetTokenTest : public BrokerFixture {};

// The broker on a fake clock with no refresher thread: a test moves time and
// runs due refreshes itself, so what is due when does not depend on load.
// Upstream requests to the emulator still take real time; tests wait for
// their outcome with PollUntil. The clock starts at the real time, so that
// the callers' gRPC deadlines stay meaningful.
class FakeClockGetTokenTest : public BrokerFixture {
 protected:
  FakeClockGetTokenTest() : clock_(absl::Now()) {
    deps_.clock = &clock_;
    deps_.start_refresher = false;
  }

  // The cache entry of `app` (requested with no scopes).
  TokenEntryInfo Entry(const std::string& app) {
    for (TokenEntryInfo& info : broker_->cache().Snapshot()) {
      if (info.app == app && info.scopes.empty()) return info;
    }
    return TokenEntryInfo();
  }

  // Sets the clock to the earliest scheduled refresh or retry and starts it.
  void RunNextDue() {
    absl::Time due = broker_->cache().NextDue();
    ASSERT_NE(due, absl::InfiniteFuture()) << "nothing is scheduled";
    if (due > clock_.Now()) clock_.Set(due);
    broker_->cache().RunDue();
  }

  FakeClock clock_;
};

TEST_F(GetTokenTest, ColdFetchReturnsAWorkingToken) {
  pb::GetTokenResponse response;
  grpc::Status status = GetToken("design-center", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.access_token().empty());
  EXPECT_EQ(response.token_type(), "Bearer");
  EXPECT_EQ(response.app(), "design-center");
  absl::Duration left = ToAbslTime(response.expires_at()) - absl::Now();
  EXPECT_GT(left, absl::Minutes(55));
  EXPECT_LE(left, absl::Hours(1));
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
}

TEST_F(GetTokenTest, HitMakesNoUpstreamRequest) {
  pb::GetTokenResponse first;
  ASSERT_TRUE(GetToken("design-center", &first).ok());
  int64_t before = TokenRequests("design-center-app");
  for (int i = 0; i < 50; ++i) {
    pb::GetTokenResponse again;
    ASSERT_TRUE(GetToken("design-center", &again).ok());
    EXPECT_EQ(again.access_token(), first.access_token());
  }
  EXPECT_EQ(TokenRequests("design-center-app"), before);
}

TEST_F(GetTokenTest, ConcurrentColdCallsMakeOneUpstreamRequest) {
  // A slow token endpoint keeps the single fetch in flight while the calls
  // arrive; calls arriving after it completes are hits anyway.
  emulator::Fault slow;
  slow.kind = emulator::FaultKind::kLatency;
  slow.latency_ms = 300;
  slow.count = 1;
  emulator_->AddFault(slow);

  constexpr int kCalls = 200;
  struct Call {
    grpc::ClientContext context;
    pb::GetTokenRequest request;
    pb::GetTokenResponse response;
    grpc::Status status;
  };
  std::vector<Call> calls(kCalls);
  std::atomic<int> remaining{kCalls};
  absl::Notification all_done;
  for (Call& call : calls) {
    call.request.set_app("design-center");
    call.context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(30));
    stub_->async()->GetToken(&call.context, &call.request, &call.response,
                             [&call, &remaining, &all_done](grpc::Status s) {
                               call.status = std::move(s);
                               if (--remaining == 0) all_done.Notify();
                             });
  }
  all_done.WaitForNotification();
  std::set<std::string> tokens;
  for (const Call& call : calls) {
    ASSERT_TRUE(call.status.ok()) << call.status.error_message();
    tokens.insert(call.response.access_token());
  }
  EXPECT_EQ(tokens.size(), 1u);
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
  EXPECT_GT(broker_->cache().stats().waits, 1);
}

TEST_F(FakeClockGetTokenTest,
       ShortLivedTokenIsRefreshedBeforeExpiryWithoutWaiting) {
  // 60 s: short enough that a refresh point leaves less than the default
  // min_ttl (30 s), so answers rely on the min_ttl cap, not on a long life.
  emulator_->SetTokenLifetime(60);
  pb::GetTokenResponse first;
  ASSERT_TRUE(GetToken("design-center", &first).ok());
  ASSERT_EQ(broker_->cache().stats().waits, 1);

  std::string previous = first.access_token();
  absl::Time previous_expiry = ToAbslTime(first.expires_at());
  for (int refresh = 1; refresh <= 2; ++refresh) {
    SCOPED_TRACE(absl::StrCat("refresh ", refresh));
    ASSERT_LT(broker_->cache().NextDue(), previous_expiry);
    RunNextDue();
    // Whether or not the refresh has completed yet, a caller gets a valid
    // token at once.
    pb::GetTokenResponse during;
    ASSERT_TRUE(GetToken("design-center", &during).ok());
    EXPECT_GT(ToAbslTime(during.expires_at()), clock_.Now());
    ASSERT_TRUE(PollUntil([&] {
      return Entry("design-center").refreshes == refresh + 1;
    })) << "the background refresh completed";

    // The replacement arrived while the previous token was still valid.
    pb::GetTokenResponse response;
    ASSERT_TRUE(GetToken("design-center", &response).ok());
    EXPECT_LT(clock_.Now(), previous_expiry);
    EXPECT_NE(response.access_token(), previous);
    EXPECT_GT(ToAbslTime(response.expires_at()), previous_expiry);
    previous = response.access_token();
    previous_expiry = ToAbslTime(response.expires_at());
  }
  EXPECT_EQ(TokenRequests("design-center-app"), 3);
  EXPECT_EQ(broker_->cache().stats().waits, 1);  // Only the cold call.
}

TEST_F(FakeClockGetTokenTest,
       ServesCachedTokenWhileTokenEndpointFailsThenUnavailable) {
  emulator_->SetTokenLifetime(60);
  pb::GetTokenResponse first;
  ASSERT_TRUE(GetToken("design-center", &first).ok());
  const absl::Time expiry = ToAbslTime(first.expires_at());
  emulator::Fault down;
  down.kind = emulator::FaultKind::kStatus500;
  emulator_->AddFault(down);

  // The refresh ahead fails; the token is still served.
  RunNextDue();
  ASSERT_TRUE(PollUntil([&] { return Entry("design-center").failures == 1; }))
      << "the background refresh failed";
  pb::GetTokenResponse response;
  grpc::Status status = GetToken("design-center", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.access_token(), first.access_token());

  // Below the caller's min_ttl but not expired: the call tries upstream once
  // more, which fails, and still gets the token.
  clock_.Set(expiry - absl::Seconds(1));
  status = GetToken("design-center", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.access_token(), first.access_token());
  EXPECT_EQ(TokenRequests("design-center-app"), 3);
  EXPECT_EQ(Entry("design-center").failures, 2);

  // Expired and still failing: UNAVAILABLE with the cause. Past every
  // backoff so far, so the call tries upstream (a third failure).
  clock_.Set(expiry + absl::Seconds(10));
  response.Clear();
  status = GetToken("design-center", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("500"));
  EXPECT_TRUE(response.access_token().empty());
  EXPECT_EQ(TokenRequests("design-center-app"), 4);

  // Recovers once the endpoint works again, with no admin refresh: the
  // background retry fetches a token (one more upstream request) and
  // callers get it.
  emulator_->ClearFaults();
  RunNextDue();
  ASSERT_TRUE(PollUntil([&] { return Entry("design-center").valid; }))
      << "the background retry fetched a token";
  EXPECT_EQ(TokenRequests("design-center-app"), 5);
  status = GetToken("design-center", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(response.access_token(), first.access_token());
  EXPECT_GT(ToAbslTime(response.expires_at()), clock_.Now());
  EXPECT_EQ(TokenRequests("design-center-app"), 5);
}

TEST_F(GetTokenTest, InvalidClientIsFailedPreconditionWithBoundedTries) {
  for (int i = 0; i < 30; ++i) {
    pb::GetTokenResponse response;
    grpc::Status status = GetToken("wrong-secret", &response);
    ASSERT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("invalid_client"));
    EXPECT_THAT(status.error_message(), Not(HasSubstr("not-the-secret")));
  }
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
}

TEST_F(GetTokenTest, RetryAfterIsHonoured) {
  emulator::Fault limited;
  limited.kind = emulator::FaultKind::kTooMany429;
  limited.retry_after_seconds = 120;
  limited.count = 1;
  emulator_->AddFault(limited);

  pb::GetTokenResponse response;
  grpc::Status status = GetToken("exchange-reader", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  absl::Time failed_at = absl::Now();
  for (int i = 0; i < 20; ++i) {
    status = GetToken("exchange-reader", &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(status.error_message(), HasSubstr("next upstream try"));
  }
  EXPECT_EQ(TokenRequests("exchange-reader"), 1);

  grpc::ClientContext context;
  pb::ListAppsResponse apps;
  ASSERT_TRUE(admin_->ListApps(&context, pb::ListAppsRequest(), &apps).ok());
  bool found = false;
  for (const pb::AppInfo& app : apps.apps()) {
    if (app.name() != "exchange-reader") continue;
    ASSERT_EQ(app.tokens_size(), 1);
    EXPECT_GE(ToAbslTime(app.tokens(0).next_refresh()),
              failed_at + absl::Seconds(115));
    EXPECT_EQ(app.tokens(0).failures(), 1);
    found = true;
  }
  EXPECT_TRUE(found);
}

TEST_F(GetTokenTest, BadRequestsGetClearErrorsAndServiceKeepsRunning) {
  pb::GetTokenResponse response;
  // An unknown app looks like one the caller has no grant for.
  grpc::Status status = GetToken("no-such-app", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("no-such-app"));

  status = GetToken("bad name!", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  status = GetToken("exchange-reader", &response, {"view:design_center"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("view:design_center"));

  grpc::ClientContext context;
  pb::GetTokenRequest request;
  request.set_app("design-center");
  request.set_min_ttl_seconds(-5);
  status = stub_->GetToken(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // An empty app picks the narrowest app covering the scopes.
  status = GetToken("", &response, {"read:exchange"});
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.app(), "exchange-reader");

  grpc::ClientContext call_context;
  pb::CallResponse call_response;
  status = stub_->Call(&call_context, pb::CallRequest(), &call_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(FakeClockGetTokenTest, WatchStreamsCurrentThenRefreshedTokens) {
  emulator_->SetTokenLifetime(60);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  pb::WatchTokenRequest request;
  request.set_app("design-center");
  auto reader = stub_->WatchToken(&context, request);
  pb::GetTokenResponse first, second;
  ASSERT_TRUE(reader->Read(&first));
  RunNextDue();  // The refresh ahead.
  ASSERT_TRUE(reader->Read(&second));
  EXPECT_NE(first.access_token(), second.access_token());
  EXPECT_GT(ToAbslTime(second.expires_at()), ToAbslTime(first.expires_at()));
  context.TryCancel();
  while (reader->Read(&second)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GetTokenTest, ListAppsShowsStateButNoSecretOrToken) {
  pb::GetTokenResponse token;
  ASSERT_TRUE(GetToken("design-center", &token).ok());
  grpc::ClientContext context;
  pb::ListAppsResponse apps;
  ASSERT_TRUE(admin_->ListApps(&context, pb::ListAppsRequest(), &apps).ok());
  ASSERT_EQ(apps.apps_size(), 3);
  const pb::AppInfo& dc = apps.apps(0);
  EXPECT_EQ(dc.name(), "design-center");
  EXPECT_EQ(dc.grant_type(), pb::GRANT_TYPE_CLIENT_CREDENTIALS);
  EXPECT_EQ(dc.client_id(), "design-center-app");
  ASSERT_EQ(dc.tokens_size(), 1);
  EXPECT_TRUE(dc.tokens(0).valid());
  EXPECT_EQ(dc.tokens(0).refreshes(), 1);
  EXPECT_EQ(dc.tokens(0).token_fingerprint().size(), 12u);
  std::string dump = apps.DebugString();
  EXPECT_THAT(dump, Not(HasSubstr(token.access_token())));
  EXPECT_THAT(dump, Not(HasSubstr("dc-secret-please-rotate")));
}

TEST_F(GetTokenTest, HealthIsReportedOverallAndPerApp) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  auto check = [&](const std::string& service) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << service << ": " << status.error_message();
    return response.status();
  };
  using grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(check(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(check("anypoint.tokenbroker.v1.TokenBroker"),
            HealthCheckResponse::SERVING);
  EXPECT_EQ(check("app:design-center"), HealthCheckResponse::SERVING);

  pb::GetTokenResponse response;
  EXPECT_FALSE(GetToken("wrong-secret", &response).ok());
  EXPECT_EQ(check("app:wrong-secret"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check("app:design-center"), HealthCheckResponse::SERVING);
}

// The plaintext probe listener for the kubelet's native gRPC probes.
class ProbeTest : public BrokerFixture {
 protected:
  std::string ListenYaml() const override {
    return "listen:\n  grpc: 127.0.0.1:0\n  probe_grpc: 127.0.0.1:0\n"
           "development:\n  insecure_plaintext: true\n";
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Probe(
      const std::string& service) {
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_->probe_port()),
                            grpc::InsecureChannelCredentials());
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << service << ": " << status.error_message();
    return response.status();
  }
};

TEST_F(ProbeTest, ReadinessDropsFirstLivenessStaysWhileDraining) {
  using grpc::health::v1::HealthCheckResponse;
  ASSERT_GT(broker_->probe_port(), 0);
  EXPECT_EQ(Probe("liveness"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Probe("readiness"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Probe(""), HealthCheckResponse::SERVING);

  // The probe port offers nothing but health.
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_->probe_port()),
                          grpc::InsecureChannelCredentials());
  auto probe_stub = pb::TokenBroker::NewStub(channel);
  grpc::ClientContext context;
  pb::GetTokenRequest request;
  request.set_app("design-center");
  pb::GetTokenResponse response;
  EXPECT_EQ(probe_stub->GetToken(&context, request, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  std::thread shutdown(
      [this] { broker_->Shutdown(absl::Seconds(3), absl::Seconds(1)); });
  EXPECT_TRUE(PollUntil([&] {
    return Probe("readiness") != HealthCheckResponse::SERVING;
  })) << "readiness changed once draining began";
  EXPECT_EQ(Probe("readiness"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Probe(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Probe("liveness"), HealthCheckResponse::SERVING);
  shutdown.join();
}

}  // namespace
}  // namespace tokenbroker
