// Callers that go away while the broker waits for Anypoint: a cancelled or
// expired GetToken must leave nothing behind that a late fetch could reach
// (it once handed another caller's token to the wrong RPC, then crashed).
// Run under ASan in CI (scripts/test-sanitizers).

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::tokenbroker::testing::BrokerFixture;
using ::tokenbroker::testing::PollUntil;

std::chrono::system_clock::time_point In(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

class CancelTest : public BrokerFixture {
 protected:
  // An asynchronous GetToken; `done` is notified with its status.
  struct Pending {
    grpc::ClientContext context;
    pb::GetTokenRequest request;
    pb::GetTokenResponse response;
    grpc::Status status;
    absl::Notification done;
  };

  Pending& Start(const std::string& app, std::chrono::milliseconds deadline) {
    pending_.push_back(std::make_unique<Pending>());
    Pending& p = *pending_.back();
    p.request.set_app(app);
    p.context.set_deadline(In(deadline));
    stub_->async()->GetToken(&p.context, &p.request, &p.response,
                             [&p](grpc::Status s) {
                               p.status = std::move(s);
                               p.done.Notify();
                             });
    return p;
  }

  void TearDown() override {
    for (auto& p : pending_) p->done.WaitForNotification();
    BrokerFixture::TearDown();
  }

  void SlowTokenEndpoint(int latency_ms) {
    emulator::Fault slow;
    slow.endpoint = "token";
    slow.kind = emulator::FaultKind::kLatency;
    slow.latency_ms = latency_ms;
    emulator_->AddFault(slow);
  }

  std::vector<std::unique_ptr<Pending>> pending_;
};

// The reviewers' reproduction: callers of exchange-reader give up while its
// fetch is slow; callers of design-center wait meanwhile. Each answer must
// be the asked-for app's, and the broker must survive.
TEST_F(CancelTest, ExpiredWaitersNeverReceiveAnotherCallersToken) {
  SlowTokenEndpoint(1500);
  constexpr int kRounds = 3;
  constexpr int kPerRound = 40;
  for (int round = 0; round < kRounds; ++round) {
    // Cold keys every round.
    for (const char* app : {"exchange-reader", "design-center"}) {
      grpc::ClientContext context;
      pb::RevokeTokenRequest revoke;
      revoke.set_app(app);
      pb::RevokeTokenResponse revoked;
      ASSERT_TRUE(admin_->RevokeToken(&context, revoke, &revoked).ok());
    }
    size_t first = pending_.size();
    for (int i = 0; i < kPerRound; ++i) {
      Start("exchange-reader", std::chrono::milliseconds(200));
      Start("design-center", std::chrono::milliseconds(30000));
    }
    for (size_t i = first; i < pending_.size(); ++i) {
      Pending& p = *pending_[i];
      p.done.WaitForNotification();
      if (p.request.app() == "exchange-reader") {
        EXPECT_EQ(p.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
            << p.status.error_message();
      } else {
        ASSERT_TRUE(p.status.ok()) << p.status.error_message();
        EXPECT_EQ(p.response.app(), "design-center");
        tokens_seen_.push_back(p.response.access_token());
      }
    }
    // Every design-center caller of the round got the same token.
    for (size_t i = first; i < pending_.size(); ++i) {
      Pending& p = *pending_[i];
      if (p.request.app() != "design-center") continue;
      EXPECT_EQ(p.response.access_token(),
                pending_[first + 1]->response.access_token());
    }
    // The expired callers' fetch completes after they left; nothing of it
    // reaches them, and the cache counts them as withdrawn.
    ASSERT_TRUE(PollUntil([&] {
      return broker_->cache().stats().withdrawn >= (round + 1) * kPerRound;
    })) << "the expired callers withdrew from the cache";
  }
  emulator_->ClearFaults();
  pb::GetTokenResponse response;
  grpc::Status status = GetToken("exchange-reader", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.app(), "exchange-reader");
}

TEST_F(CancelTest, CancelledWaiterLeavesNothingForTheLateFetch) {
  SlowTokenEndpoint(1000);
  Pending& p = Start("exchange-reader", std::chrono::milliseconds(30000));
  ASSERT_TRUE(PollUntil([&] { return TokenRequests("exchange-reader") == 1; }));
  p.context.TryCancel();
  p.done.WaitForNotification();
  EXPECT_EQ(p.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(PollUntil([&] {
    return broker_->cache().stats().withdrawn == 1;
  })) << "the cancelled GetToken withdrew its waiter";
  // The fetch still completes and fills the cache for the next caller.
  ASSERT_TRUE(PollUntil([&] {
    for (const TokenEntryInfo& info : broker_->cache().Snapshot()) {
      if (info.app == "exchange-reader" && info.valid) return true;
    }
    return false;
  }));
}

// Shutdown while callers are parked on a slow fetch: the server cancels
// them after the grace period and the HTTP client cancels the fetch; no
// completion may reach a finished RPC.
TEST_F(CancelTest, ShutdownWithParkedCallersIsClean) {
  SlowTokenEndpoint(5000);
  for (int i = 0; i < 20; ++i) {
    Start(i % 2 == 0 ? "exchange-reader" : "design-center",
          std::chrono::milliseconds(60000));
  }
  ASSERT_TRUE(PollUntil([&] {
    return broker_->cache().stats().waits == 20 &&
           TokenRequests("exchange-reader") == 1 &&
           TokenRequests("design-center-app") == 1;
  }));
  broker_->Shutdown(absl::ZeroDuration(), absl::Milliseconds(100));
  for (auto& p : pending_) {
    p->done.WaitForNotification();
    EXPECT_FALSE(p->status.ok()) << p->request.app();
  }
  broker_.reset();  // Cancels the fetches still in flight.
}

}  // namespace
}  // namespace tokenbroker
