#include "service/config/value_checks.h"

#include <string>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tokenbroker::config_internal {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

TEST(AllCharsInTest, ClassOrExtra) {
  EXPECT_TRUE(AllCharsIn("", absl::ascii_isdigit));
  EXPECT_TRUE(AllCharsIn("0123", absl::ascii_isdigit));
  EXPECT_FALSE(AllCharsIn("01a", absl::ascii_isdigit));
  EXPECT_TRUE(AllCharsIn("a.b-c_d", absl::ascii_isalnum, "._-"));
  EXPECT_FALSE(AllCharsIn("a/b", absl::ascii_isalnum, "._-"));
  // A NUL byte is in no class and not among the extra characters.
  EXPECT_FALSE(AllCharsIn(std::string("a\0b", 3), absl::ascii_isalnum, "._-"));
}

TEST(ValueChecksTest, Names) {
  EXPECT_TRUE(IsValidName("design-center.v2_x"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(std::string(65, 'a')));
  EXPECT_TRUE(IsValidName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_TRUE(IsValidEnvName("_A1"));
  EXPECT_FALSE(IsValidEnvName("1A"));
  EXPECT_FALSE(IsValidEnvName("A-B"));
  EXPECT_FALSE(IsValidEnvName(""));
}

TEST(ValueChecksTest, WhitespaceOrControl) {
  EXPECT_FALSE(HasWhitespaceOrControl("abc:/\xc3\xa9"));  // UTF-8 is fine.
  EXPECT_TRUE(HasWhitespaceOrControl("a b"));
  EXPECT_TRUE(HasWhitespaceOrControl("a\tb"));
  EXPECT_TRUE(HasWhitespaceOrControl("a\x7f"));
}

TEST(ValueChecksTest, Sha256Hex) {
  EXPECT_TRUE(IsSha256Hex(std::string(64, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));  // Lower-cased first.
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'g')));
}

TEST(ValueChecksTest, HostPort) {
  EXPECT_THAT(CheckHostPort("127.0.0.1:50051", true), IsEmpty());
  EXPECT_THAT(CheckHostPort("[::1]:0", true), IsEmpty());
  EXPECT_THAT(CheckHostPort("host", false), IsEmpty());
  EXPECT_THAT(CheckHostPort("host", true), HasSubstr("a port is required"));
  EXPECT_THAT(CheckHostPort("host:65536", true), HasSubstr("the port"));
  EXPECT_THAT(CheckHostPort("::1:80", true), HasSubstr("in brackets"));
  EXPECT_THAT(CheckHostPort("[::1", true), HasSubstr("closed with ']'"));
  EXPECT_THAT(CheckHostPort("[zz]:1", true), HasSubstr("IPv6 address"));
  EXPECT_THAT(CheckHostPort("a/b:1", true), HasSubstr("the host"));
}

TEST(ValueChecksTest, UrlPath) {
  EXPECT_THAT(CheckUrlPath("/accounts/api"), IsEmpty());
  EXPECT_THAT(CheckUrlPath("//evil"), HasSubstr("single '/'"));
  EXPECT_THAT(CheckUrlPath("a"), HasSubstr("single '/'"));
  EXPECT_THAT(CheckUrlPath("/a?b"), HasSubstr("no query"));
}

TEST(ValueChecksTest, BaseUrlIsNormalized) {
  std::string url;
  EXPECT_THAT(CheckBaseUrl("HTTPS://h.example:8443//", &url), IsEmpty());
  EXPECT_EQ(url, "https://h.example:8443");
  EXPECT_THAT(CheckBaseUrl("ftp://h", &url), HasSubstr("https://"));
  EXPECT_THAT(CheckBaseUrl("https://h/p", &url), HasSubstr("path"));
}

TEST(ValueChecksTest, BaseUrlNeverEchoesUserInfo) {
  std::string url;
  std::string problem = CheckBaseUrl("https://u:hunter2@h", &url);
  EXPECT_THAT(problem, HasSubstr("user information"));
  EXPECT_THAT(problem, Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace tokenbroker::config_internal
