#include "tests/testing/redis_server.h"

#include <hiredis/hiredis.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::testing {
namespace {

using ::testing::HasSubstr;

TEST(RedisServerProcessTest, StartsAnswersAndRestartsOnTheSamePort) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> redis = RedisServerProcess::StartNew();
  ASSERT_NE(redis, nullptr);
  EXPECT_GT(redis->port(), 0);
  EXPECT_EQ(redis->address(), "127.0.0.1:" + std::to_string(redis->port()));

  ASSERT_THAT(redis->Cli({"SET", "k", std::string("a\0b", 3)}), IsOk());
  absl::StatusOr<RedisReply> value = redis->Cli({"GET", "k"});
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(value->str, std::string("a\0b", 3));
  EXPECT_THAT(redis->Cli({"NOSUCHCOMMAND"}),
              StatusIs(absl::StatusCode::kInternal));

  int port = redis->port();
  ASSERT_THAT(redis->Stop(), IsOk());
  EXPECT_THAT(redis->Cli({"PING"}), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(redis->Start(), IsOk());
  EXPECT_EQ(redis->port(), port);
  // No persistence: the data went with the process.
  value = redis->Cli({"GET", "k"});
  ASSERT_THAT(value, IsOk());
  EXPECT_TRUE(value->is_nil());

  ASSERT_THAT(redis->Kill(), IsOk());
  ASSERT_THAT(redis->Restart(), IsOk());
  EXPECT_THAT(redis->Cli({"PING"}), IsOk());
}

TEST(RedisServerProcessTest, PasswordIsRequired) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> redis =
      RedisServerProcess::StartWithPassword("s3cret \"quoted\" pw");
  ASSERT_NE(redis, nullptr);
  EXPECT_THAT(redis->Cli({"PING"}), IsOk());  // Cli authenticates.

  // Without AUTH the server refuses.
  redisContext* c = redisConnect("127.0.0.1", redis->port());
  ASSERT_TRUE(c != nullptr && c->err == 0);
  auto* reply = static_cast<redisReply*>(redisCommand(c, "PING"));
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_THAT(std::string(reply->str, reply->len), HasSubstr("NOAUTH"));
  freeReplyObject(reply);
  reply = static_cast<redisReply*>(
      redisCommand(c, "AUTH %s", "s3cret \"quoted\" pw"));
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->type, REDIS_REPLY_STATUS);
  freeReplyObject(reply);
  redisFree(c);
}

TEST(RedisServerProcessTest, PauseAndResume) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> redis = RedisServerProcess::StartNew();
  ASSERT_NE(redis, nullptr);
  ASSERT_THAT(redis->Pause(), IsOk());
  ASSERT_THAT(redis->Resume(), IsOk());
  EXPECT_THAT(redis->Cli({"PING"}), IsOk());
  // Stop works on a paused server too.
  ASSERT_THAT(redis->Pause(), IsOk());
  EXPECT_THAT(redis->Stop(), IsOk());
}

TEST(RedisServerProcessTest, SentinelKnowsTheMaster) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> redis = RedisServerProcess::StartNew();
  ASSERT_NE(redis, nullptr);
  std::unique_ptr<RedisServerProcess> sentinel =
      RedisServerProcess::StartSentinel(*redis, "mymaster");
  ASSERT_NE(sentinel, nullptr);
  absl::StatusOr<RedisReply> master =
      sentinel->Cli({"SENTINEL", "get-master-addr-by-name", "mymaster"});
  ASSERT_THAT(master, IsOk());
  ASSERT_EQ(master->elements.size(), 2u);
  EXPECT_EQ(master->elements[0].str, "127.0.0.1");
  EXPECT_EQ(master->elements[1].str, std::to_string(redis->port()));
}

}  // namespace
}  // namespace tokenbroker::testing
