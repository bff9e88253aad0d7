#include "service/shared/shared_events.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/shared/shared_channel.h"
#include "service/shared/shared_keys.h"
#include "service/shared/shared_scripts.h"
#include "service/shared/shared_token_source.h"
#include "tests/shared/scripted_upstream.h"
#include "tests/shared/shared_test_util.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::UnorderedElementsAre;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::Results;
using ::tokenbroker::testing::ScriptedUpstream;
using ::tokenbroker::testing::StartTestClient;
using ::tokenbroker::testing::StatusIs;
using ::tokenbroker::testing::TestRing;

constexpr char kApp[] = "design-center";

// What a replica's handlers were called with. Thread-safe.
class Seen {
 public:
  SharedEventHandlers Handlers() {
    SharedEventHandlers h;
    h.on_revoke = [this](const std::string& app) { Add("revoke " + app); };
    h.on_revoke_user = [this](const std::string& app, const std::string& user) {
      Add(absl::StrCat("revoke_user ", app, " ", user));
    };
    h.on_reload = [this] { Add("reload"); };
    h.on_grant_changed = [this](const std::string& app, const std::string& user,
                                int64_t version) {
      Add(absl::StrCat("grant ", app, " ", user, " ", version));
    };
    return h;
  }
  std::vector<std::string> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  int count(const std::string& event) const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(std::count(events_.begin(), events_.end(), event));
  }

 private:
  void Add(std::string event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  mutable absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

// A replica's events, and its token source on the same channel.
struct Replica {
  Seen seen;
  std::unique_ptr<ScriptedUpstream> upstream;
  std::unique_ptr<RedisClient> client;
  std::unique_ptr<SharedChannel> channel;
  std::unique_ptr<SharedEvents> events;
  std::unique_ptr<SharedTokenSource> source;

  ~Replica() {
    source.reset();
    events.reset();
    channel.reset();
    client.reset();
  }
};

// Waits for the answer of a publish.
class PublishResult {
 public:
  SharedEvents::PublishCallback Callback() {
    return [this](absl::StatusOr<int64_t> result) {
      absl::MutexLock lock(&mu_);
      ++calls_;
      result_ = std::move(result);
    };
  }
  absl::StatusOr<int64_t> Wait() {
    EXPECT_TRUE(PollUntil([&] {
      absl::MutexLock lock(&mu_);
      return calls_ > 0;
    }));
    absl::MutexLock lock(&mu_);
    return result_;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::StatusOr<int64_t> result_ ABSL_GUARDED_BY(mu_) =
      absl::UnknownError("no answer");
};

class SharedEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    server_ = RedisServerProcess::StartNew();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { replicas_.clear(); }

  Replica& AddReplica() {
    auto r = std::make_unique<Replica>();
    r->upstream = std::make_unique<ScriptedUpstream>(
        clock_, absl::StrCat("r", replicas_.size()));
    r->client = StartTestClient(*server_);
    r->channel =
        std::make_unique<SharedChannel>(*r->client, SharedKeys().Events());
    SharedEventsOptions options;
    options.sync_interval = absl::Milliseconds(50);
    r->events = std::make_unique<SharedEvents>(
        *r->client, *r->channel, std::string(SharedKeys::kDefaultPrefix),
        r->seen.Handlers(), options);
    SharedTokenPolicy policy;
    policy.poll_interval = absl::Milliseconds(20);
    r->source = std::make_unique<SharedTokenSource>(
        *r->upstream, *r->client, *r->channel, TestRing(),
        std::string(SharedKeys::kDefaultPrefix), clock_, policy);
    Replica* replica = r.get();
    EXPECT_TRUE(PollUntil([&] {
      return replica->channel->subscribed() && replica->events->stats().synced;
    }));
    replicas_.push_back(std::move(r));
    return *replicas_.back();
  }

  // Waits until `replica` has read the generations back `n` more times.
  bool SyncsPass(Replica& replica, int n = 2) {
    int64_t start = replica.events->stats().syncs;
    return PollUntil(
        [&] { return replica.events->stats().syncs >= start + n; });
  }

  SystemClock clock_;
  std::unique_ptr<RedisServerProcess> server_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(SharedEventsTest, ARevocationReachesEveryOtherReplicaOnce) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  Replica& c = AddReplica();
  PublishResult published;
  a.events->PublishRevoke(kApp, published.Callback());
  EXPECT_THAT(published.Wait(), IsOk());
  EXPECT_EQ(*published.Wait(), 1);
  ASSERT_TRUE(PollUntil([&] {
    return b.seen.count("revoke design-center") == 1 &&
           c.seen.count("revoke design-center") == 1;
  }));
  // The catch-up reads find nothing new; a's own publish is not replayed by
  // them either.
  ASSERT_TRUE(SyncsPass(b));
  ASSERT_TRUE(SyncsPass(a));
  EXPECT_EQ(b.seen.count("revoke design-center"), 1);
  EXPECT_EQ(c.seen.count("revoke design-center"), 1);
  EXPECT_LE(a.seen.count("revoke design-center"), 1);
  EXPECT_EQ(published.calls(), 1);
}

TEST_F(SharedEventsTest, UserRevocationsReloadsAndGrantChanges) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  PublishResult user, reload, grant;
  a.events->PublishRevokeUser(kApp, "user with spaces", user.Callback());
  a.events->PublishReload(reload.Callback());
  a.events->PublishGrantChanged(kApp, "user-1", 7, grant.Callback());
  EXPECT_THAT(user.Wait(), IsOk());
  EXPECT_EQ(*reload.Wait(), 1);
  EXPECT_EQ(*grant.Wait(), 7);
  ASSERT_TRUE(PollUntil([&] { return b.seen.events().size() == 3; }));
  // In any order: the grant's is a plain PUBLISH, the others scripts.
  EXPECT_THAT(b.seen.events(),
              UnorderedElementsAre("revoke_user design-center user with spaces",
                                   "reload", "grant design-center user-1 7"));
  absl::StatusOr<RedisReply> field =
      server_->Cli({"HGET", SharedKeys().Revgen(),
                    SharedKeys::RevgenUserField(kApp, "user with spaces")});
  ASSERT_THAT(field, IsOk());
  EXPECT_EQ(field->str, "1");
}

TEST_F(SharedEventsTest, AReplicaThatMissedTheMessagesCatchesUp) {
  Replica& b = AddReplica();
  // Generations moved without a message reaching b (it was disconnected).
  ASSERT_THAT(server_->Cli({"HINCRBY", SharedKeys().Revgen(), kApp, "1"}),
              IsOk());
  ASSERT_THAT(
      server_->Cli({"HINCRBY", SharedKeys().Revgen(),
                    SharedKeys::RevgenUserField("other-app", "user-9"), "2"}),
      IsOk());
  ASSERT_THAT(server_->Cli({"INCR", SharedKeys().ConfigGeneration()}), IsOk());
  ASSERT_TRUE(PollUntil([&] { return b.seen.events().size() == 3; }));
  EXPECT_EQ(b.seen.count("revoke design-center"), 1);
  EXPECT_EQ(b.seen.count("revoke_user other-app user-9"), 1);
  EXPECT_EQ(b.seen.count("reload"), 1);
  ASSERT_TRUE(SyncsPass(b));
  EXPECT_EQ(b.seen.events().size(), 3u);
  EXPECT_EQ(b.events->stats().caught_up, 3);
}

TEST_F(SharedEventsTest, AReplicaStartedLaterDoesNotReplayOldEvents) {
  Replica& a = AddReplica();
  PublishResult published;
  a.events->PublishRevoke(kApp, published.Callback());
  a.events->PublishReload(nullptr);
  ASSERT_THAT(published.Wait(), IsOk());
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<RedisReply> g =
        server_->Cli({"GET", SharedKeys().ConfigGeneration()});
    return g.ok() && g->str == "1";
  }));
  Replica& d = AddReplica();
  ASSERT_TRUE(SyncsPass(d));
  EXPECT_TRUE(d.seen.events().empty());
  a.events->PublishRevoke(kApp, nullptr);
  ASSERT_TRUE(
      PollUntil([&] { return d.seen.count("revoke design-center") == 1; }));
}

TEST_F(SharedEventsTest, APublishWhileRedisIsDownIsRetriedAndCounted) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  for (int i = 0; i < 3; ++i) a.events->PublishRevoke(kApp, nullptr);
  ASSERT_TRUE(
      PollUntil([&] { return b.seen.count("revoke design-center") == 3; }));
  ASSERT_THAT(server_->Stop(), IsOk());
  PublishResult failed;
  a.events->PublishRevoke(kApp, failed.Callback());
  EXPECT_THAT(failed.Wait(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(a.events->stats().pending_publishes, 1);
  EXPECT_TRUE(PollUntil([&] { return !b.events->stats().synced; }));

  // Redis returns empty (no persistence; generations count from 1 again):
  // the retried revocation still reaches b.
  ASSERT_THAT(server_->Start(), IsOk());
  ASSERT_TRUE(
      PollUntil([&] { return b.seen.count("revoke design-center") == 4; }));
  EXPECT_EQ(a.events->stats().pending_publishes, 0);
  EXPECT_GE(a.events->stats().publish_errors, 1);
  // And later ones too.
  ASSERT_TRUE(PollUntil([&] { return b.events->stats().synced; }));
  a.events->PublishRevoke(kApp, nullptr);
  ASSERT_TRUE(
      PollUntil([&] { return b.seen.count("revoke design-center") == 5; }));
}

TEST_F(SharedEventsTest, ARevocationStopsTheOtherReplicasAdoptingTheToken) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  TokenRequest request{kApp, {}};
  Results results;
  a.source->Fetch(request, results.Callback(0));
  ASSERT_TRUE(PollUntil([&] { return a.upstream->pending() == 1; }));
  a.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 1; }));

  PublishResult published;
  a.events->PublishRevoke(kApp, published.Callback());
  ASSERT_THAT(published.Wait(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return b.seen.count("revoke design-center"); }));
  b.source->Fetch(request, results.Callback(1));
  ASSERT_TRUE(PollUntil([&] { return b.upstream->pending() == 1; }));
  EXPECT_EQ(b.source->stats().adopted, 0);
  b.upstream->Succeed();
  ASSERT_TRUE(PollUntil([&] { return results.answered() == 2; }));
}

TEST_F(SharedEventsTest, ShutdownAnswersPendingPublishesAndStopsHandlers) {
  Replica& a = AddReplica();
  Replica& b = AddReplica();
  ASSERT_THAT(server_->Pause(), IsOk());
  PublishResult in_flight;
  a.events->PublishRevoke(kApp, in_flight.Callback());
  a.events->Shutdown();
  EXPECT_EQ(in_flight.calls(), 1);
  EXPECT_THAT(in_flight.Wait(), StatusIs(absl::StatusCode::kCancelled));
  PublishResult after;
  a.events->PublishReload(after.Callback());
  EXPECT_THAT(after.Wait(), StatusIs(absl::StatusCode::kCancelled));
  b.events.reset();
  ASSERT_THAT(server_->Resume(), IsOk());
  // Nothing runs any more; the clients' late answers find the gates shut.
  ASSERT_THAT(server_->Cli({"HINCRBY", SharedKeys().Revgen(), kApp, "5"}),
              IsOk());
  replicas_.clear();
  EXPECT_EQ(in_flight.calls(), 1);
}

// A RedisClient whose connection states, messages and catch-up answers the
// test drives (no server): to replay exact orders of events.
class FakeRedis : public RedisClient {
 public:
  explicit FakeRedis(bool connected) { SetConnected(connected); }

  void Command(std::vector<std::string> args, RedisCallback done) override {
    done(absl::UnavailableError("not scripted"));
  }
  void Eval(const std::string& script, std::vector<std::string> keys,
            std::vector<std::string> args, RedisCallback done) override {
    if (script != internal::kSyncScript) {
      done(absl::UnavailableError("not scripted"));
      return;
    }
    absl::MutexLock lock(&mu_);
    syncs_.push_back(std::move(done));
  }
  void Subscribe(
      std::vector<std::string> channels,
      std::function<void(const std::string&, const std::string&)> on_message,
      std::function<void(bool)> on_state) override {
    absl::MutexLock lock(&mu_);
    on_message_ = std::move(on_message);
    on_state_ = std::move(on_state);
  }
  RedisClientStats stats() const override {
    absl::MutexLock lock(&mu_);
    return stats_;
  }
  void Stop() override {}

  void SetConnected(bool connected) {
    absl::MutexLock lock(&mu_);
    stats_.connected = connected;
  }
  void SetSubscribed(bool subscribed) {
    std::function<void(bool)> on_state;
    {
      absl::MutexLock lock(&mu_);
      stats_.subscribed = subscribed;
      on_state = on_state_;
    }
    on_state(subscribed);
  }
  void Deliver(const std::string& payload) {
    std::function<void(const std::string&, const std::string&)> on_message;
    {
      absl::MutexLock lock(&mu_);
      on_message = on_message_;
    }
    on_message(SharedKeys().Events(), payload);
  }
  size_t pending_syncs() const {
    absl::MutexLock lock(&mu_);
    return syncs_.size();
  }
  // Answers the catch-up read made `index`-th among those pending (-1: all
  // of them, oldest first) with the revgen hash `revgen` of epoch `epoch`.
  void AnswerSyncs(const std::map<std::string, int64_t>& revgen,
                   const std::string& epoch, int index = -1) {
    std::vector<RedisCallback> answer;
    {
      absl::MutexLock lock(&mu_);
      if (index < 0) {
        answer.swap(syncs_);
      } else {
        answer.push_back(std::move(syncs_[index]));
        syncs_.erase(syncs_.begin() + index);
      }
    }
    for (RedisCallback& done : answer) done(SyncReply(revgen, epoch));
  }
  void FailSyncs() {
    std::vector<RedisCallback> answer;
    {
      absl::MutexLock lock(&mu_);
      answer.swap(syncs_);
    }
    for (RedisCallback& done : answer) {
      done(absl::UnavailableError("the Redis connection dropped"));
    }
  }

 private:
  static RedisReply String(std::string text) {
    RedisReply reply;
    reply.type = RedisReply::Type::kString;
    reply.str = std::move(text);
    return reply;
  }
  static RedisReply SyncReply(const std::map<std::string, int64_t>& revgen,
                              const std::string& epoch) {
    RedisReply hash;
    hash.type = RedisReply::Type::kArray;
    hash.elements.push_back(
        String("\x1f"
               "epoch"));
    hash.elements.push_back(String(epoch));
    for (const auto& [field, generation] : revgen) {
      hash.elements.push_back(String(field));
      hash.elements.push_back(String(absl::StrCat(generation)));
    }
    RedisReply reply;
    reply.type = RedisReply::Type::kArray;
    reply.elements.push_back(std::move(hash));
    reply.elements.push_back(RedisReply());  // No config generation.
    reply.elements.push_back(String(epoch));
    return reply;
  }

  mutable absl::Mutex mu_;
  RedisClientStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<RedisCallback> syncs_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&, const std::string&)> on_message_
      ABSL_GUARDED_BY(mu_);
  std::function<void(bool)> on_state_ ABSL_GUARDED_BY(mu_);
};

// Without a timer tick during the test: the test says when reads happen.
SharedEventsOptions NoTicks() {
  SharedEventsOptions options;
  options.sync_interval = absl::Hours(1);
  return options;
}

// A replica's events over a FakeRedis.
struct FakeReplica {
  explicit FakeReplica(SharedEventsOptions options = NoTicks(),
                       bool connected = false)
      : redis(connected),
        channel(redis, SharedKeys().Events()),
        events(redis, channel, std::string(SharedKeys::kDefaultPrefix),
               seen.Handlers(), options) {}

  FakeRedis redis;
  Seen seen;
  SharedChannel channel;
  SharedEvents events;
};

// The pub/sub connection is up before the command connection (as at start
// and after a restart): the first catch-up read must still be the baseline
// taken then, so that Redis restarting empty afterwards is seen (by its
// epoch) and a revocation numbered as one seen before is not ignored.
TEST(SharedEventsOrderTest, ARestartBeforeTheFirstTickStillShowsAsLostData) {
  FakeReplica replica;
  replica.redis.SetSubscribed(true);
  replica.redis.SetConnected(true);
  replica.redis.AnswerSyncs({}, "epoch-1");
  replica.redis.Deliver("revoke design-center 1");
  EXPECT_EQ(replica.seen.count("revoke design-center"), 1);

  // Redis restarts empty; another replica revokes again: generation 1 of
  // the new epoch.
  replica.redis.SetSubscribed(false);
  replica.redis.SetConnected(false);
  replica.redis.SetSubscribed(true);
  replica.redis.SetConnected(true);
  replica.redis.Deliver("revoke design-center 1");
  replica.events.SyncNow();  // The next tick.
  replica.redis.AnswerSyncs({{kApp, 1}}, "epoch-2");
  EXPECT_EQ(replica.seen.count("revoke design-center"), 2);
  EXPECT_EQ(replica.events.stats().caught_up, 1);
}

// No baseline yet (the first read failed) when the connection is lost:
// generations seen so far may belong to data Redis no longer has.
TEST(SharedEventsOrderTest, GenerationsSeenBeforeTheBaselineDoNotOutliveALoss) {
  FakeReplica replica;
  replica.redis.SetSubscribed(true);
  replica.redis.FailSyncs();
  replica.redis.Deliver("revoke design-center 1");
  EXPECT_EQ(replica.seen.count("revoke design-center"), 1);
  replica.redis.SetSubscribed(false);
  replica.redis.SetSubscribed(true);
  replica.redis.Deliver("revoke design-center 1");
  EXPECT_EQ(replica.seen.count("revoke design-center"), 2);
  replica.redis.SetConnected(true);
  replica.events.SyncNow();
  replica.redis.AnswerSyncs({{kApp, 1}}, "epoch-2");
  EXPECT_TRUE(replica.events.stats().synced);
  EXPECT_EQ(replica.seen.count("revoke design-center"), 2);
}

// A catch-up read whose answer never comes does not stop the next ones; its
// late answer is ignored.
TEST(SharedEventsOrderTest, ACatchUpReadWithoutAnAnswerIsReplaced) {
  SharedEventsOptions options;
  options.sync_interval = absl::Milliseconds(1);
  FakeReplica replica(options, /*connected=*/true);
  ASSERT_TRUE(PollUntil([&] { return replica.redis.pending_syncs() >= 2; }));
  replica.redis.AnswerSyncs({{kApp, 3}}, "epoch-1", /*index=*/0);
  EXPECT_EQ(replica.events.stats().syncs, 0);
  EXPECT_FALSE(replica.events.stats().synced);
  ASSERT_TRUE(PollUntil([&] {
    replica.redis.AnswerSyncs({{kApp, 3}}, "epoch-1");
    return replica.events.stats().synced;
  }));
  EXPECT_EQ(replica.events.stats().syncs, 1);
  EXPECT_TRUE(replica.seen.events().empty());
}

}  // namespace
}  // namespace tokenbroker
