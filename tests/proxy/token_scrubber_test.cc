#include "service/proxy/token_scrubber.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Header = std::pair<std::string, std::string>;

const std::string kMarker(kTokenRemovedMarker);
constexpr char kToken[] = "8f14e45f-ceea-467f-a0e6-1f3a2b4c5d6e";

// Feeds `pieces` through a streaming scrubber and returns its output.
std::string Stream(absl::string_view secret,
                   const std::vector<std::string>& pieces,
                   size_t* replacements = nullptr) {
  StreamingTokenScrubber scrubber(secret);
  std::string out;
  size_t counted = 0;
  for (const std::string& piece : pieces) {
    counted += scrubber.Write(piece, &out);
    EXPECT_LT(scrubber.held_back(), std::max<size_t>(secret.size(), 1));
  }
  scrubber.Finish(&out);
  EXPECT_EQ(scrubber.replacements(), counted);
  EXPECT_EQ(scrubber.held_back(), 0u);
  if (replacements != nullptr) *replacements = counted;
  return out;
}

std::string Whole(absl::string_view secret, std::string text,
                  size_t* replacements = nullptr) {
  TokenScrubber scrubber(secret);
  size_t n = scrubber.ScrubText(text);
  if (replacements != nullptr) *replacements = n;
  return text;
}

TEST(TokenScrubberTest, ReplacesEveryOccurrenceInText) {
  size_t n = 0;
  EXPECT_EQ(Whole(kToken,
                  absl::StrCat("{\"auth\":\"Bearer ", kToken, "\",\"again\":\"",
                               kToken, "\"}"),
                  &n),
            absl::StrCat("{\"auth\":\"Bearer ", kMarker, "\",\"again\":\"",
                         kMarker, "\"}"));
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(Whole(kToken, kToken, &n), kMarker);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Whole(kToken, absl::StrCat(kToken, kToken), &n),
            absl::StrCat(kMarker, kMarker));
  EXPECT_EQ(n, 2u);
}

TEST(TokenScrubberTest, LeavesOtherTextAlone) {
  size_t n = 7;
  const std::string almost = std::string(kToken).substr(1);
  EXPECT_EQ(Whole(kToken, "no secret here", &n), "no secret here");
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(Whole(kToken, almost, &n), almost);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(Whole(kToken, "", &n), "");
  // Exact bytes only: another case is another string.
  std::string upper = kToken;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_EQ(Whole(kToken, upper, &n), upper);
  EXPECT_EQ(n, 0u);
}

TEST(TokenScrubberTest, OverlappingPrefixes) {
  size_t n = 0;
  EXPECT_EQ(Whole("aab", "aaab", &n), "a" + kMarker);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Whole("abab", "abababab", &n), kMarker + kMarker);
  EXPECT_EQ(n, 2u);
  // Left-most, without overlap: "aaa" in "aaaa" once.
  EXPECT_EQ(Whole("aaa", "aaaa", &n), kMarker + "a");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Whole("abcabd", "abcabcabd", &n), "abc" + kMarker);
  EXPECT_EQ(n, 1u);
}

TEST(TokenScrubberTest, EmptySecretMatchesNothing) {
  size_t n = 3;
  EXPECT_EQ(Whole("", "anything", &n), "anything");
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(Stream("", {"any", "", "thing"}, &n), "anything");
  EXPECT_EQ(n, 0u);
  HttpHeaders headers = {{"A", "b"}};
  EXPECT_EQ(TokenScrubber("").ScrubHeaders(headers), 0u);
  EXPECT_THAT(headers, ElementsAre(Header{"A", "b"}));
}

TEST(TokenScrubberTest, ScrubsHeaderValuesAndDropsHeadersNamedByIt) {
  HttpHeaders headers = {
      {"Content-Type", "application/json"},
      {"X-Echo-Authorization", absl::StrCat("Bearer ", kToken)},
      {absl::StrCat("X-", kToken), "v"},
      {"X-Twice", absl::StrCat(kToken, ",", kToken)},
      {"Link", "<a>"}};
  EXPECT_EQ(TokenScrubber(kToken).ScrubHeaders(headers), 4u);
  EXPECT_THAT(headers,
              ElementsAre(Header{"Content-Type", "application/json"},
                          Header{"X-Echo-Authorization", "Bearer " + kMarker},
                          Header{"X-Twice", kMarker + "," + kMarker},
                          Header{"Link", "<a>"}));
}

// Every way of cutting a text into two or three pieces gives what the
// whole-text scrubber gives, and the secret never gets out.
TEST(StreamingTokenScrubberTest, SecretSplitAtEveryBoundary) {
  const std::string text =
      absl::StrCat("{\"echo\":\"Bearer ", kToken, "\",\"x\":\"", kToken, "\"}");
  const std::string expected = Whole(kToken, text);
  ASSERT_THAT(expected, Not(HasSubstr(kToken)));
  for (size_t i = 0; i <= text.size(); ++i) {
    size_t n = 0;
    EXPECT_EQ(Stream(kToken, {text.substr(0, i), text.substr(i)}, &n), expected)
        << "cut at " << i;
    EXPECT_EQ(n, 2u);
    for (size_t j = i; j <= text.size(); ++j) {
      EXPECT_EQ(Stream(kToken, {text.substr(0, i), text.substr(i, j - i),
                                text.substr(j)}),
                expected)
          << "cuts at " << i << " and " << j;
    }
  }
}

TEST(StreamingTokenScrubberTest, OnePieceOfOneByteAtATime) {
  for (const std::string& secret : {std::string(kToken), std::string("aab"),
                                    std::string("abab"), std::string("x")}) {
    const std::string text = absl::StrCat("a", secret, "aa", secret, secret,
                                          "ab", secret.substr(0, 2));
    std::vector<std::string> bytes;
    for (char c : text) bytes.push_back(std::string(1, c));
    size_t streamed = 0, whole = 0;
    EXPECT_EQ(Stream(secret, bytes, &streamed), Whole(secret, text, &whole))
        << secret;
    EXPECT_EQ(streamed, whole) << secret;
    EXPECT_GE(streamed, 3u) << secret;
  }
}

TEST(StreamingTokenScrubberTest, OverlappingPrefixesAcrossPieces) {
  size_t n = 0;
  EXPECT_EQ(Stream("aab", {"a", "a", "a", "b"}, &n), "a" + kMarker);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Stream("aab", {"aa", "ab"}, &n), "a" + kMarker);
  EXPECT_EQ(Stream("aab", {"aaa", "", "b"}, &n), "a" + kMarker);
  EXPECT_EQ(Stream("aab", {"aa", "a"}, &n), "aaa");  // Never completed.
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(Stream("abcabd", {"abcab", "cabd"}, &n), "abc" + kMarker);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Stream("aaa", {"aa", "aa"}, &n), kMarker + "a");
}

TEST(StreamingTokenScrubberTest, EmptyPieces) {
  size_t n = 0;
  EXPECT_EQ(Stream(kToken, {}, &n), "");
  EXPECT_EQ(Stream(kToken, {"", "", ""}, &n), "");
  const std::string token = kToken;
  EXPECT_EQ(
      Stream(kToken, {"", token.substr(0, 5), "", "", token.substr(5), "", "!"},
             &n),
      kMarker + "!");
  EXPECT_EQ(n, 1u);
}

// Bytes that cannot begin the secret are passed on at once; the rest waits
// for the next piece or Finish().
TEST(StreamingTokenScrubberTest, HoldsBackOnlyAPossibleBeginning) {
  StreamingTokenScrubber scrubber("secret");
  std::string out;
  scrubber.Write("hello world", &out);
  EXPECT_EQ(out, "hello world");
  EXPECT_EQ(scrubber.held_back(), 0u);
  scrubber.Write("; sec", &out);
  EXPECT_EQ(out, "hello world; ");
  EXPECT_EQ(scrubber.held_back(), 3u);
  scrubber.Write("ond", &out);  // "second": not the secret after all.
  EXPECT_EQ(out, "hello world; second");
  EXPECT_EQ(scrubber.held_back(), 0u);
  scrubber.Write("secre", &out);
  EXPECT_EQ(scrubber.held_back(), 5u);
  EXPECT_EQ(out, "hello world; second");
  scrubber.Finish(&out);
  EXPECT_EQ(out, "hello world; secondsecre");
  EXPECT_EQ(scrubber.replacements(), 0u);
}

TEST(StreamingTokenScrubberTest, MatchesTheWholeTextScrubberOnManyInputs) {
  // A small alphabet makes partial matches and overlaps frequent.
  const std::vector<std::string> secrets = {"a",    "ab",    "aab", "aba",
                                            "abab", "abcab", "aaaa"};
  uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) & 0x7fff;
  };
  for (const std::string& secret : secrets) {
    for (int round = 0; round < 300; ++round) {
      std::string text;
      size_t length = next() % 40;
      for (size_t i = 0; i < length; ++i) text.push_back("abc"[next() % 3]);
      std::vector<std::string> pieces;
      for (size_t at = 0; at < text.size();) {
        size_t size = std::min<size_t>(next() % 6, text.size() - at);
        pieces.push_back(text.substr(at, size));
        at += size;
      }
      size_t streamed = 0, whole = 0;
      EXPECT_EQ(Stream(secret, pieces, &streamed), Whole(secret, text, &whole))
          << secret << " in " << text;
      EXPECT_EQ(streamed, whole);
    }
  }
}

TEST(StreamingTokenScrubberTest, CanBeReusedAfterFinish) {
  StreamingTokenScrubber scrubber("tok");
  std::string out;
  scrubber.Write("xx to", &out);
  scrubber.Finish(&out);
  EXPECT_EQ(out, "xx to");
  out.clear();
  scrubber.Write("k tok", &out);  // "to" from the first body is gone.
  scrubber.Finish(&out);
  EXPECT_EQ(out, "k " + kMarker);
  EXPECT_EQ(scrubber.replacements(), 1u);
}

}  // namespace
}  // namespace tokenbroker
