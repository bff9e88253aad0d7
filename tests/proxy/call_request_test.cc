#include "service/proxy/call_request.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

struct Case {
  const char* name;
  std::string method;
  std::string path;
  HttpHeaders headers;
  size_t body_size;
  absl::StatusCode expected;
  const char* message;  // Substring of the error; "" for OK.
};

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
constexpr absl::StatusCode kBad = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kTooBig = absl::StatusCode::kResourceExhausted;

std::vector<Case> Cases() {
  return {
      // Accepted.
      {"plain", "GET", "/accounts/api/me", {}, 0, kOk, ""},
      {"query",
       "GET",
       "/exchange/api/v2/assets/search?search=a%20b&limit=5",
       {},
       0,
       kOk,
       ""},
      {"encoded_space", "GET", "/a%20b", {}, 0, kOk, ""},
      {"dots_inside_name", "GET", "/files/a..b/c.d", {}, 0, kOk, ""},
      {"trailing_slash", "GET", "/accounts/api/", {}, 0, kOk, ""},
      {"post_body",
       "POST",
       "/x",
       {{"Content-Type", "application/json"}},
       100,
       kOk,
       ""},
      {"context_headers",
       "GET",
       "/designcenter/api-designer/projects",
       {{"X-ORGANIZATION-ID", "o"},
        {"X-OWNER-ID", "u"},
        {"X-ANYPNT-ORG-ID", "o"},
        {"X-ANYPNT-ENV-ID", "e"}},
       0,
       kOk,
       ""},
      {"every_method_delete", "DELETE", "/x", {}, 0, kOk, ""},
      {"every_method_head", "HEAD", "/x", {}, 0, kOk, ""},
      {"every_method_patch", "PATCH", "/x", {}, 0, kOk, ""},
      {"every_method_put", "PUT", "/x", {}, 0, kOk, ""},
      // Methods.
      {"lower_case_method", "get", "/x", {}, 0, kBad, "method"},
      {"connect", "CONNECT", "/x", {}, 0, kBad, "method"},
      {"trace", "TRACE", "/x", {}, 0, kBad, "method"},
      {"options", "OPTIONS", "/x", {}, 0, kBad, "method"},
      {"empty_method", "", "/x", {}, 0, kBad, "method"},
      {"method_with_space", "GET ", "/x", {}, 0, kBad, "method"},
      // Absolute URLs, hosts, userinfo.
      {"absolute_url", "GET", "http://evil.example/x", {}, 0, kBad, "start"},
      {"https_url", "GET", "https://evil.example", {}, 0, kBad, "start"},
      {"scheme_relative", "GET", "//evil.example/x", {}, 0, kBad, "host"},
      {"empty_path", "GET", "", {}, 0, kBad, "start"},
      {"relative_path", "GET", "accounts/api/me", {}, 0, kBad, "start"},
      {"userinfo", "GET", "/@evil.example/x", {}, 0, kBad, "userinfo"},
      {"userinfo_later", "GET", "/x/user:pass@evil", {}, 0, kBad, "userinfo"},
      {"backslash", "GET", "/\\evil.example", {}, 0, kBad, "'\\'"},
      {"fragment", "GET", "/x#frag", {}, 0, kBad, "fragment"},
      // Dot segments, plain and encoded.
      {"dotdot", "GET", "/a/../b", {}, 0, kBad, "'..'"},
      {"dot", "GET", "/a/./b", {}, 0, kBad, "'..'"},
      {"trailing_dotdot", "GET", "/a/..", {}, 0, kBad, "'..'"},
      {"encoded_dotdot", "GET", "/a/%2e%2e/b", {}, 0, kBad, "'..'"},
      {"encoded_dotdot_upper", "GET", "/a/%2E%2E/b", {}, 0, kBad, "'..'"},
      {"half_encoded_dotdot", "GET", "/a/.%2e/b", {}, 0, kBad, "'..'"},
      {"double_encoded_dotdot", "GET", "/a/%252e%252e/b", {}, 0, kBad, "'..'"},
      {"triple_encoded_dotdot",
       "GET",
       "/a/%25252e%25252e/b",
       {},
       0,
       kBad,
       "'..'"},
      {"encoded_dot", "GET", "/a/%2e/b", {}, 0, kBad, "'..'"},
      {"encoded_slash", "GET", "/a%2f..%2fb", {}, 0, kBad, "encoded"},
      {"encoded_slash_plain", "GET", "/a%2Fb", {}, 0, kBad, "encoded"},
      {"double_encoded_slash", "GET", "/a%252fb", {}, 0, kBad, "encoded"},
      {"encoded_backslash", "GET", "/a%5c..%5cb", {}, 0, kBad, "encoded"},
      {"bad_escape", "GET", "/a%zz", {}, 0, kBad, "hex"},
      {"truncated_escape", "GET", "/a%2", {}, 0, kBad, "hex"},
      {"too_deep_encoding", "GET", "/%2525252525", {}, 0, kBad, "levels"},
      // Control characters.
      {"raw_crlf", "GET", "/a\r\nHost: evil", {}, 0, kBad, "printable"},
      {"raw_nul", "GET", std::string("/a\0b", 4), {}, 0, kBad, "printable"},
      {"raw_space", "GET", "/a b", {}, 0, kBad, "printable"},
      {"raw_tab", "GET", "/a\tb", {}, 0, kBad, "printable"},
      {"non_ascii", "GET", "/caf\xc3\xa9", {}, 0, kBad, "printable"},
      {"encoded_crlf", "GET", "/a%0d%0aHost:%20evil", {}, 0, kBad, "CR"},
      {"encoded_nul", "GET", "/a%00b", {}, 0, kBad, "NUL"},
      {"query_encoded_crlf", "GET", "/a?x=%0d%0a", {}, 0, kBad, "CR"},
      {"query_double_encoded_nul", "GET", "/a?x=%2500", {}, 0, kBad, "NUL"},
      // Headers.
      {"authorization",
       "GET",
       "/x",
       {{"Authorization", "Bearer stolen"}},
       0,
       kBad,
       "Authorization"},
      {"authorization_lower",
       "GET",
       "/x",
       {{"authorization", "x"}},
       0,
       kBad,
       "authorization"},
      {"host", "GET", "/x", {{"Host", "evil.example"}}, 0, kBad, "Host"},
      {"cookie", "GET", "/x", {{"Cookie", "a=b"}}, 0, kBad, "Cookie"},
      {"proxy_authorization",
       "GET",
       "/x",
       {{"Proxy-Authorization", "x"}},
       0,
       kBad,
       "Proxy-Authorization"},
      {"connection",
       "GET",
       "/x",
       {{"Connection", "close"}},
       0,
       kBad,
       "Connection"},
      {"transfer_encoding",
       "POST",
       "/x",
       {{"Transfer-Encoding", "chunked"}},
       0,
       kBad,
       "Transfer-Encoding"},
      {"te", "GET", "/x", {{"TE", "trailers"}}, 0, kBad, "TE"},
      {"upgrade", "GET", "/x", {{"Upgrade", "h2c"}}, 0, kBad, "Upgrade"},
      {"keep_alive", "GET", "/x", {{"Keep-Alive", "1"}}, 0, kBad, "Keep-Alive"},
      {"trailer", "GET", "/x", {{"Trailer", "x"}}, 0, kBad, "Trailer"},
      {"content_length",
       "POST",
       "/x",
       {{"Content-Length", "0"}},
       0,
       kBad,
       "Content-Length"},
      {"header_crlf",
       "GET",
       "/x",
       {{"X-A", "a\r\nHost: evil"}},
       0,
       kBad,
       "CR, LF"},
      {"header_nul",
       "GET",
       "/x",
       {{"X-A", std::string("a\0b", 3)}},
       0,
       kBad,
       "CR, LF"},
      {"header_name_space", "GET", "/x", {{"X A", "a"}}, 0, kBad, "name"},
      {"header_name_colon", "GET", "/x", {{"X-A:", "a"}}, 0, kBad, "name"},
      {"header_name_empty", "GET", "/x", {{"", "a"}}, 0, kBad, "name"},
      {"header_too_long",
       "GET",
       "/x",
       {{"X-A", std::string(20000, 'a')}},
       0,
       kBad,
       "longer"},
      // Sizes.
      {"body_too_large", "POST", "/x", {}, (8u << 20) + 1, kTooBig, "limit"},
      {"body_at_limit", "POST", "/x", {}, 8u << 20, kOk, ""},
      {"path_too_long",
       "GET",
       "/" + std::string(9000, 'a'),
       {},
       0,
       kBad,
       "longer"},
  };
}

class ValidateCallRequestTest : public ::testing::TestWithParam<Case> {};

TEST_P(ValidateCallRequestTest, GivesTheExpectedOutcome) {
  const Case& c = GetParam();
  absl::Status status =
      ValidateCallRequest(c.method, c.path, c.headers, c.body_size, {});
  if (c.expected == kOk) {
    EXPECT_THAT(status, IsOk());
  } else {
    EXPECT_THAT(status, StatusIs(c.expected, HasSubstr(c.message)));
    // Header values may hold credentials: never echoed.
    for (const auto& [name, value] : c.headers) {
      if (value.size() > 3) {
        EXPECT_THAT(std::string(status.message()), Not(HasSubstr(value)));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(HostileInputs, ValidateCallRequestTest,
                         ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(ValidateCallRequestTest, HasAtLeastFortyHostileCases) {
  int hostile = 0;
  for (const Case& c : Cases()) hostile += c.expected != kOk;
  EXPECT_GE(hostile, 40);
}

TEST(ValidateCallRequestTest, TooManyHeaders) {
  HttpHeaders headers(101, {"X-A", "b"});
  EXPECT_THAT(ValidateCallRequest("GET", "/x", headers, 0, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FilterResponseHeadersTest, DropsCookiesAndHopByHopKeepsOrder) {
  HttpHeaders in = {{"Content-Type", "application/json"},
                    {"Set-Cookie", "a=1"},
                    {"Link", "<a>"},
                    {"Connection", "close, X-Secret-Hop"},
                    {"X-Secret-Hop", "x"},
                    {"Transfer-Encoding", "chunked"},
                    {"Keep-Alive", "timeout=5"},
                    {"set-cookie", "b=2"},
                    {"Link", "<b>"},
                    {"Proxy-Authenticate", "Basic"}};
  HttpHeaders out = FilterResponseHeaders(in);
  EXPECT_THAT(out, ::testing::ElementsAre(
                       std::pair<std::string, std::string>{"Content-Type",
                                                           "application/json"},
                       std::pair<std::string, std::string>{"Link", "<a>"},
                       std::pair<std::string, std::string>{"Link", "<b>"}));
}

TEST(IsIdempotentMethodTest, Methods) {
  EXPECT_TRUE(IsIdempotentMethod("GET"));
  EXPECT_TRUE(IsIdempotentMethod("PUT"));
  EXPECT_TRUE(IsIdempotentMethod("DELETE"));
  EXPECT_TRUE(IsIdempotentMethod("HEAD"));
  EXPECT_FALSE(IsIdempotentMethod("POST"));
  EXPECT_FALSE(IsIdempotentMethod("PATCH"));
}

}  // namespace
}  // namespace tokenbroker
