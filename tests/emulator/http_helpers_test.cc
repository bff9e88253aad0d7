#include "emulator/http_helpers.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::emulator::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

httplib::Request RequestWith(const std::string& header,
                             const std::string& value, std::string body = "") {
  httplib::Request req;
  req.headers.emplace(header, value);
  req.body = std::move(body);
  return req;
}

TEST(DecodeUrlEncodedTest, DecodesPairsInOrderAndSkipsEmptyOnes) {
  EXPECT_THAT(DecodeUrlEncoded("b=2&&a=x+y%21&flag&=v&"),
              ElementsAre(Pair("b", "2"), Pair("a", "x y!"), Pair("flag", ""),
                          Pair("", "v")));
  EXPECT_THAT(DecodeUrlEncoded(""), ElementsAre());
}

TEST(ParseBodyParamsTest, FormBodyRejectsARepeatedField) {
  const auto params = ParseBodyParams(RequestWith(
      "Content-Type", "application/x-www-form-urlencoded; charset=utf-8",
      "grant_type=client_credentials&client_id=a%2Bb"));
  ASSERT_THAT(params.status(), IsOk());
  EXPECT_THAT(*params, ElementsAre(Pair("client_id", "a+b"),
                                   Pair("grant_type", "client_credentials")));
  EXPECT_THAT(ParseBodyParams(RequestWith("Content-Type",
                                          "application/x-www-form-urlencoded",
                                          "a=1&a=2"))
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseBodyParamsTest, JsonBodySkipsNullsAndRejectsNonStrings) {
  const auto params = ParseBodyParams(
      RequestWith("Content-Type", "Application/JSON", R"({"a":"1","b":null})"));
  ASSERT_THAT(params.status(), IsOk());
  EXPECT_THAT(*params, ElementsAre(Pair("a", "1")));
  EXPECT_THAT(ParseBodyParams(
                  RequestWith("Content-Type", "application/json", R"({"a":1})"))
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBodyParams(RequestWith("Content-Type", "text/plain", "a=1"))
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ClientCredentialsTest, BodyWinsOverBasicWhichIsUrlDecoded) {
  std::string id, secret;
  bool basic = true;
  ClientCredentials(RequestWith("Authorization", "Basic aWQ6c2Vj"),
                    {{"client_id", "body-id"}}, &id, &secret, &basic);
  EXPECT_EQ(id, "body-id");
  EXPECT_EQ(secret, "");
  EXPECT_FALSE(basic);
  // base64("a%3Ab:s+t") = YSUzQWI6cyt0
  ClientCredentials(RequestWith("Authorization", "basic YSUzQWI6cyt0"), {}, &id,
                    &secret, &basic);
  EXPECT_EQ(id, "a:b");
  EXPECT_EQ(secret, "s t");
  EXPECT_TRUE(basic);
  ClientCredentials(RequestWith("Authorization", "Bearer x"), {}, &id, &secret,
                    &basic);
  EXPECT_EQ(id, "");
  EXPECT_EQ(secret, "");
  EXPECT_FALSE(basic);
}

TEST(BearerTokenTest, SchemeIsCaseInsensitiveAndTokenTrimmed) {
  EXPECT_EQ(BearerToken(RequestWith("Authorization", "bEaReR  abc ")),
            std::optional<std::string>("abc"));
  EXPECT_EQ(BearerToken(RequestWith("Authorization", "Basic abc")),
            std::nullopt);
  EXPECT_EQ(BearerToken(httplib::Request()), std::nullopt);
}

TEST(RandomTokenTest, IsHexOfTheAskedLengthAndDiffers) {
  const std::string a = RandomToken(16), b = RandomToken(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

TEST(S256ChallengeTest, MatchesRfc7636AppendixB) {
  EXPECT_EQ(S256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(IsPkceStringTest, LengthAndAlphabet) {
  const std::string b64 = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
  EXPECT_TRUE(IsPkceString(b64, 43, 43, false));
  EXPECT_FALSE(IsPkceString(b64.substr(1), 43, 43, false));
  EXPECT_FALSE(IsPkceString(b64 + "A", 43, 43, false));
  EXPECT_FALSE(IsPkceString(b64.substr(1) + "+", 43, 43, false));
  EXPECT_FALSE(IsPkceString(b64.substr(1) + "=", 43, 43, false));
  EXPECT_FALSE(IsPkceString(b64.substr(1) + "~", 43, 43, false));
  EXPECT_TRUE(IsPkceString(b64.substr(1) + "~", 43, 128, true));
  EXPECT_TRUE(IsPkceString(std::string(128, '.'), 43, 128, true));
  EXPECT_FALSE(IsPkceString(std::string(129, 'a'), 43, 128, true));
}

TEST(AppendQueryTest, EncodesAndPicksTheSeparator) {
  EXPECT_EQ(AppendQuery("http://h/cb", {{"code", "a b&c=d"}, {"state", ""}}),
            "http://h/cb?code=a%20b%26c%3Dd");
  EXPECT_EQ(AppendQuery("http://h/cb?x=1",
                        {{"error", "access_denied"}, {"iss", "http://i/o"}}),
            "http://h/cb?x=1&error=access_denied&iss=http%3A%2F%2Fi%2Fo");
  EXPECT_EQ(AppendQuery("http://h/cb", {}), "http://h/cb");
}

}  // namespace
}  // namespace tokenbroker::emulator::internal
