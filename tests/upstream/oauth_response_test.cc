#include "service/upstream/oauth_response.h"

#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/retry_info.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);
constexpr char kToken[] = "tok-SECRET-abc123";

TokenParseOptions Options() {
  TokenParseOptions options;
  options.app = "design-center";
  options.default_lifetime = absl::Seconds(3600);
  options.max_lifetime = absl::Hours(24);
  return options;
}

HttpResponse Response(int status, std::string body, HttpHeaders headers = {}) {
  HttpResponse response;
  response.status = status;
  response.headers = std::move(headers);
  response.body = std::move(body);
  return response;
}

struct SuccessCase {
  std::string name;
  std::string body;
  absl::Duration lifetime;
  std::vector<std::string> scopes;
};

void PrintTo(const SuccessCase& c, std::ostream* os) { *os << c.name; }

class ParseSuccessTest : public ::testing::TestWithParam<SuccessCase> {};

TEST_P(ParseSuccessTest, ParsesToken) {
  const SuccessCase& c = GetParam();
  absl::StatusOr<Token> token =
      ParseTokenResponse(Response(200, c.body), kNow, Options());
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(token->access_token, kToken);
  EXPECT_EQ(token->token_type, "Bearer");
  EXPECT_EQ(token->issued_at, kNow);
  EXPECT_EQ(token->expires_at, kNow + c.lifetime);
  EXPECT_EQ(token->scopes, c.scopes);
}

std::string Body(const std::string& rest) {
  return std::string(R"({"access_token":")") + kToken + "\"" + rest + "}";
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ParseSuccessTest,
    ::testing::Values(
        SuccessCase{"Bearer",
                    Body(R"(,"token_type":"Bearer","expires_in":900)"),
                    absl::Seconds(900),
                    {}},
        SuccessCase{"bearer",
                    Body(R"(,"token_type":"bearer","expires_in":3600)"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"BEARER",
                    Body(R"(,"token_type":"BEARER","expires_in":60)"),
                    absl::Seconds(60),
                    {}},
        SuccessCase{"NoTokenType",
                    Body(R"(,"expires_in":120)"),
                    absl::Seconds(120),
                    {}},
        SuccessCase{"ExpiresMissing",
                    Body(R"(,"token_type":"bearer")"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"ExpiresString",
                    Body(R"(,"expires_in":"1800")"),
                    absl::Seconds(1800),
                    {}},
        SuccessCase{"ExpiresFraction",
                    Body(R"(,"expires_in":10.5)"),
                    absl::Milliseconds(10500),
                    {}},
        // The floor (min_lifetime, 10 s) itself is accepted.
        SuccessCase{"ExpiresAtTheFloor",
                    Body(R"(,"expires_in":10)"),
                    absl::Seconds(10),
                    {}},
        SuccessCase{"ExpiresStringWithSpaces",
                    Body(R"(,"expires_in":" 600 ")"),
                    absl::Seconds(600),
                    {}},
        // Not numbers: as if absent.
        SuccessCase{"ExpiresGarbage",
                    Body(R"(,"expires_in":"soon")"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"ExpiresNaNString",
                    Body(R"(,"expires_in":"NaN")"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"ExpiresEmptyString",
                    Body(R"(,"expires_in":"")"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"ExpiresBool",
                    Body(R"(,"expires_in":true)"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"ExpiresObject",
                    Body(R"(,"expires_in":{"s":1})"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{"ExpiresInfinityString",
                    Body(R"(,"expires_in":"inf")"),
                    absl::Hours(24),
                    {}},
        SuccessCase{"ExpiresOverflowString",
                    Body(R"(,"expires_in":"1e999")"),
                    absl::Hours(24),
                    {}},
        SuccessCase{"ExpiresNull",
                    Body(R"(,"expires_in":null)"),
                    absl::Seconds(3600),
                    {}},
        SuccessCase{
            "ExpiresHuge", Body(R"(,"expires_in":1e300)"), absl::Hours(24), {}},
        SuccessCase{"ExpiresAboveMax",
                    Body(R"(,"expires_in":"172800")"),
                    absl::Hours(24),
                    {}},
        SuccessCase{
            "Scope",
            Body(
                R"(,"expires_in":3600,"scope":"read:exchange  profile profile")"),
            absl::Seconds(3600),
            {"profile", "read:exchange"}},
        SuccessCase{
            "ExtraFields",
            Body(R"(,"expires_in":3600,"refresh_token":"r","id_token":"x")"),
            absl::Seconds(3600),
            {}}),
    [](const ::testing::TestParamInfo<SuccessCase>& info) {
      return info.param.name;
    });

struct ErrorCase {
  std::string name;
  int status;
  std::string body;
  HttpHeaders headers;
  absl::StatusCode code;
  std::vector<std::string> message_parts;
  std::optional<absl::Duration> retry_after;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ParseErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ParseErrorTest, MapsError) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<Token> token = ParseTokenResponse(
      Response(c.status, c.body, c.headers), kNow, Options());
  ASSERT_THAT(token, StatusIs(c.code));
  const std::string message(token.status().message());
  EXPECT_THAT(message, HasSubstr("design-center"));
  for (const std::string& part : c.message_parts) {
    EXPECT_THAT(message, HasSubstr(part));
  }
  // Neither tokens, secrets nor the raw body leak into the message.
  EXPECT_THAT(message, Not(HasSubstr(kToken)));
  EXPECT_THAT(message, Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(message, Not(HasSubstr("<html>")));
  if (!c.body.empty() && c.body.size() > 40) {
    EXPECT_THAT(message, Not(HasSubstr(c.body)));
  }
  EXPECT_EQ(GetRetryAfter(token.status()), c.retry_after);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ParseErrorTest,
    ::testing::Values(
        ErrorCase{
            "InvalidClientJson401",
            401,
            R"({"error":"invalid_client","error_description":"Bad client\u0007 given"})",
            {{"Content-Type", "application/json"}},
            absl::StatusCode::kFailedPrecondition,
            {"401", "invalid_client", "client id and secret",
             "Bad client? given"},
            std::nullopt},
        ErrorCase{"TextPlain401",
                  401,
                  "Unauthorized",
                  {{"Content-Type", "text/plain"}},
                  absl::StatusCode::kFailedPrecondition,
                  {"401", "client id and secret"},
                  std::nullopt},
        ErrorCase{
            "InvalidGrant400",
            400,
            R"({"error":"invalid_grant","error_description":"code expired"})",
            {},
            absl::StatusCode::kFailedPrecondition,
            {"400", "invalid_grant", "code expired", "authorize"},
            std::nullopt},
        ErrorCase{"InvalidScope400",
                  400,
                  R"({"error":"invalid_scope"})",
                  {},
                  absl::StatusCode::kFailedPrecondition,
                  {"invalid_scope", "scopes"},
                  std::nullopt},
        ErrorCase{"NotFound404",
                  404,
                  "<html>not found</html>",
                  {},
                  absl::StatusCode::kFailedPrecondition,
                  {"404", "base_url"},
                  std::nullopt},
        ErrorCase{
            "RateLimited503EmptyBody",
            503,
            "",
            {{"X-RateLimit-Limit", "500"}, {"X-RateLimit-Reset", "1800000042"}},
            absl::StatusCode::kUnavailable,
            {"503"},
            absl::Seconds(42)},
        ErrorCase{"TooMany429RetryAfterSeconds",
                  429,
                  R"({"error":"rate_limited"})",
                  {{"Retry-After", "7"}},
                  absl::StatusCode::kUnavailable,
                  {"429"},
                  absl::Seconds(7)},
        ErrorCase{"TooMany429RetryAfterDate",
                  429,
                  "",
                  // kNow is 2027-01-15T08:00:00Z.
                  {{"retry-after", "Fri, 15 Jan 2027 08:01:30 GMT"}},
                  absl::StatusCode::kUnavailable,
                  {"429"},
                  absl::Seconds(90)},
        ErrorCase{"Timeout408",
                  408,
                  "",
                  {},
                  absl::StatusCode::kUnavailable,
                  {"408"},
                  std::nullopt},
        ErrorCase{"Html500",
                  500,
                  "<html><body>Internal error with s3cr3t details "
                  "and a long long long long tail</body></html>",
                  {{"Content-Type", "text/html"}},
                  absl::StatusCode::kUnavailable,
                  {"500"},
                  std::nullopt},
        ErrorCase{"MalformedJson200",
                  200,
                  R"({"access_token":"tok-SECRET-abc123",)",
                  {},
                  absl::StatusCode::kUnavailable,
                  {"malformed token response"},
                  std::nullopt},
        ErrorCase{"JsonArray200",
                  200,
                  R"(["tok-SECRET-abc123"])",
                  {},
                  absl::StatusCode::kUnavailable,
                  {"malformed token response"},
                  std::nullopt},
        ErrorCase{"NoAccessToken200",
                  200,
                  R"({"token_type":"bearer","expires_in":3600})",
                  {},
                  absl::StatusCode::kUnavailable,
                  {"malformed token response", "access_token"},
                  std::nullopt},
        ErrorCase{"EmptyAccessToken200",
                  200,
                  R"({"access_token":""})",
                  {},
                  absl::StatusCode::kUnavailable,
                  {"malformed token response"},
                  std::nullopt},
        ErrorCase{"UnsupportedTokenType",
                  200,
                  R"({"access_token":"tok-SECRET-abc123","token_type":"mac"})",
                  {},
                  absl::StatusCode::kFailedPrecondition,
                  {"unsupported token_type", "mac"},
                  std::nullopt}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) {
      return info.param.name;
    });

TEST(ParseTokenResponseTest, LongDescriptionIsTruncatedAndSanitized) {
  std::string description(500, 'x');
  description[3] = '\n';
  absl::StatusOr<Token> token = ParseTokenResponse(
      Response(401, R"({"error":"invalid_client","error_description":")" +
                        description + "\"}"),
      kNow, Options());
  // The JSON is invalid (raw newline), so no description at all.
  ASSERT_THAT(token, StatusIs(absl::StatusCode::kFailedPrecondition));
  description[3] = 'x';
  token = ParseTokenResponse(
      Response(401, R"({"error":"invalid_client","error_description":")" +
                        description + "\"}"),
      kNow, Options());
  ASSERT_THAT(token, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(token.status().message()),
              HasSubstr(std::string(200, 'x') + "..."));
  EXPECT_THAT(std::string(token.status().message()),
              Not(HasSubstr(std::string(201, 'x'))));
}

TEST(SanitizeForMessageTest, ReplacesNonPrintable) {
  EXPECT_EQ(SanitizeForMessage("a\tb\x01\xff"), "a?b??");
  EXPECT_EQ(SanitizeForMessage("abcdef", 3), "abc...");
  EXPECT_EQ(SanitizeForMessage("abc", 3), "abc");
}

TEST(OAuthErrorStatusTest, OkFor2xx) {
  EXPECT_THAT(OAuthErrorStatus(Response(200, ""), kNow, "a", "revoke"), IsOk());
  EXPECT_THAT(OAuthErrorStatus(Response(400, R"({"error":"invalid_request"})"),
                               kNow, "a", "revoke"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("revoke endpoint answered HTTP 400")));
}

struct RetryCase {
  std::string name;
  HttpHeaders headers;
  std::optional<absl::Duration> delay;
};

void PrintTo(const RetryCase& c, std::ostream* os) { *os << c.name; }

class RetryDelayTest : public ::testing::TestWithParam<RetryCase> {};

TEST_P(RetryDelayTest, Parses) {
  EXPECT_EQ(ParseRetryDelay(GetParam().headers, kNow), GetParam().delay);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, RetryDelayTest,
    ::testing::Values(
        RetryCase{"None", {}, std::nullopt},
        RetryCase{"Seconds", {{"Retry-After", " 120 "}}, absl::Seconds(120)},
        RetryCase{"SecondsCapped", {{"Retry-After", "86400"}}, absl::Hours(1)},
        RetryCase{
            "NegativeSeconds", {{"Retry-After", "-3"}}, absl::ZeroDuration()},
        RetryCase{"Date",
                  {{"Retry-After", "Fri, 15 Jan 2027 08:00:10 GMT"}},
                  absl::Seconds(10)},
        RetryCase{"DateInPast",
                  {{"Retry-After", "Fri, 15 Jan 2027 07:00:00 GMT"}},
                  absl::ZeroDuration()},
        RetryCase{
            "GarbageRetryAfter", {{"Retry-After", "later"}}, std::nullopt},
        RetryCase{"GarbageFallsBackToReset",
                  {{"Retry-After", "later"}, {"X-RateLimit-Reset", "30"}},
                  absl::Seconds(30)},
        RetryCase{"ResetEpoch",
                  {{"X-RateLimit-Reset", "1800000005"}},
                  absl::Seconds(5)},
        RetryCase{"ResetEpochPast",
                  {{"X-RateLimit-Reset", "1799999000"}},
                  absl::ZeroDuration()},
        RetryCase{"ResetEpochFar",
                  {{"X-RateLimit-Reset", "1900000000"}},
                  absl::Hours(1)},
        RetryCase{
            "ResetDelta", {{"x-ratelimit-reset", "12"}}, absl::Seconds(12)},
        RetryCase{"RetryAfterWins",
                  {{"X-RateLimit-Reset", "1800000005"}, {"Retry-After", "9"}},
                  absl::Seconds(9)}),
    [](const ::testing::TestParamInfo<RetryCase>& info) {
      return info.param.name;
    });

TEST(FormEncodeTest, EncodesReservedCharacters) {
  EXPECT_EQ(FormEncode({}), "");
  EXPECT_EQ(FormEncode({{"grant_type", "client_credentials"},
                        {"client_id", "abc-._~XYZ09"},
                        {"client_secret", "a b+c&d=e%f/g\xc3\xa9"}}),
            "grant_type=client_credentials&client_id=abc-._~XYZ09&"
            "client_secret=a+b%2Bc%26d%3De%25f%2Fg%C3%A9");
  // RFC 6749 Appendix B example.
  EXPECT_EQ(FormEncodeComponent(" %&+\xc2\xa3\xe2\x82\xac"),
            "+%25%26%2B%C2%A3%E2%82%AC");
}

TEST(ParseTokenResponseTest, ScopeAbsentGivesEmptyScopes) {
  absl::StatusOr<Token> token =
      ParseTokenResponse(Response(201, Body("")), kNow, Options());
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(token->scopes, IsEmpty());
  token = ParseTokenResponse(Response(200, Body(R"(,"scope":"a")")), kNow,
                             Options());
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(token->scopes, ElementsAre("a"));
}

// issue 10, defect 10: a lifetime under the floor yields a token that is
// already expired and a refresh loop against the token endpoint.
TEST(ParseTokenResponseTest, LifetimeUnderTheFloorIsRefusedWithTheValue) {
  const std::pair<std::string, std::string> cases[] = {
      {"0", "expires in 0 s"},
      {"-5", "expires in -5 s"},
      {"-0.0", "expires in -0 s"},
      {"0.001", "expires in 0.001 s"},
      {"1e-300", "expires in 1e-300 s"},
      {"-1e300", "expires in -1e+300 s"},
      {"9.999", "expires in 9.999 s"},
      {"1.5", "expires in 1.5 s"},
      {R"("0.001")", "expires in 0.001 s"},
      {R"("0")", "expires in 0 s"},
      {R"("-inf")", "expires in -inf s"},
      {R"("1e-400")", "expires in 0 s"},
  };
  for (const auto& [value, text] : cases) {
    absl::StatusOr<Token> token = ParseTokenResponse(
        Response(200, Body(R"(,"expires_in":)" + value)), kNow, Options());
    EXPECT_THAT(token,
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("\"design-center\""), HasSubstr(text),
                               HasSubstr("minimum of 10s"),
                               HasSubstr("cache.min_lifetime"),
                               Not(HasSubstr(kToken)))))
        << value;
  }
}

TEST(ParseTokenResponseTest, FloorIsAnOption) {
  TokenParseOptions options = Options();
  options.min_lifetime = absl::Seconds(1);
  absl::StatusOr<Token> token = ParseTokenResponse(
      Response(200, Body(R"(,"expires_in":1.5)")), kNow, options);
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(token->expires_at, kNow + absl::Milliseconds(1500));
  EXPECT_THAT(ParseTokenResponse(Response(200, Body(R"(,"expires_in":0.5)")),
                                 kNow, options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("minimum of 1s")));
}

TEST(ParseTokenResponseTest, NumberTooLargeForJsonIsMalformed) {
  // nlohmann::json refuses 1e999 (not finite): the answer is not JSON.
  EXPECT_THAT(ParseTokenResponse(Response(200, Body(R"(,"expires_in":1e999)")),
                                 kNow, Options()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not JSON")));
}

}  // namespace
}  // namespace tokenbroker
