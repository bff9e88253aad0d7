#include "service/common/log.h"

#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

TEST(LogTest, ParsesLevels) {
  LogLevel level;
  ASSERT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  ASSERT_TRUE(ParseLogLevel("warn", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  ASSERT_TRUE(ParseLogLevel("error", &level));
  EXPECT_EQ(level, LogLevel::kError);
  EXPECT_FALSE(ParseLogLevel("loud", &level));
}

TEST(LogTest, WritesOneJsonObjectPerLine) {
  ::testing::internal::CaptureStderr();
  LogInfo("hello \"world\"\n", {{"app", "a\tb"}, {"n", 3}});
  std::string out = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);
  nlohmann::json record = nlohmann::json::parse(out);
  EXPECT_EQ(record["level"], "info");
  EXPECT_EQ(record["msg"], "hello \"world\"\n");
  EXPECT_EQ(record["app"], "a\tb");
  EXPECT_EQ(record["n"], 3);
  EXPECT_TRUE(record.contains("ts"));
}

TEST(LogTest, DropsRecordsBelowLevel) {
  SetLogLevel(LogLevel::kWarning);
  ::testing::internal::CaptureStderr();
  LogInfo("quiet");
  std::string out = ::testing::internal::GetCapturedStderr();
  SetLogLevel(LogLevel::kInfo);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace tokenbroker
