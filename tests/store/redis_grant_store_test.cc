#include "service/store/redis_grant_store.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/redis/redis_client.h"
#include "tests/store/redis_store_test_util.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::KeysAndValues;
using ::tokenbroker::testing::MakeKeyRing;
using ::tokenbroker::testing::RandomSealKey;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::SampleGrant;
using ::tokenbroker::testing::StartConnectedClient;
using ::tokenbroker::testing::StatusIs;

constexpr char kSecretMark[] = "rt-SECRET";

UserGrant Versioned(UserGrant grant, int64_t version) {
  grant.version = version;
  return grant;
}

class RedisGrantStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    server_ = RedisServerProcess::StartNew();
    ASSERT_NE(server_, nullptr);
    client_ = StartConnectedClient(*server_);
    ASSERT_NE(client_, nullptr);
    store_ = MakeStore(keys_);
  }

  std::unique_ptr<RedisGrantStore> MakeStore(
      std::shared_ptr<const KeyRing> keys,
      std::string prefix = "tokenbroker:") {
    absl::StatusOr<std::unique_ptr<RedisGrantStore>> store =
        RedisGrantStore::Create(*client_, std::move(keys), std::move(prefix));
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::string RawGet(const std::string& key) {
    absl::StatusOr<RedisReply> reply = server_->Cli({"GET", key});
    EXPECT_THAT(reply, IsOk());
    return reply.ok() ? reply->str : "";
  }
  void RawSet(const std::string& key, const std::string& value) {
    EXPECT_THAT(server_->Cli({"SET", key, value}), IsOk());
  }

  std::unique_ptr<RedisServerProcess> server_;
  std::unique_ptr<RedisClient> client_;
  std::shared_ptr<const KeyRing> keys_ = MakeKeyRing({RandomSealKey("k1")});
  std::unique_ptr<RedisGrantStore> store_;
};

TEST_F(RedisGrantStoreTest, RoundTripReadDeleteAndTheValuesShape) {
  EXPECT_TRUE(store_->IsShared());
  UserGrant grant = Versioned(SampleGrant("viewer", "u-1"), 1);
  grant.needs_reauthorization = true;
  grant.reauthorization_reason = "revoked";
  ASSERT_THAT(store_->PutIfVersion(grant, 0), IsOk());

  absl::StatusOr<std::optional<UserGrant>> read = store_->Read("viewer", "u-1");
  ASSERT_THAT(read, IsOk());
  ASSERT_TRUE(read->has_value());
  const UserGrant& got = **read;
  EXPECT_EQ(got.app, "viewer");
  EXPECT_EQ(got.user_id, "u-1");
  EXPECT_EQ(got.username, grant.username);
  EXPECT_EQ(got.refresh_token, grant.refresh_token);
  EXPECT_EQ(got.scopes, grant.scopes);
  EXPECT_EQ(got.connected_at, grant.connected_at);
  EXPECT_EQ(got.updated_at, grant.updated_at);
  EXPECT_TRUE(got.needs_reauthorization);
  EXPECT_EQ(got.reauthorization_reason, "revoked");
  EXPECT_EQ(got.version, 1);

  EXPECT_EQ(store_->KeyName("viewer", "u-1"), "tokenbroker:grant:viewer:u-1");
  EXPECT_TRUE(
      absl::StartsWith(RawGet("tokenbroker:grant:viewer:u-1"), "1:tbx1.k1."));

  EXPECT_THAT(store_->Delete("viewer", "u-1"), IsOk());
  EXPECT_THAT(store_->Delete("viewer", "u-1"), IsOk());
  read = store_->Read("viewer", "u-1");
  ASSERT_THAT(read, IsOk());
  EXPECT_FALSE(read->has_value());

  // Put() writes whatever is stored.
  ASSERT_THAT(store_->Put(Versioned(SampleGrant("viewer", "u-1"), 9)), IsOk());
  EXPECT_EQ((*store_->Read("viewer", "u-1"))->version, 9);
}

TEST_F(RedisGrantStoreTest, PutIfVersionComparesTheStoredVersion) {
  const UserGrant grant = SampleGrant("viewer", "u-1");
  EXPECT_THAT(store_->PutIfVersion(Versioned(grant, 1), 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(store_->PutIfVersion(Versioned(grant, 1), 0), IsOk());
  // Two writers over version 0: the second loses and writes nothing.
  UserGrant other = Versioned(grant, 1);
  other.refresh_token = "rt-SECRET-other";
  absl::Status lost = store_->PutIfVersion(other, 0);
  EXPECT_THAT(lost, StatusIs(absl::StatusCode::kAborted,
                             AllOf(HasSubstr("tokenbroker:grant:viewer:u-1"),
                                   HasSubstr("version 1, not 0"),
                                   Not(HasSubstr(kSecretMark)))));
  EXPECT_EQ((*store_->Read("viewer", "u-1"))->refresh_token,
            grant.refresh_token);

  ASSERT_THAT(store_->PutIfVersion(Versioned(grant, 2), 1), IsOk());
  EXPECT_THAT(store_->PutIfVersion(Versioned(grant, 3), 1),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ((*store_->Read("viewer", "u-1"))->version, 2);

  // A removed record is version 0 again.
  ASSERT_THAT(store_->Delete("viewer", "u-1"), IsOk());
  EXPECT_THAT(store_->PutIfVersion(Versioned(grant, 3), 2),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("version 0")));
  EXPECT_THAT(store_->PutIfVersion(Versioned(grant, 3), 0), IsOk());

  // A value that is not ours blocks the write rather than being overwritten.
  RawSet("tokenbroker:grant:viewer:u-2", "garbage");
  EXPECT_THAT(
      store_->PutIfVersion(Versioned(SampleGrant("viewer", "u-2"), 1), 0),
      StatusIs(absl::StatusCode::kAborted, HasSubstr("an unreadable one")));
}

TEST_F(RedisGrantStoreTest, RefusesAnAppWithAColon) {
  EXPECT_THAT(store_->PutIfVersion(Versioned(SampleGrant("a:b", "u"), 1), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("':'")));
  EXPECT_THAT(store_->Read("a:b", "u"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RedisGrantStoreTest, AValueCopiedToAnotherKeyDoesNotOpen) {
  ASSERT_THAT(
      store_->PutIfVersion(Versioned(SampleGrant("viewer", "u-1"), 1), 0),
      IsOk());
  ASSERT_THAT(
      store_->PutIfVersion(Versioned(SampleGrant("viewer", "u-2"), 1), 0),
      IsOk());
  // u-1's value under u-2's key (and under another app's): an attacker with
  // write access to Redis swapping grants.
  const std::string value = RawGet("tokenbroker:grant:viewer:u-1");
  RawSet("tokenbroker:grant:viewer:u-2", value);
  RawSet("tokenbroker:grant:admin:u-1", value);

  // The seal's associated data (the key name) refuses it, before the sealed
  // record's own app and user are even looked at.
  EXPECT_THAT(store_->Read("viewer", "u-2"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("tokenbroker:grant:viewer:u-2"),
                             HasSubstr("does not authenticate"),
                             Not(HasSubstr(kSecretMark)))));
  GrantStoreLoad load = store_->LoadAll();
  EXPECT_THAT(load.error, IsOk());
  EXPECT_THAT(load.grants, ElementsAre(Field(&UserGrant::user_id, "u-1")));
  ASSERT_THAT(load.problems, SizeIs(2));
  EXPECT_THAT(load.problems[0], HasSubstr("tokenbroker:grant:admin:u-1: "));
  EXPECT_THAT(load.problems[1], HasSubstr("tokenbroker:grant:viewer:u-2: "));
  EXPECT_THAT(load.problems, Each(HasSubstr("does not authenticate")));
  for (const std::string& problem : load.problems) {
    EXPECT_THAT(problem, Not(HasSubstr(kSecretMark)));
  }
  // Left in place for an operator.
  EXPECT_EQ(RawGet("tokenbroker:grant:viewer:u-2"), value);
}

TEST_F(RedisGrantStoreTest, ARecordWhoseClearVersionWasEditedIsRefused) {
  ASSERT_THAT(
      store_->PutIfVersion(Versioned(SampleGrant("viewer", "u-1"), 4), 0),
      IsOk());
  std::string value = RawGet("tokenbroker:grant:viewer:u-1");
  ASSERT_TRUE(absl::StartsWith(value, "4:"));
  RawSet("tokenbroker:grant:viewer:u-1", "9" + value.substr(1));
  EXPECT_THAT(store_->Read("viewer", "u-1"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("clear version 9 is not its sealed one 4")));
}

TEST_F(RedisGrantStoreTest, ARecordSealedWithAnUnknownKeyIsAProblem) {
  ASSERT_THAT(
      store_->PutIfVersion(Versioned(SampleGrant("viewer", "u-1"), 1), 0),
      IsOk());
  std::unique_ptr<RedisGrantStore> other =
      MakeStore(MakeKeyRing({RandomSealKey("k2")}));
  EXPECT_THAT(other->Read("viewer", "u-1"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("k1")));
  GrantStoreLoad load = other->LoadAll();
  EXPECT_THAT(load.grants, IsEmpty());
  ASSERT_THAT(load.problems, SizeIs(1));
  EXPECT_THAT(load.problems[0],
              AllOf(HasSubstr("tokenbroker:grant:viewer:u-1"), HasSubstr("k1"),
                    Not(HasSubstr(kSecretMark))));
  // A ring holding the same id with other bytes: authentication fails.
  std::unique_ptr<RedisGrantStore> impostor =
      MakeStore(MakeKeyRing({RandomSealKey("k1")}));
  EXPECT_THAT(impostor->Read("viewer", "u-1"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(RedisGrantStoreTest, LoadAllReSealsWithTheCurrentKey) {
  SealKey old_key = RandomSealKey("old");
  std::unique_ptr<RedisGrantStore> before = MakeStore(MakeKeyRing({old_key}));
  for (const char* user : {"u-1", "u-2"}) {
    ASSERT_THAT(
        before->PutIfVersion(Versioned(SampleGrant("viewer", user), 3), 0),
        IsOk());
  }
  EXPECT_TRUE(
      absl::StartsWith(RawGet("tokenbroker:grant:viewer:u-1"), "3:tbx1.old."));

  SealKey new_key = RandomSealKey("new");
  std::unique_ptr<RedisGrantStore> rotated =
      MakeStore(MakeKeyRing({new_key, old_key}));
  GrantStoreLoad load = rotated->LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  EXPECT_THAT(load.warnings, IsEmpty());
  ASSERT_THAT(load.grants, SizeIs(2));
  EXPECT_EQ(load.grants[0].version, 3);  // the same record, re-sealed
  for (const char* user : {"u-1", "u-2"}) {
    EXPECT_TRUE(absl::StartsWith(
        RawGet(absl::StrCat("tokenbroker:grant:viewer:", user)), "3:tbx1.new."))
        << user;
  }
  // The old key can go.
  std::unique_ptr<RedisGrantStore> after = MakeStore(MakeKeyRing({new_key}));
  absl::StatusOr<std::optional<UserGrant>> read = after->Read("viewer", "u-2");
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ((*read)->refresh_token, SampleGrant("viewer", "u-2").refresh_token);
}

TEST_F(RedisGrantStoreTest, NoRefreshTokenInAnyKeyOrValue) {
  for (const char* user : {"u-1", "u-2", "u-3"}) {
    ASSERT_THAT(
        store_->PutIfVersion(Versioned(SampleGrant("viewer", user), 1), 0),
        IsOk());
  }
  UserGrant rotated = Versioned(SampleGrant("viewer", "u-1"), 2);
  rotated.refresh_token = "rt-SECRET-rotated-Zq9";
  ASSERT_THAT(store_->PutIfVersion(rotated, 1), IsOk());
  std::vector<std::string> seen = KeysAndValues(*server_);
  EXPECT_THAT(seen, SizeIs(6));
  for (const std::string& text : seen) {
    EXPECT_THAT(text, Not(HasSubstr(kSecretMark)));
    EXPECT_THAT(text, Not(HasSubstr("Zq9")));
  }
}

TEST_F(RedisGrantStoreTest, LoadAllReportsCorruptRecordsAndLoadsTheOthers) {
  for (const char* user : {"u-1", "u-2", "u-3"}) {
    ASSERT_THAT(
        store_->PutIfVersion(Versioned(SampleGrant("viewer", user), 1), 0),
        IsOk());
  }
  std::string tampered = RawGet("tokenbroker:grant:viewer:u-2");
  tampered[tampered.size() - 5] ^= 1;
  RawSet("tokenbroker:grant:viewer:u-2", tampered);
  RawSet("tokenbroker:grant:viewer:u-4", "garbage rt-SECRET-in-garbage");
  RawSet("tokenbroker:grant:no-user-part", "1:x");
  EXPECT_THAT(server_->Cli({"HSET", "tokenbroker:grant:viewer:u-5", "a", "b"}),
              IsOk());
  RawSet("tokenbroker:token:viewer:abc", "not a grant");  // not listed

  GrantStoreLoad load = store_->LoadAll();
  EXPECT_THAT(load.error, IsOk());
  EXPECT_THAT(load.grants, ElementsAre(Field(&UserGrant::user_id, "u-1"),
                                       Field(&UserGrant::user_id, "u-3")));
  ASSERT_THAT(load.problems, SizeIs(3));
  EXPECT_THAT(load.problems[0], HasSubstr("tokenbroker:grant:no-user-part: "
                                          "not a grant key"));
  EXPECT_THAT(load.problems[1], HasSubstr("tokenbroker:grant:viewer:u-2: "));
  EXPECT_THAT(load.problems[2],
              AllOf(HasSubstr("tokenbroker:grant:viewer:u-4: "),
                    HasSubstr("<version>:")));
  for (const std::string& problem : load.problems) {
    EXPECT_THAT(problem, Not(HasSubstr(kSecretMark)));
  }
}

TEST_F(RedisGrantStoreTest, LoadAllListsOnlyItsPrefixEvenWithGlobCharacters) {
  std::unique_ptr<RedisGrantStore> starred = MakeStore(keys_, "t*[b]?:");
  std::unique_ptr<RedisGrantStore> plain = MakeStore(keys_, "tXbY:");
  ASSERT_THAT(
      starred->PutIfVersion(Versioned(SampleGrant("viewer", "u-1"), 1), 0),
      IsOk());
  ASSERT_THAT(
      plain->PutIfVersion(Versioned(SampleGrant("viewer", "u-2"), 1), 0),
      IsOk());
  GrantStoreLoad load = starred->LoadAll();
  EXPECT_THAT(load.problems, IsEmpty());
  EXPECT_THAT(load.grants, ElementsAre(Field(&UserGrant::user_id, "u-1")));
}

TEST_F(RedisGrantStoreTest, UnavailableWhenRedisIsDown) {
  ASSERT_THAT(
      store_->PutIfVersion(Versioned(SampleGrant("viewer", "u-1"), 1), 0),
      IsOk());
  ASSERT_THAT(server_->Stop(), IsOk());
  const UserGrant next = Versioned(SampleGrant("viewer", "u-1"), 2);
  EXPECT_THAT(store_->PutIfVersion(next, 1),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("tokenbroker:grant:viewer:u-1"),
                             Not(HasSubstr(kSecretMark)))));
  EXPECT_THAT(store_->Put(next), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_->Read("viewer", "u-1"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_->Delete("viewer", "u-1"),
              StatusIs(absl::StatusCode::kUnavailable));
  GrantStoreLoad load = store_->LoadAll();
  EXPECT_THAT(load.error, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(load.grants, IsEmpty());
}

}  // namespace
}  // namespace tokenbroker
