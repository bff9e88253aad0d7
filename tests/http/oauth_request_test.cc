#include "service/http/oauth_request.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace internal {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;
using ::tokenbroker::testing::StatusIs;

TEST(ParseQueryTest, DecodesFormEncoding) {
  absl::StatusOr<QueryParams> params =
      ParseQuery("code=a%2Fb&state=x+y&plus=%2B+&empty=&flag&eq=b=c");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(*params, ElementsAre(Pair("code", "a/b"), Pair("empty", ""),
                                   Pair("eq", "b=c"), Pair("flag", ""),
                                   Pair("plus", "+ "), Pair("state", "x y")));
}

TEST(ParseQueryTest, EmptyPairsAreSkipped) {
  absl::StatusOr<QueryParams> params = ParseQuery("&&a=1&&");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(*params, ElementsAre(Pair("a", "1")));
  absl::StatusOr<QueryParams> none = ParseQuery("");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST(ParseQueryTest, DecodesOnceOnly) {
  absl::StatusOr<QueryParams> params = ParseQuery("state=%2541&nul=%00");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->at("state"), "%41");
  // Bytes are not judged here: the callers check what they use.
  EXPECT_EQ(params->at("nul"), std::string(1, '\0'));
}

TEST(ParseQueryTest, RepeatedParametersAreRefused) {
  for (const char* query :
       {"state=a&state=b", "state=a&state=a", "a&a", "state=a&%73tate=b",
        "a+b=1&a%20b=2", "code=x&state=s&code=y"}) {
    EXPECT_THAT(ParseQuery(query), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("a repeated parameter")))
        << query;
  }
}

TEST(ParseQueryTest, MalformedEscapesAreRefusedWithoutQuotingTheValue) {
  for (const char* query :
       {"code=SECRET%", "code=SECRET%2", "code=SECRET%zz", "code=%G1SECRET",
        "SECRET%4=x", "code=%%41SECRET", "code=SECRET%2G"}) {
    absl::StatusOr<QueryParams> params = ParseQuery(query);
    EXPECT_THAT(params, StatusIs(absl::StatusCode::kInvalidArgument,
                                 AllOf(HasSubstr("malformed %-escape"),
                                       Not(HasSubstr("SECRET")))))
        << query;
  }
}

TEST(ParseQueryTest, HugeQueriesAreRefusedWithoutQuotingThem) {
  const std::string at_limit = "v=" + std::string(kMaxQueryBytes - 2, 'x');
  absl::StatusOr<QueryParams> params = ParseQuery(at_limit);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(params->at("v"), SizeIs(kMaxQueryBytes - 2));

  const std::string over = at_limit + "y";
  EXPECT_THAT(ParseQuery(over),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("over 4 KiB"), Not(HasSubstr("xxxx")))));
  // Over the limit is refused before anything is decoded.
  EXPECT_THAT(
      ParseQuery(std::string(1 << 20, '%')),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over 4 KiB")));
}

TEST(FindParamTest, FindsPresentNamesOnly) {
  QueryParams params = {{"state", "s"}, {"iss", ""}};
  ASSERT_NE(FindParam(params, "state"), nullptr);
  EXPECT_EQ(*FindParam(params, "state"), "s");
  ASSERT_NE(FindParam(params, "iss"), nullptr);
  EXPECT_EQ(*FindParam(params, "iss"), "");
  EXPECT_EQ(FindParam(params, "code"), nullptr);
  EXPECT_EQ(FindParam(params, "State"), nullptr);
}

TEST(ParseCookiesTest, SplitsHeadersAndStripsWhitespace) {
  EXPECT_THAT(ParseCookies({"a=1;b=2", " c = 3 ;\td=\t", ""}),
              ElementsAre(Pair("a", "1"), Pair("b", "2"), Pair("c", "3"),
                          Pair("d", "")));
}

TEST(ParseCookiesTest, AttributesWithoutValueAreSkipped) {
  // A browser sends no attributes, but a hostile client may: they parse as
  // cookies (or are skipped) and match no binding cookie.
  EXPECT_THAT(ParseCookies({"tb_oauth=v; Path=/oauth; HttpOnly; Secure; "
                            "SameSite=Lax; Max-Age=600"}),
              ElementsAre(Pair("tb_oauth", "v"), Pair("Path", "/oauth"),
                          Pair("SameSite", "Lax"), Pair("Max-Age", "600")));
}

TEST(ParseCookiesTest, KeepsValuesAsSentAndRepeatedNames) {
  EXPECT_THAT(ParseCookies({R"(q="x y"; eq=b=c; enc=%41; =anon)",
                            "tb_oauth=1; tb_oauth=2"}),
              ElementsAre(Pair("q", R"("x y")"), Pair("eq", "b=c"),
                          Pair("enc", "%41"), Pair("", "anon"),
                          Pair("tb_oauth", "1"), Pair("tb_oauth", "2")));
  EXPECT_THAT(ParseCookies({";;; ;", "novalue", ""}), IsEmpty());
}

TEST(ParseCookiesTest, AtMostMaxCookiesAcrossHeaders) {
  std::string first;
  std::string second;
  for (int i = 0; i < 50; ++i) {
    absl::StrAppend(&first, "a", i, "=", i, "; ");
    absl::StrAppend(&second, "b", i, "=", i, "; ");
  }
  RequestCookies cookies = ParseCookies({first, second});
  ASSERT_THAT(cookies, SizeIs(kMaxCookies));
  EXPECT_THAT(cookies.front(), Pair("a0", "0"));
  EXPECT_EQ(cookies[49].first, "a49");
  EXPECT_EQ(cookies.back().first, absl::StrCat("b", kMaxCookies - 51));
}

TEST(ParseCookiesTest, HugeValuesAreKeptWhole) {
  const std::string huge(100000, 'v');
  EXPECT_THAT(ParseCookies({absl::StrCat("tb_oauth=", huge)}),
              ElementsAre(Pair("tb_oauth", huge)));
}

TEST(BindingCookieTest, NameFollowsTheScheme) {
  EXPECT_EQ(BindingCookieName("https://broker.example"), kSecureCookieName);
  EXPECT_EQ(BindingCookieName("HTTPS://BROKER.EXAMPLE"), kSecureCookieName);
  EXPECT_EQ(BindingCookieName("http://127.0.0.1:8080"), kPlainCookieName);
  EXPECT_EQ(BindingCookieName("httpsx://broker.example"), kPlainCookieName);
  EXPECT_EQ(BindingCookieName(""), kPlainCookieName);
}

TEST(BindingCookieTest, HeaderAttributes) {
  EXPECT_EQ(BindingCookieHeader(kSecureCookieName, "v", absl::Minutes(10)),
            "__Host-tb_oauth=v; Path=/; Max-Age=600; HttpOnly; Secure; "
            "SameSite=Lax");
  EXPECT_EQ(BindingCookieHeader(kPlainCookieName, "v", absl::Minutes(10)),
            "tb_oauth=v; Path=/oauth; Max-Age=600; HttpOnly; SameSite=Lax");
  EXPECT_EQ(BindingCookieHeader(kPlainCookieName, "", absl::ZeroDuration()),
            "tb_oauth=; Path=/oauth; Max-Age=0; HttpOnly; SameSite=Lax");
}

TEST(SanitizeErrorCodeTest, KeepsOnlyCodeCharacters) {
  EXPECT_EQ(SanitizeErrorCode("invalid_scope"), "invalid_scope");
  EXPECT_EQ(SanitizeErrorCode("a.b-c_1"), "a.b-c_1");
  EXPECT_EQ(SanitizeErrorCode(std::string(64, 'e')), std::string(64, 'e'));
  for (const std::string& error :
       {std::string(), std::string(65, 'e'), std::string("<script>"),
        std::string("access denied"), std::string("e\n"), std::string("e\0", 2),
        std::string("caf\xc3\xa9"), std::string("a;b")}) {
    EXPECT_EQ(SanitizeErrorCode(error), "(unrecognized error)") << error;
  }
}

TEST(IsPlausibleCodeTest, PrintableAsciiUpTo2048) {
  EXPECT_TRUE(IsPlausibleCode("abc"));
  EXPECT_TRUE(IsPlausibleCode(" ~"));
  EXPECT_TRUE(IsPlausibleCode(std::string(2048, 'c')));
  EXPECT_FALSE(IsPlausibleCode(""));
  EXPECT_FALSE(IsPlausibleCode(std::string(2049, 'c')));
  EXPECT_FALSE(IsPlausibleCode("a\nb"));
  EXPECT_FALSE(IsPlausibleCode("a\x7f"));
  EXPECT_FALSE(IsPlausibleCode(std::string("a\0b", 3)));
  EXPECT_FALSE(IsPlausibleCode("caf\xc3\xa9"));
}

TEST(RequestedScopesTest, AddsOfflineAccessOnce) {
  AppConfig app;
  app.scopes = {"profile", "view:environment"};
  EXPECT_THAT(RequestedScopes(app),
              ElementsAre("profile", "view:environment", "offline_access"));
  app.scopes = {"offline_access", "profile"};
  EXPECT_THAT(RequestedScopes(app), ElementsAre("offline_access", "profile"));
  app.scopes.clear();
  EXPECT_THAT(RequestedScopes(app), ElementsAre("offline_access"));
}

}  // namespace
}  // namespace internal
}  // namespace tokenbroker
