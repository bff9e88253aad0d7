#include "service/store/sealed_box.h"

#include <sys/stat.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::MakeKeyRing;
using ::tokenbroker::testing::RandomSealKey;
using ::tokenbroker::testing::StatusIs;
using ::tokenbroker::testing::TempDir;
using ::tokenbroker::testing::WriteWholeFile;

constexpr char kPlaintext[] = "rt-SECRET-plaintext-Zq9";
constexpr char kAad[] = "tokenbroker/test\0app\0user";

std::string Aad() { return std::string(kAad, sizeof(kAad) - 1); }

// The three parts of an envelope after "tbx1.<key id>.", decoded.
struct Parts {
  std::string head;  // "tbx1.<key id>."
  std::string nonce;
  std::string sealed;  // ciphertext and tag
};

Parts Split(const std::string& envelope) {
  size_t last = envelope.rfind('.');
  size_t middle = envelope.rfind('.', last - 1);
  Parts parts;
  parts.head = envelope.substr(0, middle + 1);
  EXPECT_TRUE(absl::WebSafeBase64Unescape(
      envelope.substr(middle + 1, last - middle - 1), &parts.nonce));
  EXPECT_TRUE(
      absl::WebSafeBase64Unescape(envelope.substr(last + 1), &parts.sealed));
  return parts;
}

std::string Join(const Parts& parts) {
  return absl::StrCat(parts.head, absl::WebSafeBase64Escape(parts.nonce), ".",
                      absl::WebSafeBase64Escape(parts.sealed));
}

TEST(KeyRingTest, SealThenOpenGivesThePlaintextBack) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  absl::StatusOr<std::string> envelope = ring->Seal(kPlaintext, Aad());
  ASSERT_THAT(envelope, IsOk());
  EXPECT_THAT(*envelope, StartsWith("tbx1.k1."));
  EXPECT_THAT(*envelope, Not(HasSubstr(kPlaintext)));
  Parts parts = Split(*envelope);
  EXPECT_EQ(parts.nonce.size(), 12u);
  EXPECT_EQ(parts.sealed.size(), sizeof(kPlaintext) - 1 + 16);

  absl::StatusOr<std::string> opened = ring->Open(*envelope, Aad());
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, kPlaintext);

  // A fresh nonce every time: the same plaintext seals differently.
  EXPECT_NE(*ring->Seal(kPlaintext, Aad()), *envelope);
}

TEST(KeyRingTest, EmptyAndBinaryPlaintextsRoundTrip) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  for (const std::string& plaintext :
       {std::string(), std::string("\0\xff\x01 x", 5),
        std::string(5000, 'a')}) {
    absl::StatusOr<std::string> envelope = ring->Seal(plaintext, "");
    ASSERT_THAT(envelope, IsOk());
    absl::StatusOr<std::string> opened = ring->Open(*envelope, "");
    ASSERT_THAT(opened, IsOk());
    EXPECT_EQ(*opened, plaintext);
  }
}

TEST(KeyRingTest, OtherAssociatedDataFailsAuthentication) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  std::string envelope = *ring->Seal(kPlaintext, Aad());
  for (const std::string& aad :
       {std::string(), std::string("tokenbroker/test"), Aad() + "x",
        std::string("tokenbroker/test\0app\0usex", 26)}) {
    absl::StatusOr<std::string> opened = ring->Open(envelope, aad);
    EXPECT_THAT(opened, StatusIs(absl::StatusCode::kDataLoss,
                                 AllOf(HasSubstr("does not authenticate"),
                                       Not(HasSubstr(kPlaintext)),
                                       Not(HasSubstr("tokenbroker/test")))));
  }
}

TEST(KeyRingTest, AChangedByteInNonceCiphertextOrTagFailsAuthentication) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  std::string envelope = *ring->Seal(kPlaintext, Aad());
  const Parts original = Split(envelope);
  ASSERT_EQ(Join(original), envelope);
  const size_t ciphertext_size = original.sealed.size() - 16;
  for (size_t i = 0; i < original.nonce.size(); ++i) {
    Parts parts = original;
    parts.nonce[i] ^= 0x01;
    EXPECT_THAT(ring->Open(Join(parts), Aad()),
                StatusIs(absl::StatusCode::kDataLoss))
        << "nonce byte " << i;
  }
  for (size_t i = 0; i < original.sealed.size(); ++i) {
    Parts parts = original;
    parts.sealed[i] ^= 0x80;
    EXPECT_THAT(ring->Open(Join(parts), Aad()),
                StatusIs(absl::StatusCode::kDataLoss))
        << (i < ciphertext_size ? "ciphertext" : "tag") << " byte " << i;
  }
  // A truncated tag or an extra byte.
  Parts shorter = original;
  shorter.sealed.pop_back();
  EXPECT_THAT(ring->Open(Join(shorter), Aad()),
              StatusIs(absl::StatusCode::kDataLoss));
  Parts longer = original;
  longer.sealed.push_back('x');
  EXPECT_THAT(ring->Open(Join(longer), Aad()),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyRingTest, EveryChangedCharacterOfTheEnvelopeIsRefused) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  std::string envelope = *ring->Seal(kPlaintext, Aad());
  for (size_t i = 0; i < envelope.size(); ++i) {
    for (char replacement : {'A', 'z', '-', '_', '.', '='}) {
      if (envelope[i] == replacement) continue;
      std::string changed = envelope;
      changed[i] = replacement;
      absl::StatusOr<std::string> opened = ring->Open(changed, Aad());
      EXPECT_FALSE(opened.ok()) << "position " << i << " -> " << replacement;
      EXPECT_THAT(opened.status().message(), Not(HasSubstr(changed)));
    }
  }
}

TEST(KeyRingTest, MalformedEnvelopesAreInvalidArgumentsThatQuoteNothing) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  std::string good = *ring->Seal(kPlaintext, Aad());
  Parts parts = Split(good);
  std::string nonce = absl::WebSafeBase64Escape(parts.nonce);
  std::string sealed = absl::WebSafeBase64Escape(parts.sealed);
  const std::vector<std::string> malformed = {
      "",
      "tbx1.",
      "tbx2.k1." + nonce + "." + sealed,
      "tbx1.k1." + nonce,
      "tbx1." + nonce + "." + sealed,
      "tbx1..." + sealed,
      "tbx1.k1.." + sealed,
      "tbx1.k1." + nonce + ".",
      "tbx1.k1!." + nonce + "." + sealed,
      "tbx1." + std::string(33, 'k') + "." + nonce + "." + sealed,
      "tbx1.k1." + nonce + "AA." + sealed,              // 13-byte nonce
      "tbx1.k1." + nonce.substr(4) + "." + sealed,      // 9-byte nonce
      "tbx1.k1." + nonce + "." + sealed + "=",          // padding
      "tbx1.k1." + nonce + "." + sealed.substr(0, 20),  // shorter than a tag
      "tbx1.k1." + nonce + "." + sealed.substr(0, 22) + "+",  // not base64url
      "tbx1.k1." + nonce + "." + sealed + "\n",
  };
  for (const std::string& envelope : malformed) {
    absl::StatusOr<std::string> opened = ring->Open(envelope, Aad());
    EXPECT_THAT(opened, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("malformed")))
        << envelope;
    if (envelope.size() > 16) {  // longer than the format's own name
      EXPECT_THAT(std::string(opened.status().message()),
                  Not(HasSubstr(envelope)));
    }
    EXPECT_THAT(KeyRing::KeyIdOf(envelope),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_FALSE(ring->IsCurrent(envelope));
  }
}

TEST(KeyRingTest, AnUnknownKeyIdIsNamed) {
  auto ring1 = MakeKeyRing({RandomSealKey("k1")});
  auto ring2 = MakeKeyRing({RandomSealKey("k2"), RandomSealKey("k3")});
  std::string envelope = *ring1->Seal(kPlaintext, Aad());
  EXPECT_THAT(ring2->Open(envelope, Aad()),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("'k1'"), HasSubstr("k2, k3"))));
}

TEST(KeyRingTest, AnotherKeyUnderTheSameIdFailsAuthentication) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  auto impostor = MakeKeyRing({RandomSealKey("k1")});
  EXPECT_THAT(impostor->Open(*ring->Seal(kPlaintext, Aad()), Aad()),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'k1'")));
}

TEST(KeyRingTest, ChangingTheKeyIdInTheEnvelopeFailsAuthentication) {
  // Both keys in the ring, same bytes: only the authenticated key id differs.
  SealKey k1 = RandomSealKey("k1");
  SealKey k2("k2", k1.bytes);
  auto ring = MakeKeyRing({k1, k2});
  std::string envelope = *ring->Seal(kPlaintext, Aad());
  ASSERT_THAT(envelope, StartsWith("tbx1.k1."));
  std::string relabelled = "tbx1.k2." + envelope.substr(8);
  EXPECT_THAT(ring->Open(relabelled, Aad()),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyRingTest, RotationOpensOldValuesAndSealsWithTheNewKey) {
  SealKey k1 = RandomSealKey("k1");
  SealKey k2 = RandomSealKey("k2");
  auto old_ring = MakeKeyRing({k1});
  std::string old_envelope = *old_ring->Seal(kPlaintext, Aad());

  auto rotated = MakeKeyRing({k2, k1});
  EXPECT_EQ(rotated->current_key_id(), "k2");
  EXPECT_EQ(rotated->key_ids(), (std::vector<std::string>{"k2", "k1"}));
  EXPECT_EQ(*rotated->Open(old_envelope, Aad()), kPlaintext);
  EXPECT_FALSE(rotated->IsCurrent(old_envelope));
  EXPECT_EQ(*KeyRing::KeyIdOf(old_envelope), "k1");

  std::string new_envelope = *rotated->Seal(kPlaintext, Aad());
  EXPECT_EQ(*KeyRing::KeyIdOf(new_envelope), "k2");
  EXPECT_TRUE(rotated->IsCurrent(new_envelope));

  auto new_only = MakeKeyRing({k2});
  EXPECT_EQ(*new_only->Open(new_envelope, Aad()), kPlaintext);
  EXPECT_THAT(new_only->Open(old_envelope, Aad()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'k1'")));
}

TEST(KeyRingTest, KeyIdsMayHoldDots) {
  auto ring = MakeKeyRing({RandomSealKey("2024.06-a_b.")});
  std::string envelope = *ring->Seal(kPlaintext, Aad());
  EXPECT_EQ(*KeyRing::KeyIdOf(envelope), "2024.06-a_b.");
  EXPECT_EQ(*ring->Open(envelope, Aad()), kPlaintext);
}

TEST(KeyRingTest, CreateRefusesBadKeyRings) {
  EXPECT_THAT(KeyRing::Create({}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(KeyRing::Create(
                  {RandomSealKey("a"), RandomSealKey("b"), RandomSealKey("a")}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'a'")));
  EXPECT_THAT(
      KeyRing::Create({SealKey("short", std::string(31, 'x'))}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("31 bytes")));
  for (const std::string& id : {std::string(), std::string(33, 'a'),
                                std::string("a/b"), std::string("a b")}) {
    EXPECT_THAT(KeyRing::Create({SealKey(id, std::string(32, 'x'))}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << id;
  }
  EXPECT_THAT(
      MakeSealKey("k", std::string(33, 'x')),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("33 bytes")));
  EXPECT_THAT(MakeSealKey("k", std::string(32, 'x')), IsOk());
}

TEST(KeyRingTest, SealTooLargeAPlaintextIsRefused) {
  auto ring = MakeKeyRing({RandomSealKey("k1")});
  EXPECT_THAT(ring->Seal(std::string(kMaxSealedPlaintextBytes + 1, 'a'), ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(KeyRingTest, ManyThreadsSealAndOpenWithOneRing) {
  auto ring = MakeKeyRing({RandomSealKey("k2"), RandomSealKey("k1")});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ring, t] {
      for (int i = 0; i < 200; ++i) {
        std::string plaintext = absl::StrCat("secret-", t, "-", i);
        absl::StatusOr<std::string> envelope = ring->Seal(plaintext, "aad");
        ASSERT_TRUE(envelope.ok());
        absl::StatusOr<std::string> opened = ring->Open(*envelope, "aad");
        ASSERT_TRUE(opened.ok());
        EXPECT_EQ(*opened, plaintext);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

TEST(SealKeyTest, MovingLeavesNoKeyBytesBehind) {
  SealKey key = RandomSealKey("k1");
  std::string bytes = key.bytes;
  SealKey moved(std::move(key));
  EXPECT_EQ(moved.bytes, bytes);
  EXPECT_TRUE(key.bytes.empty());  // NOLINT(bugprone-use-after-move)
  SealKey assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.bytes, bytes);
  EXPECT_TRUE(moved.bytes.empty());  // NOLINT(bugprone-use-after-move)
}

class SealKeyFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_.path() + "/" + name;
    WriteWholeFile(path, content);
    return path;
  }

  // 0x00, 0x01, ..., 0x1f.
  static std::string CountingBytes() {
    std::string bytes;
    for (int i = 0; i < 32; ++i) bytes.push_back(static_cast<char>(i));
    return bytes;
  }

  TempDir dir_;
};

TEST_F(SealKeyFileTest, ReadsHexAndBase64WithSurroundingWhitespace) {
  const std::string expected = CountingBytes();
  const std::string hex = absl::BytesToHexString(expected);
  const std::string base64 = absl::Base64Escape(expected);
  ASSERT_EQ(base64.size(), 44u);
  for (const std::string& content :
       {hex, hex + "\n", "  " + absl::AsciiStrToUpper(hex) + "\r\n", base64,
        base64 + "\n", "\t" + base64 + " \n"}) {
    absl::StatusOr<SealKey> key = ReadSealKeyFile("k1", Write("key", content));
    ASSERT_THAT(key, IsOk()) << content;
    EXPECT_EQ(key->id, "k1");
    EXPECT_EQ(key->bytes, expected);
  }
}

TEST_F(SealKeyFileTest, RefusesOtherContentNamingTheFileNotTheContent) {
  const std::string bytes = CountingBytes();
  const std::string hex = absl::BytesToHexString(bytes);
  const std::string base64 = absl::Base64Escape(bytes);
  struct Case {
    std::string content;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"\n\n", "empty"},
      {hex.substr(2), "found 62 characters"},  // 31 bytes
      {hex + "00", "found 66 characters"},     // 33 bytes
      {hex.substr(1) + "g", "not all hex digits"},
      {absl::Base64Escape(bytes.substr(1)), "not standard base64"},  // 31 B
      {absl::Base64Escape(bytes + "x").substr(0, 44), "not standard base64"},
      {absl::WebSafeBase64Escape(std::string(32, '\xfb')) + "=",
       "not standard base64"},
      {hex.substr(0, 32) + " " + hex.substr(32), "found 65 characters"},
      {"this is not a key at all, it is a sentence.", "found 43 characters"},
      {std::string(64, '0'), "all zero bytes"},
      {absl::Base64Escape(std::string(32, '\0')), "all zero bytes"},
  };
  for (const Case& c : cases) {
    std::string path = Write("key", c.content);
    absl::StatusOr<SealKey> key = ReadSealKeyFile("k1", path);
    EXPECT_THAT(key, StatusIs(absl::StatusCode::kInvalidArgument,
                              AllOf(HasSubstr(path), HasSubstr(c.what))))
        << c.content;
    std::string stripped(absl::StripAsciiWhitespace(c.content));
    if (stripped.size() >= 8) {
      EXPECT_THAT(key.status().message(), Not(HasSubstr(stripped)));
      EXPECT_THAT(key.status().message(),
                  Not(HasSubstr(stripped.substr(0, 8))));
    }
  }
}

TEST_F(SealKeyFileTest, AMissingFileOrABadIdIsNamed) {
  std::string missing = dir_.path() + "/missing-key";
  EXPECT_THAT(ReadSealKeyFile("k1", missing),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(missing), HasSubstr("'k1'"))));
  std::string path = Write("key", absl::BytesToHexString(CountingBytes()));
  EXPECT_THAT(ReadSealKeyFile("k/1", path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)));
  EXPECT_THAT(ReadSealKeyFile("", path),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      ReadSealKeyFile("k1", dir_.path()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("directory")));
}

}  // namespace
}  // namespace tokenbroker
