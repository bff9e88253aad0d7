#include "service/shared/shared_keys.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

TEST(SharedKeysTest, NamesFollowThePlan) {
  SharedKeys keys;
  std::string hash = SharedKeys::KeyHash("app\x1fread:apps\x1fuser-42");
  EXPECT_EQ(hash.size(), 32u);
  EXPECT_EQ(keys.Token("app", hash), "tokenbroker:token:app:" + hash);
  EXPECT_EQ(keys.Lease("app", hash), "tokenbroker:lease:app:" + hash);
  EXPECT_EQ(keys.Fence("app", hash), "tokenbroker:fence:app:" + hash);
  EXPECT_EQ(keys.Grant("app", "u1"), "tokenbroker:grant:app:u1");
  EXPECT_EQ(keys.Revgen(), "tokenbroker:revgen");
  EXPECT_EQ(keys.ConfigGeneration(), "tokenbroker:config_generation");
  EXPECT_EQ(keys.Events(), "tokenbroker:events");
  EXPECT_EQ(SharedKeys::RevgenUserField("app", "u1"), "app\x1fu1");
  EXPECT_EQ(SharedKeys("p/").Token("a", "h"), "p/token:a:h");
  // No scope or user id in a key name.
  EXPECT_THAT(keys.Token("app", hash), Not(HasSubstr("read")));
  EXPECT_THAT(keys.Token("app", hash), Not(HasSubstr("user-42")));
  EXPECT_NE(SharedKeys::KeyHash("a\x1f"), SharedKeys::KeyHash("a\x1fx"));
}

TEST(SharedKeysTest, Prefix) {
  EXPECT_THAT(ValidateKeyPrefix("tokenbroker:"), IsOk());
  EXPECT_THAT(ValidateKeyPrefix(""), IsOk());
  EXPECT_THAT(ValidateKeyPrefix("a b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateKeyPrefix(std::string(65, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

SharedMessage RoundTrip(const SharedMessage& m) {
  std::optional<SharedMessage> parsed =
      ParseSharedMessage(FormatSharedMessage(m));
  EXPECT_TRUE(parsed.has_value()) << FormatSharedMessage(m);
  return parsed.value_or(SharedMessage{});
}

TEST(SharedKeysTest, MessagesRoundTrip) {
  SharedMessage token{SharedMessage::Type::kToken, "app", "abcd", "", 12, 0};
  EXPECT_EQ(FormatSharedMessage(token), "token app abcd 12");
  SharedMessage parsed = RoundTrip(token);
  EXPECT_EQ(parsed.type, SharedMessage::Type::kToken);
  EXPECT_EQ(parsed.app, "app");
  EXPECT_EQ(parsed.hash, "abcd");
  EXPECT_EQ(parsed.number, 12);

  SharedMessage failed{
      SharedMessage::Type::kFailed, "app", "abcd", "", 1500, 14};
  EXPECT_EQ(FormatSharedMessage(failed), "failed app abcd 1500 14");
  parsed = RoundTrip(failed);
  EXPECT_EQ(parsed.number, 1500);
  EXPECT_EQ(parsed.code, 14);

  SharedMessage revoke_user{
      SharedMessage::Type::kRevokeUser, "app", "", "user with spaces", 3, 0};
  EXPECT_EQ(FormatSharedMessage(revoke_user),
            "revoke_user app 3 user with spaces");
  parsed = RoundTrip(revoke_user);
  EXPECT_EQ(parsed.user, "user with spaces");
  EXPECT_EQ(parsed.number, 3);

  SharedMessage grant{SharedMessage::Type::kGrant, "app", "", "u 1", 9, 0};
  EXPECT_EQ(FormatSharedMessage(grant), "grant app u 1 9");
  parsed = RoundTrip(grant);
  EXPECT_EQ(parsed.user, "u 1");
  EXPECT_EQ(parsed.number, 9);

  EXPECT_EQ(RoundTrip({SharedMessage::Type::kRevoke, "app", "", "", 2, 0}).app,
            "app");
  EXPECT_EQ(RoundTrip({SharedMessage::Type::kReload, "", "", "", 5, 0}).number,
            5);
}

TEST(SharedKeysTest, MalformedMessagesAreIgnored) {
  for (const char* payload :
       {"", "token", "token app", "token app h", "token app h x",
        "token app h -1", "failed app h 1", "failed app h 1 99", "revoke app",
        "revoke app x", "revoke_user app 1", "grant app 1", "grant app u x",
        "reload", "reload x", "hello world 1"}) {
    EXPECT_FALSE(ParseSharedMessage(payload).has_value()) << payload;
  }
}

}  // namespace
}  // namespace tokenbroker
