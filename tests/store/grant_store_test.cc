#include "service/store/grant_store.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/memory_grant_store.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::SampleGrant;
using ::tokenbroker::testing::StatusIs;

TEST(ValidateGrantTest, AcceptsACompleteGrantAndAnEmptyRefreshToken) {
  UserGrant grant = SampleGrant("app", "user");
  EXPECT_THAT(ValidateGrant(grant), IsOk());
  grant.refresh_token.clear();
  grant.needs_reauthorization = true;
  EXPECT_THAT(ValidateGrant(grant), IsOk());
  grant.username = "Zoë";
  EXPECT_THAT(ValidateGrant(grant), IsOk());
}

TEST(ValidateGrantTest, RefusesBadKeysAndTokensWithoutQuotingTheToken) {
  struct Case {
    void (*change)(UserGrant*);
    const char* what;
  };
  const Case cases[] = {
      {[](UserGrant* g) { g->app.clear(); }, "app is empty"},
      {[](UserGrant* g) { g->user_id.clear(); }, "user_id is empty"},
      {[](UserGrant* g) { g->app = std::string(257, 'a'); }, "longer than 256"},
      {[](UserGrant* g) { g->user_id = std::string("a\0b", 3); }, "NUL"},
      {[](UserGrant* g) { g->app = "\xc0\xae"; }, "app is not valid UTF-8"},
      {[](UserGrant* g) { g->username = "\xff"; }, "username"},
      {[](UserGrant* g) { g->scopes.push_back("\xed\xa0\x80"); }, "scope"},
      {[](UserGrant* g) { g->reauthorization_reason = "\x80"; }, "reason"},
      {[](UserGrant* g) { g->refresh_token += "\n"; }, "refresh_token"},
      {[](UserGrant* g) { g->refresh_token += "\xc3\xa9"; }, "refresh_token"},
      {[](UserGrant* g) { g->refresh_token += std::string(1, '\0'); },
       "refresh_token"},
  };
  for (const Case& c : cases) {
    UserGrant grant = SampleGrant("app", "user");
    c.change(&grant);
    EXPECT_THAT(ValidateGrant(grant),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(c.what), Not(HasSubstr("rt-SECRET")))))
        << c.what;
  }
  EXPECT_THAT(ValidateGrantKey("app", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(UserGrantTest, PrintToLeavesTheRefreshTokenOut) {
  UserGrant grant = SampleGrant("app", "user-1");
  std::string printed = ::testing::PrintToString(grant);
  EXPECT_THAT(printed, AllOf(HasSubstr("app"), HasSubstr("user-1"),
                             HasSubstr("view:environment"),
                             Not(HasSubstr(grant.refresh_token))));
}

TEST(GrantRecordJsonTest, RoundTripsAndClearsItsInput) {
  UserGrant grant = SampleGrant("app", "user-1");
  grant.refresh_token = "rt-SECRET-with\"quote\\and-backslash";
  std::string json = GrantRecordJson(grant);
  absl::StatusOr<UserGrant> parsed = ParseGrantRecordJson(&json);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_TRUE(json.empty());
  EXPECT_EQ(parsed->refresh_token, grant.refresh_token);
  EXPECT_EQ(parsed->version, grant.version);
  EXPECT_EQ(parsed->connected_at, grant.connected_at);
  EXPECT_EQ(parsed->scopes, grant.scopes);

  std::string broken = "{\"app\":\"app\",\"refresh_token\":\"rt-SECRET-x\"}";
  EXPECT_THAT(
      ParseGrantRecordJson(&broken),
      StatusIs(absl::StatusCode::kDataLoss,
               AllOf(HasSubstr("user_id"), Not(HasSubstr("rt-SECRET")))));
  std::string garbage = "rt-SECRET-not-json";
  EXPECT_THAT(ParseGrantRecordJson(&garbage),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("not a JSON object"),
                             Not(HasSubstr("rt-SECRET")))));
}

// The defaults a local store inherits (MemoryGrantStore overrides neither).
TEST(GrantStoreDefaultsTest, ReadAndPutIfVersionCompareTheStoredVersion) {
  MemoryGrantStore store;
  GrantStore& base = store;
  EXPECT_FALSE(base.IsShared());
  EXPECT_THAT(base.Read("app", "u1"), IsOk());
  EXPECT_FALSE(base.Read("app", "u1")->has_value());

  UserGrant grant = SampleGrant("app", "u1");
  grant.version = 1;
  EXPECT_THAT(
      base.PutIfVersion(grant, 1),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not above")));
  EXPECT_THAT(base.PutIfVersion(grant, 0), IsOk());  // absent is version 0
  EXPECT_EQ((*base.Read("app", "u1"))->version, 1);
  grant.version = 2;
  EXPECT_THAT(base.PutIfVersion(grant, 0),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("version 1")));
  EXPECT_THAT(base.PutIfVersion(grant, 1), IsOk());
  EXPECT_EQ((*base.Read("app", "u1"))->version, 2);
  EXPECT_EQ(store.put_count(), 2);
}

}  // namespace
}  // namespace tokenbroker
