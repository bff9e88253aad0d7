#include "service/common/read_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/status_macros.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

class ReadFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/tb-read-file-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    std::string command = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(command.c_str()), 0);
  }
  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::string dir_;
};

TEST_F(ReadFileTest, ReadsTheWholeFileBytesIncluded) {
  std::string content("a\0b\nc", 5);
  absl::StatusOr<std::string> read = ReadFile(Write("f", content));
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(*read, content);
  EXPECT_EQ(*ReadFile(Write("empty", "")), "");
}

TEST_F(ReadFileTest, ErrorsNameThePathAndTheReason) {
  EXPECT_THAT(ReadFile(dir_ + "/missing").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/missing")));
  EXPECT_THAT(
      ReadFile(dir_).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("directory")));
  EXPECT_THAT(ReadFile(Write("big", std::string(100, 'x')), 99).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("larger than 99 bytes")));
}

absl::StatusOr<int> Half(int n) {
  if (n % 2 != 0) return absl::InvalidArgumentError("odd");
  return n / 2;
}

absl::StatusOr<int> Quarter(int n) {
  TB_ASSIGN_OR_RETURN(int half, Half(n));
  TB_ASSIGN_OR_RETURN(half, Half(half));
  return half;
}

absl::Status CheckEven(int n) {
  TB_RETURN_IF_ERROR(Half(n).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, ReturnEarlyOnErrorAndAssignOnSuccess) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(3), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tokenbroker
