#include "service/common/path_segments.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

TEST(SplitPathSegmentsTest, SplitsAndDecodesOnce) {
  EXPECT_THAT(SplitPathSegments("/"), IsOk());
  EXPECT_THAT(*SplitPathSegments("/"), ElementsAre(""));
  EXPECT_THAT(*SplitPathSegments("/a/b"), ElementsAre("a", "b"));
  EXPECT_THAT(*SplitPathSegments("/a/"), ElementsAre("a", ""));
  EXPECT_THAT(*SplitPathSegments("/a//b"), ElementsAre("a", "", "b"));
  EXPECT_THAT(*SplitPathSegments("/a%20b/c?x=/y;z"), ElementsAre("a b", "c"));
  // Decoded once: what the server sees. Deeper levels are only checked.
  EXPECT_THAT(*SplitPathSegments("/a%252541"), ElementsAre("a%2541"));
  EXPECT_THAT(*SplitPathSegments("/caf%C3%A9"), ElementsAre("caf\xc3\xa9"));
  EXPECT_THAT(*SplitPathSegments("/a..b/...x"), ElementsAre("a..b", "...x"));
}

TEST(SplitPathSegmentsTest, RefusesPathParametersAtEveryLevel) {
  for (const char* path :
       {"/..;/x", "/..%3b/x", "/..%3B/x", "/..%253b/x", "/.;/x",
        "/%2e%2e;x=1/x", "/a;b", "/a%3bb", "/a/b;"}) {
    EXPECT_THAT(SplitPathSegments(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("';'")))
        << path;
  }
}

TEST(SplitPathSegmentsTest, RefusesInvalidUtf8) {
  for (const char* path :
       {"/%c0%ae", "/%c1%bf", "/%e0%80%ae", "/%f0%80%80%ae", "/%ed%a0%80",
        "/%ed%bf%bf", "/%f4%90%80%80", "/%f5%80%80%80", "/%c3", "/%e2%82",
        "/%80", "/%bf", "/%fe", "/%ff", "/%c3%28", "/%25c0%25ae"}) {
    EXPECT_THAT(
        SplitPathSegments(path),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")))
        << path;
  }
}

TEST(SplitPathSegmentsTest, RefusesMalformedEscapes) {
  for (const char* path : {"/%", "/a%", "/%zz", "/%e", "/%/b", "/%g0",
                           "/%u002e", "/%25zz", "/%25"}) {
    EXPECT_THAT(SplitPathSegments(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hex")))
        << path;
  }
}

TEST(SplitPathSegmentsTest, RefusesDotSegmentsAndSeparators) {
  for (const char* path : {"/.", "/..", "/a/./b", "/%2e", "/%2E%2e",
                           "/%252e%252e", "/%20..%20", "/..%20"}) {
    EXPECT_THAT(SplitPathSegments(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'..'")))
        << path;
  }
  for (const char* path : {"/a%2fb", "/a%5Cb", "/a%252fb"}) {
    EXPECT_THAT(
        SplitPathSegments(path),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("encoded")))
        << path;
  }
  for (const char* path : {"/a%00", "/a%0d%0a", "/a%09", "/a%7f", "/a%251f"}) {
    EXPECT_THAT(
        SplitPathSegments(path),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control")))
        << path;
  }
  for (const char* path : {"/%ef%bc%8e%ef%bc%8e", "/a%ef%bc%8fb",
                           "/a%ef%bc%bcb", "/a%cd%bEb", "/%e2%80%a5"}) {
    EXPECT_THAT(SplitPathSegments(path),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("normalization")))
        << path;
  }
}

TEST(SplitPathSegmentsTest, RefusesWhatIsNotAnOriginFormPath) {
  EXPECT_THAT(SplitPathSegments(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitPathSegments("a/b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitPathSegments("//host/x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host")));
  EXPECT_THAT(
      SplitPathSegments("/a@b"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("userinfo")));
  EXPECT_THAT(SplitPathSegments("/a\\b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitPathSegments("/a#b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitPathSegments("/a b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitPathSegments("/caf\xc3\xa9"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      SplitPathSegments("/%2525252525"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("levels")));
}

TEST(IsValidUtf8Test, AcceptsShortestFormsOnly) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xc2\x80"));           // U+0080
  EXPECT_TRUE(IsValidUtf8("\xdf\xbf"));           // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xe0\xa0\x80"));       // U+0800
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));       // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xee\x80\x80"));       // U+E000
  EXPECT_TRUE(IsValidUtf8("\xef\xbf\xbf"));       // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xf0\x90\x80\x80"));   // U+10000
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // Overlong NUL.
  EXPECT_FALSE(IsValidUtf8("\xc1\xbf"));          // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xe0\x9f\xbf"));      // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xf0\x8f\xbf\xbf"));  // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // U+D800
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));      // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));  // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xe2\x28\xa1"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
}

}  // namespace
}  // namespace tokenbroker
