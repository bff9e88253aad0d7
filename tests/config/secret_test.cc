#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

std::string WriteTempFile(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return path;
}

TEST(ResolveSecretTest, FileWithTrailingNewlineIsStripped) {
  SecretRef ref;
  ref.file = WriteTempFile("secret_newline", "s3cret\n");
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, "s3cret");
}

TEST(ResolveSecretTest, FileWithCrLfIsStripped) {
  SecretRef ref;
  ref.file = WriteTempFile("secret_crlf", "s3cret\r\n");
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, "s3cret");
}

TEST(ResolveSecretTest, FileIsReReadEachTime) {
  SecretRef ref;
  ref.file = WriteTempFile("secret_rotated", "old");
  ASSERT_THAT(ResolveSecret(ref), IsOk());
  WriteTempFile("secret_rotated", "new\n");
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, "new");
}

TEST(ResolveSecretTest, MissingFileNamesThePath) {
  SecretRef ref;
  ref.file = ::testing::TempDir() + "/no-such-secret";
  EXPECT_THAT(
      ResolveSecret(ref),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(ref.file)));
}

TEST(ResolveSecretTest, EmptyFileIsAnError) {
  SecretRef ref;
  ref.file = WriteTempFile("secret_empty", "\n");
  EXPECT_THAT(
      ResolveSecret(ref),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("empty")));
}

TEST(ResolveSecretTest, EnvSet) {
  ASSERT_EQ(setenv("TB_SECRET_TEST_SET", "from-env", 1), 0);
  SecretRef ref;
  ref.env = "TB_SECRET_TEST_SET";
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, "from-env");
  unsetenv("TB_SECRET_TEST_SET");
}

TEST(ResolveSecretTest, EnvUnsetNamesTheVariable) {
  unsetenv("TB_SECRET_TEST_UNSET");
  SecretRef ref;
  ref.env = "TB_SECRET_TEST_UNSET";
  EXPECT_THAT(ResolveSecret(ref),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("TB_SECRET_TEST_UNSET")));
}

TEST(ResolveSecretTest, EnvEmptyIsAnError) {
  ASSERT_EQ(setenv("TB_SECRET_TEST_EMPTY", "", 1), 0);
  SecretRef ref;
  ref.env = "TB_SECRET_TEST_EMPTY";
  EXPECT_THAT(ResolveSecret(ref),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  unsetenv("TB_SECRET_TEST_EMPTY");
}

TEST(ResolveSecretTest, InlineValue) {
  SecretRef ref;
  ref.value = "inline";
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, "inline");
}

TEST(ResolveSecretTest, NothingConfigured) {
  EXPECT_THAT(ResolveSecret(SecretRef{}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ResolveSecretTest, OversizedFileIsRefusedWithoutQuotingIt) {
  SecretRef ref;
  ref.file = WriteTempFile("secret_huge", std::string(64 * 1024 + 1, 'k'));
  EXPECT_THAT(ResolveSecret(ref),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(ref.file), HasSubstr("larger than"),
                             Not(HasSubstr("kkkk")))));
  // The largest allowed size is read whole.
  ref.file = WriteTempFile("secret_max", std::string(64 * 1024, 'k'));
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(value->size(), 64u * 1024u);
}

TEST(ResolveSecretTest, DirectoryIsNotASecretFile) {
  SecretRef ref;
  ref.file = ::testing::TempDir();
  EXPECT_THAT(
      ResolveSecret(ref),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(ref.file)));
}

}  // namespace
}  // namespace tokenbroker
