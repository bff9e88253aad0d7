#include "service/users/user_grants.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/memory_grant_store.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

UserGrant Grant(std::string app, std::string user_id, std::string username,
                std::string refresh_token) {
  UserGrant grant;
  grant.app = std::move(app);
  grant.user_id = std::move(user_id);
  grant.username = std::move(username);
  grant.refresh_token = std::move(refresh_token);
  grant.scopes = {"view:environment"};
  return grant;
}

class UserGrantsTest : public ::testing::Test {
 protected:
  absl::Status Rotate(const std::string& user_id, int64_t version,
                      std::string refresh_token) {
    absl::Notification done;
    absl::Status result;
    grants_.StoreRotated("viewer", user_id, version, std::move(refresh_token),
                         [&](absl::Status status) {
                           result = status;
                           done.Notify();
                         });
    done.WaitForNotification();
    return result;
  }

  FakeClock clock_;
  MemoryGrantStore store_;
  UserGrants grants_{store_, clock_};
};

TEST_F(UserGrantsTest, ResolvesByIdOrUsernameAndTheOnlyUser) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  EXPECT_EQ(grants_.Resolve("viewer", "")->user_id, "u-1");
  EXPECT_EQ(grants_.Resolve("viewer", "alice")->user_id, "u-1");
  EXPECT_EQ(grants_.Resolve("viewer", "u-1")->username, "alice");
  EXPECT_THAT(grants_.Resolve("viewer", "bob"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("bob")));
  EXPECT_THAT(grants_.Resolve("other", ""),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("tokenbrokerctl connect other")));

  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-2", "bob", "rt-b")), IsOk());
  absl::StatusOr<UserGrantSummary> ambiguous = grants_.Resolve("viewer", "");
  EXPECT_THAT(ambiguous, StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("2 users")));
  // Names nobody: a caller must not learn the other users from it.
  EXPECT_THAT(ambiguous.status().message(), Not(HasSubstr("alice")));
  EXPECT_EQ(grants_.Resolve("viewer", "bob")->user_id, "u-2");
  std::vector<UserGrantSummary> listed = grants_.List("viewer");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].username, "alice");
  EXPECT_EQ(listed[1].username, "bob");
}

TEST_F(UserGrantsTest, ConnectIsDurableAndClearsAReauthorizationMark) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  EXPECT_EQ(store_.Get("viewer", "u-1")->refresh_token, "rt-a");
  absl::StatusOr<RefreshCredential> lent =
      grants_.BorrowRefreshToken("viewer", "u-1");
  ASSERT_THAT(lent, IsOk());
  grants_.MarkNeedsReauthorization("viewer", "u-1", lent->version, "revoked");
  grants_.Drain();
  EXPECT_TRUE(store_.Get("viewer", "u-1")->needs_reauthorization);
  EXPECT_THAT(grants_.BorrowRefreshToken("viewer", "u-1"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("needs re-authorization (revoked)")));
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-new")),
              IsOk());
  EXPECT_FALSE(grants_.Find("viewer", "u-1")->needs_reauthorization);
  EXPECT_EQ(grants_.BorrowRefreshToken("viewer", "u-1")->refresh_token,
            "rt-new");
}

TEST_F(UserGrantsTest, AFailedConnectChangesNothing) {
  store_.SetFailure(absl::UnavailableError("disk full"));
  EXPECT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(grants_.Find("viewer", "u-1").has_value());
}

TEST_F(UserGrantsTest, RotationOfAReplacedGrantIsRefused) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  const int64_t lent = grants_.BorrowRefreshToken("viewer", "u-1")->version;
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-b")), IsOk());
  EXPECT_THAT(Rotate("u-1", lent, "rt-rotated"),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(store_.Get("viewer", "u-1")->refresh_token, "rt-b");
  // A mark of the replaced grant is dropped too.
  grants_.MarkNeedsReauthorization("viewer", "u-1", lent, "old");
  grants_.Drain();
  EXPECT_FALSE(grants_.Find("viewer", "u-1")->needs_reauthorization);
}

TEST_F(UserGrantsTest, RotationIsStoredAndLentNext) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  const int64_t lent = grants_.BorrowRefreshToken("viewer", "u-1")->version;
  ASSERT_THAT(Rotate("u-1", lent, "rt-b"), IsOk());
  EXPECT_EQ(store_.Get("viewer", "u-1")->refresh_token, "rt-b");
  EXPECT_EQ(grants_.BorrowRefreshToken("viewer", "u-1")->refresh_token, "rt-b");
}

TEST_F(UserGrantsTest, RemoveDeletesDurablyAndReturnsTheRefreshToken) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  absl::StatusOr<std::string> removed = grants_.Remove("viewer", "u-1");
  ASSERT_THAT(removed, IsOk());
  EXPECT_EQ(*removed, "rt-a");
  EXPECT_FALSE(store_.Get("viewer", "u-1").has_value());
  EXPECT_THAT(grants_.Remove("viewer", "u-1"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(UserGrantsTest, LoadIndexesTheStoresRecords) {
  ASSERT_THAT(store_.Put(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  ASSERT_THAT(store_.Put(Grant("other", "u-1", "alice", "rt-o")), IsOk());
  EXPECT_TRUE(grants_.Load().empty());
  EXPECT_EQ(grants_.List().size(), 2u);
  EXPECT_EQ(grants_.BorrowRefreshToken("other", "u-1")->refresh_token, "rt-o");
}

TEST_F(UserGrantsTest, ConcurrentRotationsOfDifferentUsers) {
  constexpr int kUsers = 8;
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_THAT(grants_.Connect(Grant("viewer", absl::StrCat("u-", i),
                                      absl::StrCat("user", i), "rt-0")),
                IsOk());
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kUsers; ++i) {
    threads.emplace_back([this, i] {
      const std::string user = absl::StrCat("u-", i);
      for (int round = 1; round <= 20; ++round) {
        absl::StatusOr<RefreshCredential> lent =
            grants_.BorrowRefreshToken("viewer", user);
        ASSERT_THAT(lent, IsOk());
        ASSERT_THAT(Rotate(user, lent->version, absl::StrCat("rt-", round)),
                    IsOk());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kUsers; ++i) {
    EXPECT_EQ(store_.Get("viewer", absl::StrCat("u-", i))->refresh_token,
              "rt-20");
  }
}

TEST_F(UserGrantsTest, VersionsArePerGrantAndGrowFromTheStoredOne) {
  UserGrant stored = Grant("viewer", "u-1", "alice", "rt-a");
  stored.version = 7;
  ASSERT_THAT(store_.Put(stored), IsOk());
  EXPECT_TRUE(grants_.Load().empty());
  const int64_t lent = grants_.BorrowRefreshToken("viewer", "u-1")->version;
  EXPECT_EQ(lent, 7);
  ASSERT_THAT(Rotate("u-1", lent, "rt-b"), IsOk());
  EXPECT_EQ(store_.Get("viewer", "u-1")->version, 8);
  // Another user's grant has versions of its own.
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-2", "bob", "rt-c")), IsOk());
  EXPECT_EQ(store_.Get("viewer", "u-2")->version, 1);
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-d")), IsOk());
  EXPECT_EQ(store_.Get("viewer", "u-1")->version, 9);
}

TEST_F(UserGrantsTest, ARotationTheStoreRefusedIsWrittenByTheNextWrite) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-2", "bob", "rt-b")), IsOk());
  store_.SetFailure(absl::UnavailableError("disk full"));
  const int64_t lent = grants_.BorrowRefreshToken("viewer", "u-1")->version;
  EXPECT_THAT(Rotate("u-1", lent, "rt-a2"),
              StatusIs(absl::StatusCode::kUnavailable));
  // Kept in memory: the only refresh token that works now.
  EXPECT_EQ(grants_.BorrowRefreshToken("viewer", "u-1")->refresh_token,
            "rt-a2");
  EXPECT_EQ(store_.Get("viewer", "u-1")->refresh_token, "rt-a");
  store_.SetFailure(absl::OkStatus());
  // A write of ANOTHER grant writes it too.
  const int64_t lent_b = grants_.BorrowRefreshToken("viewer", "u-2")->version;
  ASSERT_THAT(Rotate("u-2", lent_b, "rt-b2"), IsOk());
  EXPECT_EQ(store_.Get("viewer", "u-1")->refresh_token, "rt-a2");
}

TEST_F(UserGrantsTest, WriteBackAndTheSharedStoreHooksWithALocalStore) {
  ASSERT_THAT(grants_.Connect(Grant("viewer", "u-1", "alice", "rt-a")), IsOk());
  store_.SetFailure(absl::UnavailableError("disk full"));
  ASSERT_THAT(Rotate("u-1", 1, "rt-b"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(grants_.DirtyCount(), 1);
  absl::Notification written;
  absl::Status write_back;
  store_.SetFailure(absl::OkStatus());
  grants_.WriteBack([&](absl::Status status) {
    write_back = status;
    written.Notify();
  });
  written.WaitForNotification();
  EXPECT_THAT(write_back, IsOk());
  EXPECT_EQ(grants_.DirtyCount(), 0);
  EXPECT_EQ(store_.Get("viewer", "u-1")->refresh_token, "rt-b");

  // The index is the truth: nothing to re-read.
  absl::Status refreshed = absl::UnknownError("not called");
  grants_.Refresh("viewer", "u-1",
                  [&](absl::Status status) { refreshed = status; });
  EXPECT_THAT(refreshed, IsOk());
  grants_.Adopt("viewer", "u-1", 99);
  grants_.Drain();
  EXPECT_EQ(grants_.BorrowRefreshToken("viewer", "u-1")->version, 2);
  EXPECT_EQ(store_.put_count(), 2);
}

}  // namespace
}  // namespace tokenbroker
