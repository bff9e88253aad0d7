#include "service/http/pending_flows.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using Cookies = std::vector<std::pair<std::string, std::string>>;
using Outcome = SignInLookup::Outcome;
using ::testing::SizeIs;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kCookieName[] = "tb_oauth";

class PendingFlowsTest : public ::testing::Test {
 protected:
  MemoryPendingFlows MakeFlows(int max_pending = 100) {
    return MemoryPendingFlows(
        clock_,
        PendingFlowsOptions{absl::Minutes(10), absl::Minutes(5), max_pending});
  }

  static SignInSetup Binding() {
    return SignInSetup{"http://127.0.0.1:1/oauth/callback", kCookieName};
  }

  // A ticket minted and redeemed: the sign-in it began.
  StartedSignIn Begin(MemoryPendingFlows& flows) {
    absl::StatusOr<MintedTicket> ticket = flows.MintTicket("app", "admin");
    EXPECT_THAT(ticket, IsOk());
    absl::StatusOr<StartedSignIn> started =
        flows.BeginSignIn(ticket->ticket, Binding());
    EXPECT_THAT(started, IsOk());
    return *std::move(started);
  }

  FakeClock clock_;
};

TEST_F(PendingFlowsTest, TicketsAreRandomUrlSafeAndExpire) {
  MemoryPendingFlows flows = MakeFlows();
  absl::StatusOr<MintedTicket> ticket = flows.MintTicket("app", "admin");
  ASSERT_THAT(ticket, IsOk());
  EXPECT_THAT(ticket->ticket, SizeIs(43));  // 256 bits in base64url.
  EXPECT_EQ(ticket->ticket.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789-_"),
            std::string::npos);
  EXPECT_EQ(ticket->expires_at, clock_.Now() + absl::Minutes(10));
  absl::StatusOr<StartTicket> info = flows.PeekTicket(ticket->ticket);
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->app, "app");
  EXPECT_EQ(info->minted_by, "admin");

  EXPECT_NE(flows.MintTicket("app", "admin")->ticket, ticket->ticket);

  clock_.Advance(absl::Minutes(10));
  EXPECT_THAT(flows.PeekTicket(ticket->ticket),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(flows.BeginSignIn(ticket->ticket, Binding()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(flows.pending(), 0) << "expired entries are purged";
}

TEST_F(PendingFlowsTest, TicketIsRedeemedOnce) {
  MemoryPendingFlows flows = MakeFlows();
  absl::StatusOr<MintedTicket> ticket = flows.MintTicket("app", "admin");
  ASSERT_THAT(ticket, IsOk());
  ASSERT_THAT(flows.BeginSignIn(ticket->ticket, Binding()), IsOk());
  EXPECT_THAT(flows.BeginSignIn(ticket->ticket, Binding()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(flows.PeekTicket(ticket->ticket),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(flows.PeekTicket("made-up"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(flows.pending(), 1) << "the sign-in took the ticket's place";
}

TEST_F(PendingFlowsTest, StateIsTakenOnceWithItsCookie) {
  MemoryPendingFlows flows = MakeFlows();
  StartedSignIn started = Begin(flows);
  EXPECT_THAT(started.code_verifier, SizeIs(43));
  EXPECT_EQ(std::set<std::string>(
                {started.state, started.cookie, started.code_verifier})
                .size(),
            3u);

  SignInLookup lookup = flows.TakeSignIn(
      started.state, {{"other", "x"}, {kCookieName, started.cookie}});
  ASSERT_EQ(lookup.outcome, Outcome::kOk);
  ASSERT_TRUE(lookup.sign_in.has_value());
  EXPECT_EQ(lookup.sign_in->app, "app");
  EXPECT_EQ(lookup.sign_in->minted_by, "admin");
  EXPECT_EQ(lookup.sign_in->setup.redirect_uri,
            "http://127.0.0.1:1/oauth/callback");
  EXPECT_EQ(lookup.sign_in->code_verifier, started.code_verifier);

  SignInLookup replay =
      flows.TakeSignIn(started.state, {{kCookieName, started.cookie}});
  EXPECT_EQ(replay.outcome, Outcome::kUnknown);
  EXPECT_FALSE(replay.sign_in.has_value());
  EXPECT_EQ(flows.pending(), 0);
}

TEST_F(PendingFlowsTest, WrongOrMissingCookieConsumesTheState) {
  MemoryPendingFlows flows = MakeFlows();
  StartedSignIn started = Begin(flows);
  SignInLookup wrong =
      flows.TakeSignIn(started.state, {{kCookieName, "attacker's"}});
  EXPECT_EQ(wrong.outcome, Outcome::kCookieMismatch);
  ASSERT_TRUE(wrong.sign_in.has_value());
  EXPECT_EQ(wrong.sign_in->app, "app") << "named for the audit record";
  EXPECT_TRUE(wrong.sign_in->code_verifier.empty());
  // The right cookie afterwards is too late: the state was used.
  EXPECT_EQ(
      flows.TakeSignIn(started.state, {{kCookieName, started.cookie}}).outcome,
      Outcome::kUnknown);

  StartedSignIn second = Begin(flows);
  // The right value under another name does not count.
  EXPECT_EQ(flows.TakeSignIn(second.state, {{"__Host-tb_oauth", second.cookie}})
                .outcome,
            Outcome::kNoCookie);
}

TEST_F(PendingFlowsTest, StateBoundToOneOfSeveralCookiesOfTheName) {
  MemoryPendingFlows flows = MakeFlows();
  StartedSignIn started = Begin(flows);
  // An injected cookie of the same name does not hide the browser's own.
  EXPECT_EQ(flows
                .TakeSignIn(started.state, {{kCookieName, "injected"},
                                            {kCookieName, started.cookie}})
                .outcome,
            Outcome::kOk);
}

TEST_F(PendingFlowsTest, StateExpires) {
  MemoryPendingFlows flows = MakeFlows();
  StartedSignIn started = Begin(flows);
  EXPECT_EQ(started.expires_at, clock_.Now() + absl::Minutes(5));
  clock_.Advance(absl::Minutes(5));
  SignInLookup lookup =
      flows.TakeSignIn(started.state, {{kCookieName, started.cookie}});
  EXPECT_EQ(lookup.outcome, Outcome::kExpired);
  ASSERT_TRUE(lookup.sign_in.has_value());
  EXPECT_TRUE(lookup.sign_in->code_verifier.empty());

  StartedSignIn later = Begin(flows);
  clock_.Advance(absl::Minutes(6));
  ASSERT_THAT(flows.MintTicket("app", "admin"), IsOk());  // Purges.
  EXPECT_EQ(flows.pending(), 1);
  EXPECT_EQ(
      flows.TakeSignIn(later.state, {{kCookieName, later.cookie}}).outcome,
      Outcome::kUnknown);
}

TEST_F(PendingFlowsTest, BoundedByMaxPending) {
  MemoryPendingFlows flows = MakeFlows(/*max_pending=*/2);
  absl::StatusOr<MintedTicket> first = flows.MintTicket("app", "admin");
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(flows.MintTicket("app", "admin"), IsOk());
  EXPECT_THAT(flows.MintTicket("app", "admin"),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // Redeeming a ticket does not need room: the state takes its place.
  absl::StatusOr<StartedSignIn> started =
      flows.BeginSignIn(first->ticket, Binding());
  ASSERT_THAT(started, IsOk());
  EXPECT_THAT(flows.MintTicket("app", "admin"),
              StatusIs(absl::StatusCode::kResourceExhausted));
  flows.TakeSignIn(started->state, {});
  EXPECT_THAT(flows.MintTicket("app", "admin"), IsOk());
  // Expiry frees room too.
  clock_.Advance(absl::Minutes(10));
  EXPECT_THAT(flows.MintTicket("app", "admin"), IsOk());
  EXPECT_EQ(flows.pending(), 1);
}

TEST(PkceTest, S256MatchesRfc7636AppendixB) {
  EXPECT_EQ(PkceS256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

}  // namespace
}  // namespace tokenbroker
