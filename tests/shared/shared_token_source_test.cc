#include "service/shared/shared_token_source.h"

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cache/token_cache.h"
#include "service/common/clock.h"
#include "service/common/retry_info.h"
#include "service/shared/shared_channel.h"
#include "service/shared/shared_keys.h"
#include "service/shared/shared_scripts.h"
#include "service/shared/token_record.h"
#include "tests/shared/scripted_upstream.h"
#include "tests/shared/shared_test_util.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::DumpRedis;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::Results;
using ::tokenbroker::testing::ScriptedUpstream;
using ::tokenbroker::testing::StartTestClient;
using ::tokenbroker::testing::StatusIs;
using ::tokenbroker::testing::TestRing;

constexpr char kApp[] = "design-center";

TokenRequest Request(std::string user = "",
                     std::vector<std::string> scopes = {"read:apps"}) {
  return TokenRequest{kApp, std::move(scopes), std::move(user)};
}

std::string TokenKey(const TokenRequest& request) {
  return SharedKeys().Token(request.app,
                            SharedKeys::KeyHash(CacheKey(request)));
}

std::string LeaseKey(const TokenRequest& request) {
  return SharedKeys().Lease(request.app,
                            SharedKeys::KeyHash(CacheKey(request)));
}

// A policy for tests: a lease that never expires under a live holder, and
// quick polls.
SharedTokenPolicy TestPolicy() {
  SharedTokenPolicy policy;
  policy.lease_ttl = absl::Seconds(10);
  policy.poll_interval = absl::Milliseconds(20);
  return policy;
}

// One broker replica: its own upstream, Redis client, channel and source.
struct Replica {
  std::unique_ptr<ScriptedUpstream> upstream;
  std::unique_ptr<RedisClient> client;
  std::unique_ptr<SharedChannel> channel;
  std::unique_ptr<SharedTokenSource> source;

  ~Replica() {
    // The order the broker shuts down in: the source (answers what is
    // pending), then the channel and the client; the upstream last.
    source.reset();
    channel.reset();
    client.reset();
  }
  SharedTokenStats stats() const { return source->stats(); }
};

class SharedTokenSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    server_ = RedisServerProcess::StartNew();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override { replicas_.clear(); }

  Replica& AddReplica(SharedTokenPolicy policy = TestPolicy(),
                      std::shared_ptr<const KeyRing> ring = TestRing(),
                      const Clock* clock = nullptr,
                      absl::Duration command_timeout = absl::Seconds(2)) {
    if (clock == nullptr) clock = &system_clock_;
    auto replica = std::make_unique<Replica>();
    replica->upstream = std::make_unique<ScriptedUpstream>(
        *clock, absl::StrCat("r", replicas_.size()));
    replica->client = StartTestClient(*server_, command_timeout);
    replica->channel = std::make_unique<SharedChannel>(*replica->client,
                                                       SharedKeys().Events());
    replica->source = std::make_unique<SharedTokenSource>(
        *replica->upstream, *replica->client, *replica->channel,
        std::move(ring), std::string(SharedKeys::kDefaultPrefix), *clock,
        policy);
    EXPECT_TRUE(PollUntil([&] {
      return replica->client->stats().connected &&
             replica->channel->subscribed();
    })) << "the replica's Redis client did not connect";
    replicas_.push_back(std::move(replica));
    return *replicas_.back();
  }

  // Fetches on `replica` and waits for the answer, completing the
  // replica's upstream fetch if it makes one.
  absl::StatusOr<Token> FetchNow(Replica& replica,
                                 const TokenRequest& request = Request()) {
    Results results;
    replica.source->Fetch(request, results.Callback(0));
    EXPECT_TRUE(PollUntil([&] {
      if (replica.upstream->pending() > 0) replica.upstream->Succeed();
      return results.answered() == 1;
    }));
    return results.result(0);
  }

  // Waits until a record for `request` is stored.
  bool Stored(const TokenRequest& request = Request()) {
    return PollUntil([&] { return !Get(TokenKey(request)).empty(); });
  }

  // Waits until the value of `key` contains `text` (records are written
  // after the fetch is answered).
  bool StoredHas(const std::string& key, const std::string& text) {
    return PollUntil([&] { return absl::StrContains(Get(key), text); });
  }

  std::string Get(const std::string& key) {
    absl::StatusOr<RedisReply> reply = server_->Cli({"GET", key});
    EXPECT_THAT(reply, IsOk());
    return reply.ok() ? reply->str : "";
  }

  int TotalPending() const {
    int n = 0;
    for (const auto& r : replicas_) n += r->upstream->pending();
    return n;
  }
  int TotalFetches() const {
    int n = 0;
    for (const auto& r : replicas_) n += r->upstream->fetches();
    return n;
  }

  SystemClock system_clock_;
  std::unique_ptr<RedisServerProcess> server_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(SharedTokenSourceTest,
       OneUpstreamFetchForConcurrentFetchesOnThreeReplicas) {
  for (int i = 0; i < 3; ++i) AddReplica();
  constexpr int kPerReplica = 5;
  constexpr int kTotal = 3 * kPerReplica;
  Results results;
  std::vector<std::thread> callers;
  for (int r = 0; r < 3; ++r) {
    callers.emplace_back([&, r] {
      for (int i = 0; i < kPerReplica; ++i) {
        replicas_[r]->source->Fetch(Request(),
                                    results.Callback(r * kPerReplica + i));
      }
    });
  }
  for (std::thread& t : callers) t.join();

  // One fetch holds the lease and went upstream; every other one waits.
  ASSERT_TRUE(PollUntil([&] {
    int waited = 0;
    for (const auto& r : replicas_) waited += r->stats().waited;
    return TotalPending() == 1 && waited == kTotal - 1;
  }));
  std::string token;
  for (const auto& r : replicas_) {
    if (r->upstream->pending() == 1) token = r->upstream->Succeed();
  }
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(PollUntil([&] { return results.answered() == kTotal; }));
  for (int i = 0; i < kTotal; ++i) {
    absl::StatusOr<Token> result = results.result(i);
    ASSERT_THAT(result, IsOk()) << i;
    EXPECT_EQ(result->access_token, token) << i;
  }
  EXPECT_EQ(TotalFetches(), 1);
  int adopted = 0, leases = 0;
  for (const auto& r : replicas_) {
    adopted += r->stats().adopted;
    leases += r->stats().leases_won;
    EXPECT_FALSE(r->stats().degraded);
  }
  EXPECT_EQ(adopted, kTotal - 1);
  EXPECT_EQ(leases, 1);
  // The lease was given back.
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<RedisReply> lease =
        server_->Cli({"GET", LeaseKey(Request())});
    return lease.ok() && lease->is_nil();
  }));
  replicas_.clear();
  EXPECT_FALSE(results.any_twice());
}

TEST_F(SharedTokenSourceTest, ThreeCachesShareOneFetchPerKey) {
  // The real wiring: a TokenCache per replica over its SharedTokenSource.
  for (int i = 0; i < 3; ++i) AddReplica();
  SystemClock clock;
  std::vector<std::unique_ptr<TokenCache>> caches;
  for (const auto& r : replicas_) {
    caches.push_back(
        std::make_unique<TokenCache>(*r->source, clock, CachePolicy{}));
  }
  absl::Mutex mu;
  std::vector<std::string> tokens;
  for (int round = 0; round < 4; ++round) {
    for (auto& cache : caches) {
      cache->Get(Request(), absl::Seconds(30),
                 [&](absl::StatusOr<TokenPtr> token) {
                   absl::MutexLock lock(&mu);
                   tokens.push_back(token.ok() ? (*token)->access_token
                                               : token.status().ToString());
                 });
    }
  }
  ASSERT_TRUE(PollUntil([&] {
    for (const auto& r : replicas_) {
      if (r->upstream->pending() > 0) r->upstream->Succeed();
    }
    absl::MutexLock lock(&mu);
    return tokens.size() == 12;
  }));
  EXPECT_EQ(TotalFetches(), 1);
  absl::MutexLock lock(&mu);
  for (const std::string& token : tokens) EXPECT_EQ(token, tokens.front());
  caches.clear();
}

TEST_F(SharedTokenSourceTest, AReplicaDoesNotAdoptTheTokenItAlreadyHas) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  absl::StatusOr<Token> first = FetchNow(a);
  ASSERT_THAT(first, IsOk());
  absl::StatusOr<Token> adopted = FetchNow(b);
  ASSERT_THAT(adopted, IsOk());
  EXPECT_EQ(adopted->access_token, first->access_token);
  EXPECT_EQ(adopted->expires_at, first->expires_at);
  EXPECT_EQ(b.upstream->fetches(), 0);
  EXPECT_EQ(b.stats().adopted, 1);

  // a's cache asks again (a 401, a forced refresh): the stored token is the
  // one it has, so a fetches a new one...
  absl::StatusOr<Token> second = FetchNow(a);
  ASSERT_THAT(second, IsOk());
  EXPECT_NE(second->access_token, first->access_token);
  EXPECT_EQ(a.upstream->fetches(), 2);
  // ...which b adopts, once.
  absl::StatusOr<Token> again = FetchNow(b);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->access_token, second->access_token);
  EXPECT_EQ(b.upstream->fetches(), 0);
  absl::StatusOr<Token> third = FetchNow(b);
  ASSERT_THAT(third, IsOk());
  EXPECT_EQ(b.upstream->fetches(), 1);
  EXPECT_EQ(third->access_token, b.upstream->issued().back());
}

TEST_F(SharedTokenSourceTest, ARecordAtItsRefreshPointIsNotAdopted) {
  FakeClock clock;
  Replica& a = AddReplica(TestPolicy(), TestRing(), &clock);
  Replica& b = AddReplica(TestPolicy(), TestRing(), &clock);
  Replica& c = AddReplica(TestPolicy(), TestRing(), &clock);

  Results results;
  a.source->Fetch(Request(), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  std::string token = a.upstream->Succeed(absl::Seconds(90));
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 1; }));

  clock.Advance(absl::Seconds(61));  // Past 2/3 of 90 s.
  b.source->Fetch(Request(), results.Callback(1));
  ASSERT_TRUE(PollUntil([&] { return b.upstream->pending() == 1; }))
      << "b should fetch: the stored token is due for a refresh";
  EXPECT_EQ(b.stats().adopted, 0);

  // With a later refresh point (a reload's new policy), it is adopted.
  SharedTokenPolicy late = TestPolicy();
  late.refresh_fraction = 0.9;
  c.source->SetPolicy(late);
  c.source->Fetch(Request(), results.Callback(2));
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 2; }));
  EXPECT_EQ(results.result(2)->access_token, token);
  EXPECT_EQ(c.upstream->fetches(), 0);
  b.upstream->Succeed(absl::Seconds(90));
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 3; }));
}

TEST_F(SharedTokenSourceTest, ATakeoverFollowsADeadHolderAfterTheLeaseTtl) {
  SharedTokenPolicy policy = TestPolicy();
  policy.lease_ttl = absl::Milliseconds(300);
  Replica& a = AddReplica(policy);
  Replica& b = AddReplica(policy);
  Results results;
  a.source->Fetch(Request(), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  b.source->Fetch(Request(), results.Callback(1));
  ASSERT_TRUE(PollUntil([&] { return b.stats().waited == 1; }));

  // The holder dies mid-fetch: no renewal, no write, no release.
  a.client->Stop();
  ASSERT_TRUE(PollUntil([&] { return b.upstream->pending() == 1; }))
      << "b should take over once the lease expires";
  std::string token = b.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 1; }));
  EXPECT_EQ(results.result(1)->access_token, token);
  EXPECT_EQ(b.stats().takeovers, 1);

  // Another replica adopts the new holder's token.
  Replica& c = AddReplica(policy);
  absl::StatusOr<Token> adopted = FetchNow(c);
  ASSERT_THAT(adopted, IsOk());
  EXPECT_EQ(adopted->access_token, token);
  EXPECT_EQ(c.upstream->fetches(), 0);

  // The dead holder's fetch completing late is answered locally only.
  a.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 2; }));
  EXPECT_THAT(results.result(0), IsOk());
  EXPECT_EQ(b.upstream->fetches() + a.upstream->fetches(), 2);
}

TEST_F(SharedTokenSourceTest, AHolderThatLostItsLeaseIsFencedOut) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  Results results;
  a.source->Fetch(Request(), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  // a's lease expires while a is paused (a stopped container, a long GC).
  ASSERT_THAT(server_->Cli({"DEL", LeaseKey(Request())}), IsOk());
  b.source->Fetch(Request(), results.Callback(1));
  ASSERT_TRUE(PollUntil([&] { return b.upstream->pending() == 1; }));
  std::string newer = b.upstream->Succeed();
  ASSERT_TRUE(PollUntil(
      [&] { return StoredRecordFence(Get(TokenKey(Request()))) == 2; }));

  // a wakes up with its older token: served to its own callers, but it
  // does not overwrite b's.
  std::string older = a.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return a.stats().fenced_out == 1; }));
  EXPECT_THAT(results.result(0), IsOk());
  absl::StatusOr<TokenRecord> stored = OpenTokenRecord(
      *TestRing(), TokenKey(Request()), Get(TokenKey(Request())));
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->fence, 2);
  EXPECT_EQ(stored->token.access_token, newer);
  Replica& c = AddReplica();
  EXPECT_EQ(FetchNow(c)->access_token, newer);
}

TEST_F(SharedTokenSourceTest, TheWriteScriptRefusesALowerFenceAndARevocation) {
  Replica& a = AddReplica();
  ASSERT_THAT(FetchNow(a), IsOk());
  ASSERT_TRUE(Stored());
  const std::string key = TokenKey(Request());
  const std::string stored = Get(key);
  ASSERT_EQ(StoredRecordFence(stored), 1);

  auto write = [&](int64_t fence, int64_t revgen) {
    TokenRecord record;
    record.fence = fence;
    record.revgen = revgen;
    record.cache_key = CacheKey(Request());
    record.token.access_token = "SECRET-ACCESS-TOKEN-forged-0123456789";
    record.token.issued_at = absl::Now();
    record.token.expires_at = record.token.issued_at + absl::Hours(1);
    std::string value = *SealTokenRecord(*TestRing(), key, record);
    absl::StatusOr<RedisReply> reply = server_->Cli(
        {"EVAL", internal::kWriteTokenScript, "3", key, SharedKeys().Revgen(),
         SharedKeys().Events(), absl::StrCat(fence), absl::StrCat(revgen), kApp,
         "", value, "60000", "token x y 0", ""});
    EXPECT_THAT(reply, IsOk());
    return reply.ok() ? reply->integer : -100;
  };
  EXPECT_EQ(write(0, 0), 0) << "a lower fence must be refused";
  EXPECT_EQ(write(1, 0), 0) << "an equal fence must be refused";
  EXPECT_EQ(Get(key), stored);
  ASSERT_THAT(server_->Cli({"HINCRBY", SharedKeys().Revgen(), kApp, "1"}),
              IsOk());
  EXPECT_EQ(write(5, 0), -1) << "a fetch from before a revocation is refused";
  EXPECT_EQ(Get(key), stored);
  EXPECT_EQ(write(5, 1), 1);
  EXPECT_EQ(StoredRecordFence(Get(key)), 5);
}

TEST_F(SharedTokenSourceTest, ARecordFromBeforeARevocationIsNotAdopted) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  ASSERT_THAT(FetchNow(a), IsOk());
  ASSERT_TRUE(Stored());
  ASSERT_THAT(server_->Cli({"HINCRBY", SharedKeys().Revgen(), kApp, "1"}),
              IsOk());
  absl::StatusOr<Token> fresh = FetchNow(b);
  ASSERT_THAT(fresh, IsOk());
  EXPECT_EQ(b.upstream->fetches(), 1);
  EXPECT_EQ(b.stats().adopted, 0);

  // Revoked while a fetch is in flight: its token is not stored.
  Results results;
  Replica& c = AddReplica();
  ASSERT_THAT(server_->Cli({"DEL", TokenKey(Request())}), IsOk());
  c.source->Fetch(Request(), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return c.upstream->pending() == 1; }));
  ASSERT_THAT(server_->Cli({"HINCRBY", SharedKeys().Revgen(), kApp, "1"}),
              IsOk());
  c.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return c.stats().revoked_writes == 1; }));
  absl::StatusOr<RedisReply> gone = server_->Cli({"GET", TokenKey(Request())});
  ASSERT_THAT(gone, IsOk());
  EXPECT_TRUE(gone->is_nil());
}

TEST_F(SharedTokenSourceTest, AUserRevocationStopsAdoptionOfThatUsersToken) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  TokenRequest alice = Request("alice-user-id", {});
  TokenRequest bob = Request("bob-user-id", {});
  ASSERT_THAT(FetchNow(a, alice), IsOk());
  ASSERT_THAT(FetchNow(a, bob), IsOk());
  ASSERT_TRUE(Stored(alice));
  ASSERT_TRUE(Stored(bob));
  ASSERT_THAT(
      server_->Cli({"HINCRBY", SharedKeys().Revgen(),
                    SharedKeys::RevgenUserField(kApp, "alice-user-id"), "1"}),
      IsOk());
  ASSERT_THAT(FetchNow(b, bob), IsOk());
  EXPECT_EQ(b.stats().adopted, 1);
  ASSERT_THAT(FetchNow(b, alice), IsOk());
  EXPECT_EQ(b.stats().adopted, 1);
  EXPECT_EQ(b.upstream->fetches(), 1);
  // Revoking the app revokes its users' tokens too.
  Replica& c = AddReplica();
  ASSERT_THAT(server_->Cli({"HINCRBY", SharedKeys().Revgen(), kApp, "1"}),
              IsOk());
  ASSERT_THAT(FetchNow(c, bob), IsOk());
  EXPECT_EQ(c.stats().adopted, 0);
}

TEST_F(SharedTokenSourceTest, AValueCopiedToAnotherKeyIsNotAdopted) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  TokenRequest other = Request("", {"write:apps"});
  ASSERT_THAT(FetchNow(a), IsOk());
  ASSERT_TRUE(Stored());
  std::string value = Get(TokenKey(Request()));
  ASSERT_THAT(server_->Cli({"SET", TokenKey(other), value}), IsOk());
  EXPECT_THAT(OpenTokenRecord(*TestRing(), TokenKey(other), value),
              StatusIs(absl::StatusCode::kDataLoss));

  absl::StatusOr<Token> fetched = FetchNow(b, other);
  ASSERT_THAT(fetched, IsOk());
  EXPECT_EQ(b.upstream->fetches(), 1);
  EXPECT_EQ(b.stats().adopted, 0);
  EXPECT_EQ(b.stats().unreadable_records, 1);
  // The fresh token replaces the copied value, whatever fence it claimed.
  EXPECT_TRUE(PollUntil([&] {
    return OpenTokenRecord(*TestRing(), TokenKey(other), Get(TokenKey(other)))
        .ok();
  }));
}

TEST_F(SharedTokenSourceTest, NoTokenInAnyKeyOrValue) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  ASSERT_THAT(FetchNow(a), IsOk());
  ASSERT_THAT(FetchNow(a, Request("alice-user-id", {})), IsOk());
  ASSERT_THAT(FetchNow(a, Request("", {"write:apps", "admin:apps"})), IsOk());
  ASSERT_THAT(FetchNow(b), IsOk());  // b refetches nothing...
  ASSERT_THAT(FetchNow(b), IsOk());  // ...then fetches anew.
  // A fetch in flight: its lease is in Redis too.
  Results results;
  a.source->Fetch(Request("bob-user-id", {}), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));

  std::vector<std::string> secrets = a.upstream->issued();
  for (const std::string& t : b.upstream->issued()) secrets.push_back(t);
  ASSERT_EQ(secrets.size(), 4u);
  std::map<std::string, std::string> dump = DumpRedis(*server_);
  ASSERT_GE(dump.size(), 6u);  // Records, fences, a lease.
  bool saw_lease = false;
  for (const auto& [key, content] : dump) {
    saw_lease = saw_lease || absl::StrContains(key, ":lease:");
    for (const std::string& secret : secrets) {
      EXPECT_THAT(key, Not(HasSubstr(secret)));
      EXPECT_THAT(content, Not(HasSubstr(secret))) << key;
      EXPECT_THAT(content, Not(HasSubstr("SECRET"))) << key;
    }
    // Nor a scope or a user id in a key name.
    EXPECT_THAT(key, Not(HasSubstr("read:apps")));
    EXPECT_THAT(key, Not(HasSubstr("alice")));
    EXPECT_THAT(key, Not(HasSubstr("bob")));
    EXPECT_TRUE(absl::StartsWith(key, "tokenbroker:")) << key;
  }
  EXPECT_TRUE(saw_lease);
  a.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 1; }));
}

TEST_F(SharedTokenSourceTest, RedisDownFetchesDirectlyThenConverges) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  ASSERT_THAT(server_->Stop(), IsOk());
  ASSERT_TRUE(PollUntil([&] {
    return !a.client->stats().connected && !b.client->stats().connected;
  }));
  EXPECT_TRUE(a.stats().degraded);

  // Each replica fetches alone, at once (no command timeout to wait out).
  absl::StatusOr<Token> alone_a = FetchNow(a);
  absl::StatusOr<Token> alone_b = FetchNow(b);
  ASSERT_THAT(alone_a, IsOk());
  ASSERT_THAT(alone_b, IsOk());
  EXPECT_EQ(a.stats().degraded_fetches, 1);
  EXPECT_EQ(b.stats().degraded_fetches, 1);
  EXPECT_TRUE(a.stats().degraded);

  // Redis returns (empty: no persistence): the replicas converge on one
  // fetch per key again.
  ASSERT_THAT(server_->Start(), IsOk());
  ASSERT_TRUE(PollUntil([&] {
    return !a.stats().degraded && !b.stats().degraded;
  })) << "degraded should clear once Redis answers";
  absl::StatusOr<Token> shared = FetchNow(a);
  ASSERT_THAT(shared, IsOk());
  EXPECT_EQ(a.upstream->fetches(), 2);
  absl::StatusOr<Token> adopted = FetchNow(b);
  ASSERT_THAT(adopted, IsOk());
  EXPECT_EQ(adopted->access_token, shared->access_token);
  EXPECT_EQ(b.upstream->fetches(), 1);
}

TEST_F(SharedTokenSourceTest, AHungRedisTimesOutAndTheFetchGoesDirect) {
  Replica& a = AddReplica(TestPolicy(), TestRing(), nullptr,
                          /*command_timeout=*/absl::Milliseconds(200));
  ASSERT_THAT(server_->Pause(), IsOk());
  Results results;
  a.source->Fetch(Request(), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  a.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 1; }));
  EXPECT_THAT(results.result(0), IsOk());
  EXPECT_EQ(a.stats().degraded_fetches, 1);
  EXPECT_GE(a.stats().redis_errors, 1);
  EXPECT_TRUE(a.stats().degraded);
  ASSERT_THAT(server_->Resume(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return !a.stats().degraded; }));
}

TEST_F(SharedTokenSourceTest, AHoldersFailureAnswersTheWaitingReplicas) {
  // Followers learn of the failure from the message alone: with a poll
  // they might see the released lease first and take it (harmless, one
  // more fetch, but not what this test is about).
  SharedTokenPolicy policy = TestPolicy();
  policy.poll_interval = absl::Seconds(30);
  Replica& a = AddReplica(policy);
  Replica& b = AddReplica(policy);
  Replica& c = AddReplica(policy);
  struct Case {
    absl::Status error;
    absl::StatusCode followers;
    absl::Duration retry_after;
  };
  absl::Status limited = absl::UnavailableError("HTTP 429 from the server");
  SetRetryAfter(limited, absl::Seconds(7));
  std::vector<Case> cases = {
      {limited, absl::StatusCode::kUnavailable, absl::Seconds(7)},
      {absl::DeadlineExceededError("timed out"), absl::StatusCode::kUnavailable,
       TestPolicy().failed_retry_after},
      {absl::FailedPreconditionError("invalid_client"),
       absl::StatusCode::kFailedPrecondition, TestPolicy().failed_retry_after},
  };
  int n = 0;
  for (const Case& test : cases) {
    SCOPED_TRACE(test.error.ToString());
    Results results;
    a.source->Fetch(Request(), results.Callback(0));
    ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
    b.source->Fetch(Request(), results.Callback(1));
    c.source->Fetch(Request(), results.Callback(2));
    ++n;
    ASSERT_TRUE(PollUntil(
        [&] { return b.stats().waited == n && c.stats().waited == n; }));
    a.upstream->Fail(test.error);
    ASSERT_TRUE(PollUntil([&] { return results.answered() == 3; }));
    EXPECT_EQ(results.result(0).status(), test.error);
    for (int i : {1, 2}) {
      absl::Status status = results.result(i).status();
      EXPECT_EQ(status.code(), test.followers) << status;
      EXPECT_EQ(GetRetryAfter(status), test.retry_after) << status;
      EXPECT_THAT(std::string(status.message()), HasSubstr("another broker"));
    }
    // No stampede: the waiting replicas did not go upstream.
    EXPECT_EQ(b.upstream->fetches() + c.upstream->fetches(), 0);
  }
  EXPECT_EQ(b.stats().holder_failures, 3);
  // Nothing of the failure is stored: the next fetch takes the lease.
  ASSERT_THAT(FetchNow(b), IsOk());
  EXPECT_EQ(b.upstream->fetches(), 1);
}

TEST_F(SharedTokenSourceTest, AWaitIsBoundedByTwoLeaseLifetimes) {
  FakeClock clock;
  Replica& a = AddReplica(TestPolicy(), TestRing(), &clock);
  Replica& b = AddReplica(TestPolicy(), TestRing(), &clock);
  Results results;
  a.source->Fetch(Request(), results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  b.source->Fetch(Request(), results.Callback(1));
  ASSERT_TRUE(PollUntil([&] { return b.stats().waited == 1; }));
  // The holder is alive (it renews) but its fetch hangs.
  clock.Advance(2 * TestPolicy().lease_ttl);
  ASSERT_TRUE(PollUntil([&] { return b.upstream->pending() == 1; }));
  EXPECT_EQ(b.stats().wait_timeouts, 1);
  b.upstream->Succeed();
  a.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 2; }));
  EXPECT_THAT(results.result(1), IsOk());
}

TEST_F(SharedTokenSourceTest, KeyRotation) {
  Replica& a = AddReplica(TestPolicy(), TestRing({{"k1", 'a'}}));
  Replica& b = AddReplica(TestPolicy(), TestRing({{"k2", 'b'}, {"k1", 'a'}}));
  Replica& c = AddReplica(TestPolicy(), TestRing({{"k2", 'b'}}));
  const std::string key = TokenKey(Request());
  absl::StatusOr<Token> old_key = FetchNow(a);
  ASSERT_THAT(old_key, IsOk());
  EXPECT_TRUE(StoredHas(key, ":tbx1.k1."));
  // Sealed with the old key: opens while that key is in the ring.
  EXPECT_EQ(FetchNow(b)->access_token, old_key->access_token);
  EXPECT_EQ(b.upstream->fetches(), 0);
  // b's own fetch is sealed with its current key.
  absl::StatusOr<Token> new_key = FetchNow(b);
  ASSERT_THAT(new_key, IsOk());
  EXPECT_TRUE(StoredHas(key, ":tbx1.k2."));
  EXPECT_EQ(FetchNow(c)->access_token, new_key->access_token);
  EXPECT_EQ(c.upstream->fetches(), 0);
  // A replica without k2 cannot read it (so roll a new key out to every
  // replica before making it current) and fetches anew.
  Replica& d = AddReplica(TestPolicy(), TestRing({{"k1", 'a'}}));
  absl::StatusOr<Token> unreadable = FetchNow(d);
  ASSERT_THAT(unreadable, IsOk());
  EXPECT_EQ(d.upstream->fetches(), 1);
  EXPECT_EQ(d.stats().unreadable_records, 1);
  EXPECT_TRUE(StoredHas(key, ":tbx1.k1."));
  // SetKeys (a reload) gives a the new ring: it reads and seals with it.
  a.source->SetKeys(TestRing({{"k2", 'b'}, {"k1", 'a'}}));
  EXPECT_EQ(FetchNow(a)->access_token, unreadable->access_token);
  EXPECT_EQ(a.upstream->fetches(), 1);
  ASSERT_THAT(FetchNow(a), IsOk());
  EXPECT_EQ(a.upstream->fetches(), 2);
  EXPECT_TRUE(StoredHas(key, ":tbx1.k2."));
}

TEST_F(SharedTokenSourceTest, ShutdownAnswersEverythingPendingOnce) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  Replica& c = AddReplica();
  Results results;
  a.source->Fetch(Request(), results.Callback(0));  // Holder.
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  b.source->Fetch(Request(), results.Callback(1));  // Waiting (timers).
  b.source->Fetch(Request(), results.Callback(2));
  ASSERT_TRUE(PollUntil([&] { return b.stats().waited == 2; }));
  c.source->Fetch(Request(), results.Callback(3));  // A command in flight.
  c.source.reset();
  b.source.reset();
  for (int i : {1, 2, 3}) {
    EXPECT_EQ(results.calls(i), 1) << i;
    EXPECT_THAT(results.result(i), StatusIs(absl::StatusCode::kCancelled));
  }
  a.source->Shutdown();
  EXPECT_EQ(results.calls(0), 1);
  EXPECT_THAT(results.result(0), StatusIs(absl::StatusCode::kCancelled));
  // The holder gave its lease back.
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<RedisReply> lease =
        server_->Cli({"GET", LeaseKey(Request())});
    return lease.ok() && lease->is_nil();
  }));
  // Its upstream fetch completes into a source that is gone.
  a.source->Fetch(Request(), results.Callback(4));
  EXPECT_THAT(results.result(4), StatusIs(absl::StatusCode::kCancelled));
  a.source.reset();
  a.upstream->Succeed();
  // Clients stopped with nothing of the sources left.
  replicas_.clear();
  EXPECT_FALSE(results.any_twice());
}

TEST_F(SharedTokenSourceTest, StoppingTheClientUnderAFetchStillAnswersOnce) {
  Replica& a = AddReplica();
  Results results;
  for (int i = 0; i < 20; ++i) a.source->Fetch(Request(), results.Callback(i));
  a.client->Stop();  // Commands in flight are answered CANCELLED.
  ASSERT_TRUE(PollUntil([&] {
    while (a.upstream->pending() > 0) a.upstream->Succeed();
    return results.answered() == 20;
  }));
  EXPECT_FALSE(results.any_twice());
  replicas_.clear();
  EXPECT_FALSE(results.any_twice());
}

}  // namespace
}  // namespace tokenbroker
