#include "service/shared/token_record.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/shared/shared_keys.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kToken[] = "SECRET-ACCESS-TOKEN-\"quoted\\-0123456789abcdef";

std::shared_ptr<const KeyRing> Ring(
    std::vector<std::pair<std::string, char>> ids_and_fill) {
  std::vector<SealKey> keys;
  for (const auto& [id, fill] : ids_and_fill) {
    keys.push_back(*MakeSealKey(id, std::string(kSealKeyBytes, fill)));
  }
  return *KeyRing::Create(std::move(keys));
}

TokenRecord Record() {
  TokenRecord record;
  record.fence = 7;
  record.revgen = 3;
  record.cache_key = "design-center\x1fread:apps write:apps\x1fuser-1";
  record.token.access_token = kToken;
  record.token.issued_at = absl::FromUnixMicros(1800000000123456);
  record.token.expires_at = record.token.issued_at + absl::Hours(1);
  record.token.scopes = {"read:apps", "write:apps"};
  return record;
}

const std::string kKeyName = SharedKeys().Token(
    "design-center", SharedKeys::KeyHash(Record().cache_key));

TEST(TokenRecordTest, SealsAndOpens) {
  auto ring = Ring({{"k1", 'a'}});
  absl::StatusOr<std::string> value =
      SealTokenRecord(*ring, kKeyName, Record());
  ASSERT_THAT(value, IsOk());
  EXPECT_TRUE(absl::StartsWith(*value, "7:3:tbx1.k1."));
  EXPECT_THAT(*value, Not(HasSubstr("SECRET")));
  EXPECT_THAT(*value, Not(HasSubstr("read:apps")));
  EXPECT_THAT(*value, Not(HasSubstr("user-1")));
  EXPECT_EQ(StoredRecordFence(*value), 7);

  absl::StatusOr<TokenRecord> opened = OpenTokenRecord(*ring, kKeyName, *value);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->fence, 7);
  EXPECT_EQ(opened->revgen, 3);
  EXPECT_EQ(opened->cache_key, Record().cache_key);
  EXPECT_EQ(opened->token.access_token, kToken);
  EXPECT_EQ(opened->token.token_type, "Bearer");
  EXPECT_EQ(opened->token.issued_at, Record().token.issued_at);
  EXPECT_EQ(opened->token.expires_at, Record().token.expires_at);
  EXPECT_THAT(opened->token.scopes, ElementsAre("read:apps", "write:apps"));
}

TEST(TokenRecordTest, AValueCopiedToAnotherKeyDoesNotOpen) {
  auto ring = Ring({{"k1", 'a'}});
  std::string value = *SealTokenRecord(*ring, kKeyName, Record());
  std::string other = SharedKeys().Token("other-app", SharedKeys::KeyHash("x"));
  absl::StatusOr<TokenRecord> opened = OpenTokenRecord(*ring, other, value);
  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(opened.status().message(), Not(HasSubstr("SECRET")));
  // Under another prefix too.
  EXPECT_THAT(OpenTokenRecord(*ring, "x" + kKeyName, value),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(TokenRecordTest, AnAlteredHeaderIsRefused) {
  auto ring = Ring({{"k1", 'a'}});
  std::string value = *SealTokenRecord(*ring, kKeyName, Record());
  // A higher fence in front would block every later write.
  EXPECT_THAT(OpenTokenRecord(*ring, kKeyName, "99" + value),
              StatusIs(absl::StatusCode::kDataLoss));
  std::string revgen = value;
  revgen[2] = '4';  // "7:4:..."
  EXPECT_THAT(OpenTokenRecord(*ring, kKeyName, revgen),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(OpenTokenRecord(*ring, kKeyName, "garbage"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenTokenRecord(*ring, kKeyName, "1:2:tbx1.k1.AAAA.BBBB"),
              Not(IsOk()));
}

TEST(TokenRecordTest, KeyRotation) {
  auto old_ring = Ring({{"k1", 'a'}});
  auto rotated = Ring({{"k2", 'b'}, {"k1", 'a'}});
  auto retired = Ring({{"k2", 'b'}});
  std::string old_value = *SealTokenRecord(*old_ring, kKeyName, Record());
  // Sealed with the old key: opens while the key is in the ring.
  EXPECT_THAT(OpenTokenRecord(*rotated, kKeyName, old_value), IsOk());
  // New records use the current key.
  std::string new_value = *SealTokenRecord(*rotated, kKeyName, Record());
  EXPECT_TRUE(absl::StartsWith(new_value, "7:3:tbx1.k2."));
  EXPECT_THAT(OpenTokenRecord(*old_ring, kKeyName, new_value),
              StatusIs(absl::StatusCode::kNotFound));
  // Once the old key is retired, its records no longer open.
  EXPECT_THAT(OpenTokenRecord(*retired, kKeyName, old_value),
              StatusIs(absl::StatusCode::kNotFound));
  // Another key under the same id.
  EXPECT_THAT(OpenTokenRecord(*Ring({{"k1", 'c'}}), kKeyName, old_value),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(TokenRecordTest, OnlyPrintableAsciiTokensAreShared) {
  auto ring = Ring({{"k1", 'a'}});
  TokenRecord record = Record();
  record.token.access_token = "abc\ndef";
  absl::StatusOr<std::string> value = SealTokenRecord(*ring, kKeyName, record);
  EXPECT_THAT(value, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(value.status().message(), Not(HasSubstr("abc")));
}

TEST(TokenRecordTest, StoredRecordFenceReadsLikeTheScripts) {
  EXPECT_EQ(StoredRecordFence("12:0:x"), 12);
  EXPECT_EQ(StoredRecordFence("12"), 0);
  EXPECT_EQ(StoredRecordFence(":1:x"), 0);
  EXPECT_EQ(StoredRecordFence("x:1:x"), 0);
  EXPECT_EQ(StoredRecordFence(""), 0);
}

}  // namespace
}  // namespace tokenbroker
