// UserGrants over one Redis shared by two "replicas" (two clients, stores and
// UserGrants), against a real redis-server.

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/redis/redis_client.h"
#include "service/store/redis_grant_store.h"
#include "service/users/user_grants.h"
#include "tests/store/redis_store_test_util.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::MakeKeyRing;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RandomSealKey;
using ::tokenbroker::testing::RedisServerOptions;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::StartConnectedClient;
using ::tokenbroker::testing::StatusIs;

UserGrant Grant(std::string user_id, std::string refresh_token) {
  UserGrant grant;
  grant.app = "viewer";
  grant.user_id = std::move(user_id);
  grant.username = "alice";
  grant.refresh_token = std::move(refresh_token);
  grant.scopes = {"view:environment"};
  return grant;
}

// A callback's status, waited for.
class StatusWaiter {
 public:
  absl::AnyInvocable<void(absl::Status)> Callback() {
    return [this](absl::Status status) {
      status_ = std::move(status);
      done_.Notify();
    };
  }
  absl::Status Wait() {
    done_.WaitForNotification();
    return status_;
  }

 private:
  absl::Notification done_;
  absl::Status status_;
};

// One broker replica: its own Redis connection, store and grants.
struct Replica {
  std::unique_ptr<RedisClient> client;
  std::unique_ptr<RedisGrantStore> store;
  std::unique_ptr<UserGrants> grants;

  absl::Status Rotate(const std::string& user_id, int64_t version,
                      std::string refresh_token) {
    StatusWaiter waiter;
    grants->StoreRotated("viewer", user_id, version, std::move(refresh_token),
                         waiter.Callback());
    return waiter.Wait();
  }
  absl::Status Refresh(const std::string& user_id) {
    StatusWaiter waiter;
    grants->Refresh("viewer", user_id, waiter.Callback());
    return waiter.Wait();
  }
  absl::Status WriteBack() {
    StatusWaiter waiter;
    grants->WriteBack(waiter.Callback());
    return waiter.Wait();
  }
  // The token and version a refresh would use now.
  std::pair<std::string, int64_t> Lent(const std::string& user_id) {
    absl::StatusOr<RefreshCredential> lent =
        grants->BorrowRefreshToken("viewer", user_id);
    EXPECT_THAT(lent, IsOk());
    if (!lent.ok()) return {"", -1};
    return {lent->refresh_token, lent->version};
  }
};

class UserGrantsSharedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    // Durable across a restart, as a production Redis with AOF.
    RedisServerOptions options;
    options.extra_config = {"appendonly yes", "appendfsync always"};
    server_ = RedisServerProcess::StartNew(std::move(options));
    ASSERT_NE(server_, nullptr);
    for (Replica* replica : {&a_, &b_}) {
      replica->client = StartConnectedClient(*server_);
      ASSERT_NE(replica->client, nullptr);
      absl::StatusOr<std::unique_ptr<RedisGrantStore>> store =
          RedisGrantStore::Create(*replica->client, keys_);
      ASSERT_THAT(store, IsOk());
      replica->store = *std::move(store);
      replica->grants = std::make_unique<UserGrants>(*replica->store, clock_);
    }
  }

  void TearDown() override {
    // The grants drain their writer threads before the stores and clients go.
    for (Replica* replica : {&a_, &b_}) replica->grants.reset();
  }

  std::optional<UserGrant> Stored(const std::string& user_id) {
    absl::StatusOr<std::optional<UserGrant>> read =
        a_.store->Read("viewer", user_id);
    EXPECT_THAT(read, IsOk());
    return read.ok() ? *read : std::nullopt;
  }

  void RestartRedis() {
    ASSERT_THAT(server_->Start(), IsOk());
    for (Replica* replica : {&a_, &b_}) {
      RedisClient* client = replica->client.get();
      ASSERT_TRUE(PollUntil([client] { return client->stats().connected; }))
          << "a client did not reconnect";
    }
  }

  FakeClock clock_;
  std::shared_ptr<const KeyRing> keys_ = MakeKeyRing({RandomSealKey("k1")});
  std::unique_ptr<RedisServerProcess> server_;
  Replica a_;
  Replica b_;
};

TEST_F(UserGrantsSharedTest, ARotationOnOneReplicaIsSeenByTheOthersRefresh) {
  absl::Mutex mu;
  std::vector<std::tuple<std::string, std::string, int64_t>> published;
  a_.grants->SetWriteListener(
      [&](const std::string& app, const std::string& user, int64_t version) {
        absl::MutexLock lock(&mu);
        published.emplace_back(app, user, version);
      });
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-a")), IsOk());
  EXPECT_EQ(Stored("u-1")->version, 1);

  // B had never heard of the grant: Refresh() finds it.
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  EXPECT_EQ(b_.Lent("u-1"), std::make_pair(std::string("rt-a"), int64_t{1}));

  ASSERT_THAT(a_.Rotate("u-1", 1, "rt-b"), IsOk());
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-b");
  EXPECT_EQ(b_.Lent("u-1").first, "rt-a");  // stale until it re-reads
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  EXPECT_EQ(b_.Lent("u-1"), std::make_pair(std::string("rt-b"), int64_t{2}));

  // The pub/sub path: A's listener says version 3, B adopts it.
  ASSERT_THAT(a_.Rotate("u-1", 2, "rt-c"), IsOk());
  b_.grants->Adopt("viewer", "u-1", 3);
  b_.grants->Drain();
  EXPECT_EQ(b_.Lent("u-1"), std::make_pair(std::string("rt-c"), int64_t{3}));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(published, ElementsAre(std::make_tuple("viewer", "u-1", 1),
                                     std::make_tuple("viewer", "u-1", 2),
                                     std::make_tuple("viewer", "u-1", 3)));
}

TEST_F(UserGrantsSharedTest, ConcurrentRotationsOfOneVersionExactlyOneWins) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  absl::Status result_a;
  absl::Status result_b;
  std::thread on_a([&] { result_a = a_.Rotate("u-1", 1, "rt-from-a"); });
  std::thread on_b([&] { result_b = b_.Rotate("u-1", 1, "rt-from-b"); });
  on_a.join();
  on_b.join();

  ASSERT_NE(result_a.ok(), result_b.ok()) << result_a << " / " << result_b;
  const bool a_won = result_a.ok();
  const std::string winner = a_won ? "rt-from-a" : "rt-from-b";
  EXPECT_THAT(a_won ? result_b : result_a,
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("another replica changed")));
  EXPECT_EQ(Stored("u-1")->refresh_token, winner);
  EXPECT_EQ(Stored("u-1")->version, 2);
  // The loser re-read: it lends the winner's token, never its own again.
  EXPECT_EQ(a_.Lent("u-1"), std::make_pair(winner, int64_t{2}));
  EXPECT_EQ(b_.Lent("u-1"), std::make_pair(winner, int64_t{2}));
  EXPECT_EQ(a_.grants->DirtyCount() + b_.grants->DirtyCount(), 0);
}

TEST_F(UserGrantsSharedTest,
       ConnectReplacesWhateverIsStoredWithTheNextVersion) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(a_.Rotate("u-1", 1, "rt-1"), IsOk());
  ASSERT_THAT(a_.Rotate("u-1", 2, "rt-2"), IsOk());
  // B never read the grant: its Connect still goes over version 3.
  ASSERT_THAT(b_.grants->Connect(Grant("u-1", "rt-new")), IsOk());
  EXPECT_EQ(Stored("u-1")->version, 4);
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-new");
  // A's rotation of what it lent (version 3) loses: B replaced the grant.
  EXPECT_THAT(a_.Rotate("u-1", 3, "rt-late"),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(a_.Lent("u-1"), std::make_pair(std::string("rt-new"), int64_t{4}));
}

TEST_F(UserGrantsSharedTest, ARemovalOnOneReplicaIsForgottenByTheOthers) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(a_.grants->Connect(Grant("u-2", "rt-0")), IsOk());
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  ASSERT_THAT(b_.Refresh("u-2"), IsOk());
  absl::StatusOr<std::string> removed = a_.grants->Remove("viewer", "u-1");
  ASSERT_THAT(removed, IsOk());
  EXPECT_EQ(*removed, "rt-0");
  ASSERT_THAT(a_.grants->Remove("viewer", "u-2"), IsOk());
  EXPECT_FALSE(Stored("u-1").has_value());

  // Refresh() finds nothing stored; a rotation in flight loses its
  // compare-and-set; the pub/sub hook forgets at once.
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  EXPECT_FALSE(b_.grants->Find("viewer", "u-1").has_value());
  EXPECT_THAT(b_.Rotate("u-2", 1, "rt-orphan"),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_FALSE(b_.grants->Find("viewer", "u-2").has_value());
  EXPECT_FALSE(Stored("u-2").has_value());  // not written back to life
  ASSERT_THAT(a_.grants->Connect(Grant("u-3", "rt-0")), IsOk());
  ASSERT_THAT(b_.Refresh("u-3"), IsOk());
  b_.grants->Forget("viewer", "u-3");
  EXPECT_THAT(b_.grants->BorrowRefreshToken("viewer", "u-3"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(UserGrantsSharedTest, ARotationWhileRedisIsDownIsWrittenBackWhenItIsUp) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(a_.grants->Connect(Grant("u-2", "rt-0")), IsOk());
  ASSERT_THAT(server_->Stop(), IsOk());

  EXPECT_THAT(a_.Rotate("u-1", 1, "rt-1"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(a_.grants->DirtyCount(), 1);
  // The rotated token is the only one that works: it is lent next.
  EXPECT_EQ(a_.Lent("u-1"), std::make_pair(std::string("rt-1"), int64_t{2}));
  EXPECT_THAT(a_.Rotate("u-1", 2, "rt-2"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(a_.WriteBack(), StatusIs(absl::StatusCode::kUnavailable));

  RestartRedis();
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-0");  // not yet
  ASSERT_THAT(a_.WriteBack(), IsOk());
  EXPECT_EQ(a_.grants->DirtyCount(), 0);
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-2");
  EXPECT_EQ(Stored("u-1")->version, 3);
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  EXPECT_EQ(b_.Lent("u-1"), std::make_pair(std::string("rt-2"), int64_t{3}));
}

TEST_F(UserGrantsSharedTest, TheNextWriteThatWorksWritesBackTheDirtyGrants) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(a_.grants->Connect(Grant("u-2", "rt-0")), IsOk());
  ASSERT_THAT(server_->Stop(), IsOk());
  EXPECT_THAT(a_.Rotate("u-1", 1, "rt-1"),
              StatusIs(absl::StatusCode::kUnavailable));
  RestartRedis();
  // No WriteBack() call: a rotation of another grant does it.
  ASSERT_THAT(a_.Rotate("u-2", 1, "rt-1"), IsOk());
  EXPECT_EQ(a_.grants->DirtyCount(), 0);
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-1");
}

TEST_F(UserGrantsSharedTest, BothRotatedWhileDownTheFirstWriteBackWins) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(b_.Refresh("u-1"), IsOk());
  ASSERT_THAT(server_->Stop(), IsOk());
  EXPECT_THAT(a_.Rotate("u-1", 1, "rt-from-a"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(b_.Rotate("u-1", 1, "rt-from-b"),
              StatusIs(absl::StatusCode::kUnavailable));
  RestartRedis();

  ASSERT_THAT(a_.WriteBack(), IsOk());
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-from-a");
  // B's write-back loses the compare-and-set: the store wins, B adopts it
  // and drops its own rotated token (OK: nothing is left dirty).
  ASSERT_THAT(b_.WriteBack(), IsOk());
  EXPECT_EQ(b_.grants->DirtyCount(), 0);
  EXPECT_EQ(Stored("u-1")->refresh_token, "rt-from-a");
  EXPECT_EQ(Stored("u-1")->version, 2);
  EXPECT_EQ(b_.Lent("u-1"),
            std::make_pair(std::string("rt-from-a"), int64_t{2}));
}

TEST_F(UserGrantsSharedTest, ResyncCatchesUpOnMissedWrites) {
  ASSERT_THAT(a_.grants->Connect(Grant("u-1", "rt-0")), IsOk());
  ASSERT_THAT(a_.grants->Connect(Grant("u-2", "rt-0")), IsOk());
  EXPECT_THAT(b_.grants->Load(), ::testing::IsEmpty());
  ASSERT_THAT(a_.Rotate("u-1", 1, "rt-1"), IsOk());
  ASSERT_THAT(a_.grants->Connect(Grant("u-3", "rt-0")), IsOk());
  StatusWaiter waiter;
  b_.grants->Resync(waiter.Callback());
  ASSERT_THAT(waiter.Wait(), IsOk());
  EXPECT_EQ(b_.Lent("u-1"), std::make_pair(std::string("rt-1"), int64_t{2}));
  std::vector<std::string> users;
  for (const UserGrantSummary& grant : b_.grants->List("viewer")) {
    users.push_back(grant.user_id);
  }
  EXPECT_THAT(users, UnorderedElementsAre("u-1", "u-2", "u-3"));
}

}  // namespace
}  // namespace tokenbroker
