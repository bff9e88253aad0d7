#include "service/http/redis_pending_flows.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/redis/redis_client.h"
#include "service/store/sealed_box.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using Cookies = std::vector<std::pair<std::string, std::string>>;
using Outcome = SignInLookup::Outcome;
using ::testing::AllOf;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::Not;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::StatusIs;

constexpr char kPrefix[] = "tb-test:";
constexpr char kCookieName[] = "tb_oauth";

SignInSetup Binding() {
  return SignInSetup{"https://broker.example/oauth/callback", kCookieName};
}

std::shared_ptr<const KeyRing> TestKeys() {
  absl::StatusOr<std::shared_ptr<const KeyRing>> ring =
      KeyRing::Create({SealKey("k1", std::string(kSealKeyBytes, '\x5a'))});
  EXPECT_THAT(ring, IsOk());
  return ring.ok() ? *ring : nullptr;
}

// One replica: its own Redis client and flows over the shared server.
struct Replica {
  std::unique_ptr<RedisClient> redis;
  std::unique_ptr<RedisPendingFlows> flows;
};

class RedisPendingFlowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    server_ = RedisServerProcess::StartNew();
    ASSERT_NE(server_, nullptr);
    a_ = MakeReplica(options_);
    b_ = MakeReplica(options_);
  }

  Replica MakeReplica(PendingFlowsOptions options) {
    Replica replica;
    absl::StatusOr<std::unique_ptr<RedisClient>> client =
        StartRedisClient(server_->ClientOptions());
    EXPECT_THAT(client, IsOk());
    if (!client.ok()) return replica;
    replica.redis = *std::move(client);
    EXPECT_TRUE(PollUntil([&] { return replica.redis->stats().connected; }))
        << "the client connects";
    replica.flows = std::make_unique<RedisPendingFlows>(
        *replica.redis, keys_, kPrefix, clock_, options);
    return replica;
  }

  // MintTicket()'s answer (given on the Redis client's thread).
  static absl::StatusOr<MintedTicket> Mint(PendingFlows& flows,
                                           std::string app = "app") {
    absl::Notification answered;
    absl::StatusOr<MintedTicket> result;
    flows.MintTicket(std::move(app), "admin",
                     [&](absl::StatusOr<MintedTicket> ticket) {
                       result = std::move(ticket);
                       answered.Notify();
                     });
    answered.WaitForNotification();
    return result;
  }

  // A ticket minted on `mint` and redeemed on `begin`.
  static StartedSignIn Begin(PendingFlows& mint, PendingFlows& begin) {
    absl::StatusOr<MintedTicket> ticket = Mint(mint);
    EXPECT_THAT(ticket, IsOk());
    if (!ticket.ok()) return {};
    absl::StatusOr<StartedSignIn> started =
        begin.BeginSignIn(ticket->ticket, Binding());
    EXPECT_THAT(started, IsOk());
    return started.ok() ? *std::move(started) : StartedSignIn{};
  }

  absl::StatusOr<RedisReply> Cli(const std::vector<std::string>& args) {
    return server_->Cli(args);
  }

  bool Exists(const std::string& key) {
    absl::StatusOr<RedisReply> reply = Cli({"EXISTS", key});
    return reply.ok() && reply->integer == 1;
  }

  int64_t Pttl(const std::string& key) {
    absl::StatusOr<RedisReply> reply = Cli({"PTTL", key});
    return reply.ok() ? reply->integer : -3;
  }

  // Every key name and every value (strings; the members and scores of
  // sorted sets; anything else by TYPE), as an operator would see them.
  std::vector<std::string> Dump() {
    std::vector<std::string> dump;
    std::string cursor = "0";
    do {
      absl::StatusOr<RedisReply> scan =
          Cli({"SCAN", cursor, "MATCH", "*", "COUNT", "1000"});
      EXPECT_THAT(scan, IsOk());
      if (!scan.ok() || scan->elements.size() != 2) break;
      cursor = scan->elements[0].str;
      for (const RedisReply& key : scan->elements[1].elements) {
        dump.push_back(key.str);
        absl::StatusOr<RedisReply> type = Cli({"TYPE", key.str});
        EXPECT_THAT(type, IsOk());
        if (!type.ok()) continue;
        if (type->str == "string") {
          dump.push_back(Cli({"GET", key.str})->str);
        } else if (type->str == "zset") {
          // Held: a range-for over a temporary's member would dangle.
          absl::StatusOr<RedisReply> items =
              Cli({"ZRANGE", key.str, "0", "-1", "WITHSCORES"});
          EXPECT_THAT(items, IsOk());
          if (!items.ok()) continue;
          for (const RedisReply& item : items->elements) {
            dump.push_back(item.str);
          }
        } else {
          ADD_FAILURE() << "unexpected key type " << type->str;
        }
      }
    } while (cursor != "0");
    return dump;
  }

  FakeClock clock_;
  std::shared_ptr<const KeyRing> keys_ = TestKeys();
  PendingFlowsOptions options_{absl::Minutes(10), absl::Minutes(5), 100};
  std::unique_ptr<RedisServerProcess> server_;
  Replica a_;
  Replica b_;
};

TEST_F(RedisPendingFlowsTest, MintOnOneReplicaStartOnAnotherCompleteOnAny) {
  absl::StatusOr<MintedTicket> ticket = Mint(*a_.flows, "environments");
  ASSERT_THAT(ticket, IsOk());
  EXPECT_EQ(ticket->ticket.size(), 43u);
  EXPECT_EQ(ticket->expires_at, clock_.Now() + absl::Minutes(10));
  EXPECT_EQ(a_.flows->pending(), 1);
  constexpr int64_t kTenMinutes = 10 * 60 * 1000;
  EXPECT_THAT(Pttl(a_.flows->TicketKey(ticket->ticket)),
              AllOf(Gt(0), Le(kTenMinutes)))
      << "Redis drops it at start_link_ttl";
  EXPECT_THAT(Pttl(a_.flows->PendingKey()), AllOf(Gt(0), Le(kTenMinutes)))
      << "the pending set lives no longer than its newest member could";

  absl::StatusOr<StartTicket> peeked = b_.flows->PeekTicket(ticket->ticket);
  ASSERT_THAT(peeked, IsOk());
  EXPECT_EQ(peeked->app, "environments");
  EXPECT_EQ(peeked->minted_by, "admin");
  EXPECT_EQ(peeked->expires_at, ticket->expires_at);

  absl::StatusOr<StartedSignIn> started =
      b_.flows->BeginSignIn(ticket->ticket, Binding());
  ASSERT_THAT(started, IsOk());
  EXPECT_EQ(started->expires_at, clock_.Now() + absl::Minutes(5));
  EXPECT_EQ(b_.flows->pending(), 1) << "the state took the ticket's place";
  EXPECT_THAT(Pttl(b_.flows->StateKey(started->state)),
              AllOf(Gt(0), Le(kTenMinutes / 2)))
      << "Redis drops it at state_ttl";
  EXPECT_THAT(a_.flows->BeginSignIn(ticket->ticket, Binding()),
              StatusIs(absl::StatusCode::kNotFound))
      << "a ticket is redeemed once, on any replica";
  EXPECT_THAT(a_.flows->PeekTicket(ticket->ticket),
              StatusIs(absl::StatusCode::kNotFound));

  SignInLookup lookup = a_.flows->TakeSignIn(
      started->state, {{"other", "x"}, {kCookieName, started->cookie}});
  ASSERT_EQ(lookup.outcome, Outcome::kOk);
  ASSERT_TRUE(lookup.sign_in.has_value());
  EXPECT_EQ(lookup.sign_in->app, "environments");
  EXPECT_EQ(lookup.sign_in->minted_by, "admin");
  EXPECT_EQ(lookup.sign_in->setup.redirect_uri, Binding().redirect_uri);
  EXPECT_EQ(lookup.sign_in->setup.cookie_name, kCookieName);
  EXPECT_EQ(lookup.sign_in->code_verifier, started->code_verifier);
  EXPECT_EQ(lookup.sign_in->expires_at, started->expires_at);
  EXPECT_EQ(a_.flows->pending(), 0);

  // Replays, on either replica.
  EXPECT_EQ(
      b_.flows->TakeSignIn(started->state, {{kCookieName, started->cookie}})
          .outcome,
      Outcome::kUnknown);
  EXPECT_EQ(
      a_.flows->TakeSignIn(started->state, {{kCookieName, started->cookie}})
          .outcome,
      Outcome::kUnknown);
  EXPECT_THAT(b_.flows->PeekTicket("made-up"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(RedisPendingFlowsTest, ConcurrentRedemptionsOfOneTicketOneWins) {
  constexpr int kTickets = 20;
  constexpr int kThreads = 6;
  for (int round = 0; round < kTickets; ++round) {
    absl::StatusOr<MintedTicket> ticket = Mint(*a_.flows);
    ASSERT_THAT(ticket, IsOk());
    absl::Notification go;
    std::atomic<int> won{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      PendingFlows& flows = i % 2 == 0 ? *a_.flows : *b_.flows;
      threads.emplace_back([&, &flows = flows] {
        go.WaitForNotification();
        absl::StatusOr<StartedSignIn> started =
            flows.BeginSignIn(ticket->ticket, Binding());
        if (started.ok()) {
          won.fetch_add(1);
        } else if (started.status().code() == absl::StatusCode::kNotFound) {
          refused.fetch_add(1);
        } else {
          ADD_FAILURE() << started.status();
        }
      });
    }
    go.Notify();
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(won.load(), 1) << "round " << round;
    EXPECT_EQ(refused.load(), kThreads - 1) << "round " << round;
  }
  absl::StatusOr<RedisReply> states =
      Cli({"KEYS", absl::StrCat(kPrefix, "signin:state:*")});
  ASSERT_THAT(states, IsOk());
  EXPECT_EQ(states->elements.size(), static_cast<size_t>(kTickets))
      << "one sign-in per ticket";
}

TEST_F(RedisPendingFlowsTest, WrongOrMissingCookieConsumesTheState) {
  StartedSignIn started = Begin(*a_.flows, *b_.flows);
  SignInLookup wrong =
      b_.flows->TakeSignIn(started.state, {{kCookieName, "attacker's"}});
  EXPECT_EQ(wrong.outcome, Outcome::kCookieMismatch);
  ASSERT_TRUE(wrong.sign_in.has_value());
  EXPECT_EQ(wrong.sign_in->app, "app") << "named for the audit record";
  EXPECT_TRUE(wrong.sign_in->code_verifier.empty());
  EXPECT_EQ(a_.flows->TakeSignIn(started.state, {{kCookieName, started.cookie}})
                .outcome,
            Outcome::kUnknown)
      << "the right cookie afterwards is too late";
  EXPECT_FALSE(Exists(a_.flows->StateKey(started.state)));

  StartedSignIn second = Begin(*b_.flows, *a_.flows);
  SignInLookup none = a_.flows->TakeSignIn(second.state, {});
  EXPECT_EQ(none.outcome, Outcome::kNoCookie);
  EXPECT_TRUE(none.sign_in->code_verifier.empty());
  EXPECT_EQ(b_.flows->TakeSignIn(second.state, {{kCookieName, second.cookie}})
                .outcome,
            Outcome::kUnknown);
}

TEST_F(RedisPendingFlowsTest, ExpiryIsCheckedOnReadByTheReplicasClock) {
  absl::StatusOr<MintedTicket> ticket = Mint(*a_.flows);
  ASSERT_THAT(ticket, IsOk());
  const std::string ticket_key = a_.flows->TicketKey(ticket->ticket);
  StartedSignIn started = Begin(*a_.flows, *a_.flows);
  const std::string state_key = a_.flows->StateKey(started.state);

  // Redis still holds both (its PX is minutes away); the clock says they
  // are over.
  clock_.Advance(absl::Minutes(10));
  ASSERT_TRUE(Exists(ticket_key));
  EXPECT_THAT(b_.flows->PeekTicket(ticket->ticket),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE(Exists(ticket_key)) << "an expired ticket is deleted";
  EXPECT_THAT(b_.flows->BeginSignIn(ticket->ticket, Binding()),
              StatusIs(absl::StatusCode::kNotFound));

  ASSERT_TRUE(Exists(state_key));
  SignInLookup lookup =
      b_.flows->TakeSignIn(started.state, {{kCookieName, started.cookie}});
  EXPECT_EQ(lookup.outcome, Outcome::kExpired);
  ASSERT_TRUE(lookup.sign_in.has_value());
  EXPECT_TRUE(lookup.sign_in->code_verifier.empty());
  EXPECT_FALSE(Exists(state_key));
  EXPECT_EQ(b_.flows->pending(), 0);
}

TEST_F(RedisPendingFlowsTest, RedisDropsEntriesAtTheirTtl) {
  // Short TTLs for Redis's PX; the fake clock stands still, so only Redis
  // can drop them.
  Replica short_ticket =
      MakeReplica({absl::Milliseconds(200), absl::Minutes(5), 100});
  Replica short_state =
      MakeReplica({absl::Minutes(10), absl::Milliseconds(200), 100});

  absl::StatusOr<MintedTicket> ticket = Mint(*short_ticket.flows);
  ASSERT_THAT(ticket, IsOk());
  const std::string ticket_key = a_.flows->TicketKey(ticket->ticket);
  ASSERT_TRUE(PollUntil([&] { return !Exists(ticket_key); }))
      << "Redis drops the ticket at its PX";
  EXPECT_THAT(a_.flows->PeekTicket(ticket->ticket),
              StatusIs(absl::StatusCode::kNotFound));

  StartedSignIn started = Begin(*a_.flows, *short_state.flows);
  const std::string state_key = a_.flows->StateKey(started.state);
  ASSERT_TRUE(PollUntil([&] { return !Exists(state_key); }))
      << "Redis drops the state at its PX";
  EXPECT_EQ(a_.flows->TakeSignIn(started.state, {{kCookieName, started.cookie}})
                .outcome,
            Outcome::kUnknown);
}

TEST_F(RedisPendingFlowsTest, MaxPendingHoldsAcrossReplicas) {
  Replica a = MakeReplica({absl::Minutes(10), absl::Minutes(5), 2});
  Replica b = MakeReplica({absl::Minutes(10), absl::Minutes(5), 2});
  absl::StatusOr<MintedTicket> first = Mint(*a.flows);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(Mint(*b.flows), IsOk());  // Stays pending to the end.
  EXPECT_THAT(Mint(*a.flows), StatusIs(absl::StatusCode::kResourceExhausted,
                                       HasSubstr("oauth.max_pending")));
  EXPECT_EQ(a.flows->pending(), 2);
  // Redeeming needs no room: the state takes the ticket's place.
  absl::StatusOr<StartedSignIn> started =
      b.flows->BeginSignIn(first->ticket, Binding());
  ASSERT_THAT(started, IsOk());
  EXPECT_THAT(Mint(*b.flows), StatusIs(absl::StatusCode::kResourceExhausted));
  a.flows->TakeSignIn(started->state, {});
  EXPECT_EQ(a.flows->pending(), 1);

  // An entry Redis dropped at its PX frees its place.
  Replica fleeting =
      MakeReplica({absl::Milliseconds(100), absl::Minutes(5), 2});
  absl::StatusOr<MintedTicket> brief = Mint(*fleeting.flows);
  ASSERT_THAT(brief, IsOk());
  EXPECT_THAT(Mint(*a.flows), StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_TRUE(
      PollUntil([&] { return !Exists(a.flows->TicketKey(brief->ticket)); }));
  EXPECT_THAT(Mint(*a.flows), IsOk());
  EXPECT_EQ(a.flows->pending(), 2);
}

TEST_F(RedisPendingFlowsTest, RedisHoldsNoSecretInKeysOrValues) {
  std::vector<std::string> secrets;
  std::vector<std::string> states;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<MintedTicket> ticket = Mint(*a_.flows);
    ASSERT_THAT(ticket, IsOk());
    secrets.push_back(ticket->ticket);
    absl::StatusOr<MintedTicket> redeemed = Mint(*b_.flows);
    ASSERT_THAT(redeemed, IsOk());
    secrets.push_back(redeemed->ticket);
    absl::StatusOr<StartedSignIn> started =
        a_.flows->BeginSignIn(redeemed->ticket, Binding());
    ASSERT_THAT(started, IsOk());
    for (const std::string& secret :
         {started->state, started->cookie, started->code_verifier}) {
      secrets.push_back(secret);
    }
    states.push_back(started->state);
  }
  std::vector<std::string> dump = Dump();
  ASSERT_FALSE(dump.empty());
  int sealed = 0;
  for (const std::string& item : dump) {
    for (const std::string& secret : secrets) {
      EXPECT_THAT(item, Not(HasSubstr(secret)));
    }
    EXPECT_THAT(item, Not(HasSubstr("admin"))) << "minted_by is sealed";
    EXPECT_THAT(item, Not(HasSubstr("broker.example"))) << "setup is sealed";
    if (absl::StartsWith(item, "tbx1.")) ++sealed;
  }
  EXPECT_EQ(sealed, 6) << "3 tickets and 3 states, each sealed";

  // A value moved to another key does not open there (associated data).
  const std::string moved = "moved-state";
  absl::StatusOr<RedisReply> value =
      Cli({"GET", a_.flows->StateKey(states[0])});
  ASSERT_THAT(value, IsOk());
  ASSERT_THAT(Cli({"SET", a_.flows->StateKey(moved), value->str}), IsOk());
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(b_.flows->TakeSignIn(moved, {}).outcome, Outcome::kUnknown);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("could not be read"));
}

TEST_F(RedisPendingFlowsTest, RedisDownIsUnavailableAndRecovers) {
  absl::StatusOr<MintedTicket> ticket = Mint(*a_.flows);
  ASSERT_THAT(ticket, IsOk());
  StartedSignIn started = Begin(*a_.flows, *b_.flows);

  ::testing::internal::CaptureStderr();
  ASSERT_THAT(server_->Stop(), IsOk());
  auto down = StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("the shared state (Redis) cannot be reached"));
  EXPECT_THAT(Mint(*a_.flows), down);
  EXPECT_THAT(b_.flows->PeekTicket(ticket->ticket), down);
  absl::StatusOr<StartedSignIn> begin =
      b_.flows->BeginSignIn(ticket->ticket, Binding());
  EXPECT_THAT(begin, down);
  SignInLookup lookup =
      a_.flows->TakeSignIn(started.state, {{kCookieName, started.cookie}});
  EXPECT_EQ(lookup.outcome, Outcome::kUnavailable);
  EXPECT_FALSE(lookup.sign_in.has_value());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("pending sign-ins unavailable"));
  for (const std::string& secret :
       {ticket->ticket, started.state, started.cookie, started.code_verifier}) {
    EXPECT_THAT(log, Not(HasSubstr(secret)));
    EXPECT_THAT(begin.status().message(), Not(HasSubstr(secret)));
  }

  // Back (empty: the test server keeps nothing): sign-ins work again.
  ASSERT_THAT(server_->Start(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return a_.redis->stats().connected; }));
  ASSERT_TRUE(PollUntil([&] { return b_.redis->stats().connected; }));
  StartedSignIn again = Begin(*b_.flows, *a_.flows);
  EXPECT_EQ(
      b_.flows->TakeSignIn(again.state, {{kCookieName, again.cookie}}).outcome,
      Outcome::kOk);
}

}  // namespace
}  // namespace tokenbroker
