// Open streams and limits against the real emulator: a reload that removes a
// caller's key or grant ends its WatchToken and CallStream streams; streams
// end at their maximum lifetime; Calls cannot starve token fetches; limits
// answer RESOURCE_EXHAUSTED naming the limit; a caller whose deadline covers
// the next backoff try waits for it.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/auth/identity.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::HasSubstr;
using ::tokenbroker::testing::BrokerFixture;
using ::tokenbroker::testing::PollUntil;

constexpr char kWatcherKey[] = "watcher-bearer-key-for-tests";

std::chrono::system_clock::time_point In(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoSeconds(d);
}

// "anonymous" (admin, everything) and "watcher" (a bearer key, design-center
// only); a test changes `watcher_grants_` / `watcher_keyed_` and reloads.
class StreamsTest : public BrokerFixture {
 protected:
  std::string CallersYaml() const override {
    std::string yaml = BrokerFixture::CallersYaml();
    absl::StrAppend(&yaml, "  - name: watcher\n");
    if (watcher_keyed_) {
      absl::StrAppend(&yaml, "    bearer_key_sha256: [", Sha256Hex(kWatcherKey),
                      "]\n");
    } else {
      absl::StrAppend(&yaml, "    bearer_key_sha256: [",
                      Sha256Hex("another-key"), "]\n");
    }
    absl::StrAppend(&yaml, "    grants:\n", watcher_grants_);
    return yaml;
  }

  std::string ExtraYaml() const override { return limits_yaml_; }

  void AsWatcher(grpc::ClientContext* context) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", kWatcherKey));
  }

  void Reload() {
    WriteConfigFile(ConfigYaml());
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(30)));
    pb::ReloadConfigResponse response;
    grpc::Status status =
        admin_->ReloadConfig(&context, pb::ReloadConfigRequest(), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Opens a WatchToken of design-center as "watcher" and reads its first
  // token.
  std::unique_ptr<grpc::ClientReader<pb::GetTokenResponse>> OpenWatch(
      grpc::ClientContext* context) {
    AsWatcher(context);
    context->set_deadline(In(absl::Seconds(60)));
    pb::WatchTokenRequest request;
    request.set_app("design-center");
    auto reader = stub_->WatchToken(context, request);
    pb::GetTokenResponse first;
    EXPECT_TRUE(reader->Read(&first)) << "the watch delivered its first token";
    if (!first.access_token().empty()) {
      tokens_seen_.push_back(first.access_token());
    }
    return reader;
  }

  // Reads until the stream ends and returns its status.
  grpc::Status ReadToEnd(grpc::ClientReader<pb::GetTokenResponse>& reader) {
    pb::GetTokenResponse more;
    while (reader.Read(&more)) tokens_seen_.push_back(more.access_token());
    return reader.Finish();
  }

  int64_t Metric(const std::string& line_prefix) {
    std::string text = broker_->metrics().Serialize();
    size_t at = text.find(line_prefix);
    if (at == std::string::npos) return -1;
    return std::stoll(text.substr(at + line_prefix.size() + 1));
  }

  bool watcher_keyed_ = true;
  std::string watcher_grants_ =
      "      - {app: design-center, scopes: ['*'], routes: ['GET /**']}\n";
  std::string limits_yaml_;
};

TEST_F(StreamsTest, RemovingTheKeyEndsOpenWatchesOnReload) {
  grpc::ClientContext context;
  auto reader = OpenWatch(&context);
  watcher_keyed_ = false;
  Reload();
  grpc::Status status = ReadToEnd(*reader);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("config reload"));
  EXPECT_EQ(Metric("tokenbroker_streams_ended_total{reason=\"grant_removed\"}"),
            1);
}

TEST_F(StreamsTest, RemovingTheGrantEndsOpenWatchesOnReload) {
  grpc::ClientContext context;
  auto reader = OpenWatch(&context);
  watcher_grants_ =
      "      - {app: exchange-reader, scopes: ['*'], routes: ['GET /**']}\n";
  Reload();
  grpc::Status status = ReadToEnd(*reader);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
}

TEST_F(StreamsTest, AReloadThatKeepsTheGrantKeepsTheWatch) {
  grpc::ClientContext context;
  auto reader = OpenWatch(&context);
  Reload();  // Same config.
  // Still open: a refresh reaches it.
  grpc::ClientContext refresh_context;
  refresh_context.set_deadline(In(absl::Seconds(30)));
  pb::RefreshTokenRequest refresh;
  refresh.set_app("design-center");
  pb::RefreshTokenResponse refreshed;
  ASSERT_TRUE(admin_->RefreshToken(&refresh_context, refresh, &refreshed).ok());
  pb::GetTokenResponse next;
  ASSERT_TRUE(reader->Read(&next)) << "the watch survived the reload";
  tokens_seen_.push_back(next.access_token());
  context.TryCancel();
  ReadToEnd(*reader);
}

TEST_F(StreamsTest, RemovingTheRouteEndsOpenCallStreamsOnReload) {
  // The answer is held back long enough for the reload to come first.
  emulator::Fault slow;
  slow.endpoint = "echo";
  slow.kind = emulator::FaultKind::kLatency;
  slow.latency_ms = 60000;
  emulator_->AddFault(slow);
  grpc::ClientContext context;
  AsWatcher(&context);
  context.set_deadline(In(absl::Seconds(60)));
  pb::CallRequest request;
  request.set_app("design-center");
  request.set_method("GET");
  request.set_path("/_emulator/echo/held");
  auto reader = stub_->CallStream(&context, request);
  ASSERT_TRUE(PollUntil([&] {
    return emulator_->GetCounters().requests_by_endpoint["echo"] == 1;
  })) << "the CallStream reached the emulator";
  watcher_grants_ =
      "      - {app: design-center, scopes: ['*'], routes: ['POST /**']}\n";
  Reload();
  pb::CallStreamResponse piece;
  while (reader->Read(&piece)) {
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  // And the upstream transfer was dropped.
  EXPECT_TRUE(PollUntil(
      [&] { return emulator_->GetCounters().aborted_by_client["echo"] == 1; }));
}

class StreamLifetimeTest : public StreamsTest {
 protected:
  StreamLifetimeTest() {
    limits_yaml_ =
        "limits:\n  max_stream_lifetime: 1s\n  max_watches_per_caller: 1\n";
  }
};

TEST_F(StreamLifetimeTest, WatchEndsAtItsMaximumLifetime) {
  grpc::ClientContext context;
  auto reader = OpenWatch(&context);
  grpc::Status status = ReadToEnd(*reader);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("max_stream_lifetime"));
  EXPECT_EQ(Metric("tokenbroker_streams_ended_total{reason=\"max_lifetime\"}"),
            1);
}

TEST_F(StreamLifetimeTest, TooManyWatchesOfOneCallerAreRefused) {
  grpc::ClientContext first_context;
  auto first = OpenWatch(&first_context);
  grpc::ClientContext context;
  AsWatcher(&context);
  context.set_deadline(In(absl::Seconds(30)));
  pb::WatchTokenRequest request;
  request.set_app("design-center");
  auto second = stub_->WatchToken(&context, request);
  pb::GetTokenResponse ignored;
  EXPECT_FALSE(second->Read(&ignored));
  grpc::Status status = second->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("max_watches_per_caller"));
  EXPECT_EQ(Metric("tokenbroker_limit_rejections_total{limit=\"max_watches_"
                   "per_caller\"}"),
            1);
  first_context.TryCancel();
  ReadToEnd(*first);
}

// Calls whose upstream answer takes far longer than the test.
class SlowCallsTest : public StreamsTest {
 protected:
  SlowCallsTest() {
    limits_yaml_ =
        "upstream:\n  request_timeout: 600s\n"
        "limits:\n  max_calls_per_caller: 30\n";
  }

  void SetUp() override {
    StreamsTest::SetUp();
    // The Calls' own token first, so that only the Calls are slow.
    pb::GetTokenResponse token;
    ASSERT_TRUE(GetToken("design-center", &token).ok());
    emulator::Fault slow;
    slow.endpoint = "echo";
    slow.kind = emulator::FaultKind::kLatency;
    slow.latency_ms = 300000;
    emulator_->AddFault(slow);
  }

  void TearDown() override {
    for (auto& pending : pending_) pending->context.TryCancel();
    for (auto& pending : pending_) pending->done.WaitForNotification();
    StreamsTest::TearDown();
  }

  struct PendingCall {
    grpc::ClientContext context;
    pb::CallRequest request;
    pb::CallResponse response;
    grpc::Status status;
    absl::Notification done;
  };

  // Starts a slow Call as the anonymous caller.
  PendingCall& StartSlowCall() {
    pending_.push_back(std::make_unique<PendingCall>());
    PendingCall& call = *pending_.back();
    call.request.set_app("design-center");
    call.request.set_method("GET");
    call.request.set_path("/_emulator/echo/slow");
    stub_->async()->Call(&call.context, &call.request, &call.response,
                         [&call](grpc::Status s) {
                           call.status = std::move(s);
                           call.done.Notify();
                         });
    return call;
  }

  std::vector<std::unique_ptr<PendingCall>> pending_;
};

TEST_F(SlowCallsTest, CallsToASlowEndpointCannotStarveTokenFetches) {
  // More than libcurl's 16 connections per host.
  for (int i = 0; i < 20; ++i) StartSlowCall();
  ASSERT_TRUE(PollUntil([&] {
    return emulator_->GetCounters().requests_by_endpoint["echo"] >= 16;
  })) << "the Calls reached the emulator";
  // A cold token fetch to the same host is answered while every Call waits.
  pb::GetTokenResponse token;
  grpc::Status status = GetToken("exchange-reader", &token);
  EXPECT_TRUE(status.ok()) << status.error_message();
  for (auto& pending : pending_) {
    EXPECT_FALSE(pending->done.HasBeenNotified());
  }
}

class CallLimitTest : public SlowCallsTest {
 protected:
  CallLimitTest() {
    limits_yaml_ =
        "upstream:\n  request_timeout: 600s\n"
        "limits:\n  max_calls_per_caller: 10\n";
  }
};

TEST_F(CallLimitTest, TooManyCallsOfOneCallerAreRefused) {
  for (int i = 0; i < 10; ++i) StartSlowCall();
  ASSERT_TRUE(PollUntil([&] {
    return emulator_->GetCounters().requests_by_endpoint["echo"] == 10;
  }));
  PendingCall& refused = StartSlowCall();
  refused.done.WaitForNotification();
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(),
              HasSubstr("max_calls_per_caller = 10"));
  EXPECT_EQ(emulator_->GetCounters().requests_by_endpoint["echo"], 10)
      << "a refused Call sends nothing upstream";
}

TEST_F(StreamsTest, CallerWhoseDeadlineCoversTheNextTryWaitsForIt) {
  // One 503 whose X-RateLimit-Reset puts the next try a second ahead.
  emulator::Fault busy;
  busy.endpoint = "token";
  busy.kind = emulator::FaultKind::kRateLimit503;
  busy.count = 1;
  busy.retry_after_seconds = 1;
  emulator_->AddFault(busy);
  pb::GetTokenResponse response;
  grpc::Status first = GetToken("exchange-reader", &response);
  ASSERT_EQ(first.error_code(), grpc::StatusCode::UNAVAILABLE);
  // Anypoint has recovered (the fault was for one request). A caller with a
  // 30 s deadline waits for the scheduled try instead of failing now.
  grpc::Status second = GetToken("exchange-reader", &response);
  EXPECT_TRUE(second.ok()) << second.error_message();
  EXPECT_EQ(TokenRequests("exchange-reader"), 2);
}

}  // namespace
}  // namespace tokenbroker
