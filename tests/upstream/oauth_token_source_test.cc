#include "service/upstream/oauth_token_source.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/retry_info.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_http_client.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::FakeHttpClient;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kTokenJson[] =
    R"({"access_token":"at-1","token_type":"bearer","expires_in":3600})";

AppConfig App(std::string name = "exchange") {
  AppConfig app;
  app.name = std::move(name);
  app.control_plane = "custom";
  app.base_url = "https://anypoint.example";
  app.client_id.value = "my id";
  app.client_secret.value = "s3cr3t&x";
  app.scopes = {"read:exchange"};
  return app;
}

class OAuthTokenSourceTest : public ::testing::Test {
 protected:
  OAuthTokenSourceTest()
      : source_(http_, clock_, [] {
          OAuthTokenSourceOptions options;
          options.fetch_timeout = absl::Seconds(7);
          return options;
        }()) {}

  absl::StatusOr<Token> FetchSync(TokenRequest request) {
    std::optional<absl::StatusOr<Token>> result;
    source_.Fetch(request, [&](absl::StatusOr<Token> token) {
      result.emplace(std::move(token));
    });
    EXPECT_TRUE(result.has_value()) << "the fake answers inline";
    return result.value_or(absl::InternalError("no answer"));
  }

  FakeClock clock_;
  FakeHttpClient http_{
      [](const HttpRequest&) { return FakeHttpClient::Json(200, kTokenJson); }};
  OAuthTokenSource source_;
};

TEST_F(OAuthTokenSourceTest, UnknownAppIsNotFound) {
  EXPECT_THAT(FetchSync({"nope", {}}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(http_.requests().empty());
}

TEST_F(OAuthTokenSourceTest, ClientCredentialsPostsForm) {
  source_.SetApps({App()});
  absl::StatusOr<Token> token = FetchSync({"exchange", {"ignored"}});
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(token->access_token, "at-1");
  EXPECT_EQ(token->issued_at, clock_.Now());
  EXPECT_EQ(token->expires_at, clock_.Now() + absl::Hours(1));
  // No `scope` in the answer: the app's configured scopes.
  EXPECT_THAT(token->scopes, ElementsAre("read:exchange"));

  std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpRequest& request = requests[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url,
            "https://anypoint.example/accounts/api/v2/oauth2/token");
  EXPECT_EQ(request.timeout, absl::Seconds(7));
  EXPECT_EQ(request.body,
            "grant_type=client_credentials&client_id=my+id&"
            "client_secret=s3cr3t%26x");
  EXPECT_THAT(
      request.headers,
      ElementsAre(Pair("Accept", "application/json"),
                  Pair("Content-Type", "application/x-www-form-urlencoded"),
                  Pair("User-Agent", "anypoint-token-broker/0.1")));
}

TEST_F(OAuthTokenSourceTest, ScopeSentOnlyWhenConfigured) {
  AppConfig app = App();
  app.send_scope = true;
  app.token_path = "/oauth/token";
  source_.SetApps({app});
  ASSERT_THAT(FetchSync({"exchange", {"a", "b:c"}}), IsOk());
  ASSERT_THAT(FetchSync({"exchange", {}}), IsOk());
  std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].url, "https://anypoint.example/oauth/token");
  EXPECT_EQ(requests[0].body,
            "grant_type=client_credentials&scope=a+b%3Ac&client_id=my+id&"
            "client_secret=s3cr3t%26x");
  EXPECT_EQ(requests[1].body,
            "grant_type=client_credentials&client_id=my+id&"
            "client_secret=s3cr3t%26x");
}

TEST_F(OAuthTokenSourceTest, ResponseScopeWins) {
  source_.SetApps({App()});
  http_.SetHandler([](const HttpRequest&) {
    return FakeHttpClient::Json(
        200, R"({"access_token":"at-2","scope":"profile read:exchange"})");
  });
  absl::StatusOr<Token> token = FetchSync({"exchange", {}});
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(token->scopes, ElementsAre("profile", "read:exchange"));
}

TEST_F(OAuthTokenSourceTest, ClientSecretBasic) {
  AppConfig app = App();
  app.client_auth = ClientAuthMethod::kClientSecretBasic;
  source_.SetApps({app});
  ASSERT_THAT(FetchSync({"exchange", {}}), IsOk());
  std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body, "grant_type=client_credentials");
  const std::string* auth = FindHeader(requests[0].headers, "Authorization");
  ASSERT_NE(auth, nullptr);
  // Form-encoded before Base64 (RFC 6749 2.3.1).
  EXPECT_EQ(*auth, "Basic " + absl::Base64Escape("my+id:s3cr3t%26x"));
}

TEST_F(OAuthTokenSourceTest, SecretFileIsReadAtEveryFetch) {
  const std::string path =
      std::string(::testing::TempDir()) + "/oauth_token_source_secret";
  std::ofstream(path) << "first\n";
  AppConfig app = App();
  app.client_secret = SecretRef{};
  app.client_secret.file = path;
  source_.SetApps({app});
  ASSERT_THAT(FetchSync({"exchange", {}}), IsOk());
  std::ofstream(path) << "second\n";
  ASSERT_THAT(FetchSync({"exchange", {}}), IsOk());
  std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[0].body, HasSubstr("client_secret=first"));
  EXPECT_THAT(requests[1].body, HasSubstr("client_secret=second"));

  std::remove(path.c_str());
  absl::StatusOr<Token> token = FetchSync({"exchange", {}});
  EXPECT_THAT(token,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(path)));
  EXPECT_THAT(std::string(token.status().message()), Not(HasSubstr("second")));
  EXPECT_EQ(http_.requests().size(), 2u);
}

TEST_F(OAuthTokenSourceTest, MissingEnvSecretNamesVariable) {
  AppConfig app = App();
  app.client_id = SecretRef{};
  app.client_id.env = "TB_TEST_SURELY_UNSET_CLIENT_ID";
  source_.SetApps({app});
  EXPECT_THAT(FetchSync({"exchange", {}}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("TB_TEST_SURELY_UNSET_CLIENT_ID")));
}

TEST_F(OAuthTokenSourceTest, ServerErrorsAreMapped) {
  source_.SetApps({App()});
  http_.SetHandler([](const HttpRequest&) {
    return FakeHttpClient::Json(401, R"({"error":"invalid_client"})");
  });
  absl::StatusOr<Token> token = FetchSync({"exchange", {}});
  EXPECT_THAT(token, StatusIs(absl::StatusCode::kFailedPrecondition,
                              HasSubstr("invalid_client")));
  EXPECT_THAT(std::string(token.status().message()), Not(HasSubstr("s3cr3t")));

  http_.SetHandler([](const HttpRequest&) {
    HttpResponse response;
    response.status = 429;
    response.headers = {{"Retry-After", "3"}};
    return response;
  });
  token = FetchSync({"exchange", {}});
  EXPECT_THAT(token, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(GetRetryAfter(token.status()), absl::Seconds(3));
}

TEST_F(OAuthTokenSourceTest, TransportErrorsAreMapped) {
  source_.SetApps({App()});
  http_.SetHandler([](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
    return absl::DeadlineExceededError("slow");
  });
  EXPECT_THAT(FetchSync({"exchange", {}}),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  http_.SetHandler([](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
    return absl::ResourceExhaustedError("too big");
  });
  EXPECT_THAT(FetchSync({"exchange", {}}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("exchange")));
}

TEST_F(OAuthTokenSourceTest, UserAppsNeedAGrantStore) {
  AppConfig app = App();
  app.grant_type = GrantType::kAuthorizationCode;
  source_.SetApps({app});
  EXPECT_THAT(FetchSync({"exchange", {}, "user-1"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no grant_store is configured")));
  EXPECT_TRUE(http_.requests().empty());
}

TEST_F(OAuthTokenSourceTest, SetAppsReplacesApps) {
  source_.SetApps({App("a")});
  EXPECT_THAT(FetchSync({"a", {}}), IsOk());
  source_.SetApps({App("b")});
  EXPECT_THAT(FetchSync({"a", {}}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(FetchSync({"b", {}}), IsOk());
}

TEST_F(OAuthTokenSourceTest, AsyncCompletionUsesClockAtAnswer) {
  source_.SetApps({App()});
  http_.SetHandler(nullptr);
  std::optional<absl::StatusOr<Token>> result;
  source_.Fetch({"exchange", {}}, [&](absl::StatusOr<Token> token) {
    result.emplace(std::move(token));
  });
  EXPECT_FALSE(result.has_value());
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(http_.CompleteNext(FakeHttpClient::Json(200, kTokenJson)));
  ASSERT_TRUE(result.has_value());
  ASSERT_THAT(*result, IsOk());
  EXPECT_EQ((*result)->issued_at, clock_.Now());
}

TEST_F(OAuthTokenSourceTest, RevokePostsTokenAndCredentials) {
  source_.SetApps({App()});
  std::optional<absl::Status> result;
  source_.Revoke("exchange", "at-1",
                 [&](absl::Status status) { result = status; });
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(*result, IsOk());
  std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].url,
            "https://anypoint.example/accounts/api/v2/oauth2/revoke");
  EXPECT_EQ(requests[0].body,
            "token=at-1&client_id=my+id&client_secret=s3cr3t%26x");

  http_.SetHandler([](const HttpRequest&) {
    return FakeHttpClient::Json(401, R"({"error":"invalid_client"})");
  });
  source_.Revoke("exchange", "at-1",
                 [&](absl::Status status) { result = status; });
  EXPECT_THAT(*result, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("revoke")));
  source_.Revoke("nope", "at-1", [&](absl::Status status) { result = status; });
  EXPECT_THAT(*result, StatusIs(absl::StatusCode::kNotFound));
}

// issue 10, defect 10: an already-expired token is refused, not cached.
TEST_F(OAuthTokenSourceTest, LifetimeUnderTheFloorFailsThePrecondition) {
  source_.SetApps({App()});
  for (const char* expires_in : {"0.001", "1e-300", "0", "-1", "9"}) {
    http_.SetHandler([expires_in](const HttpRequest&) {
      return FakeHttpClient::Json(
          200, absl::StrCat(R"({"access_token":"at-short","expires_in":)",
                            expires_in, "}"));
    });
    EXPECT_THAT(FetchSync({"exchange", {}}),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("minimum of 10s"),
                               HasSubstr("cache.min_lifetime"),
                               Not(HasSubstr("at-short")))))
        << expires_in;
  }
}

TEST(OAuthTokenSourceOptionsTest, FloorComesFromTheOptions) {
  FakeClock clock;
  FakeHttpClient http([](const HttpRequest&) {
    return FakeHttpClient::Json(200,
                                R"({"access_token":"at-2","expires_in":3})");
  });
  OAuthTokenSourceOptions options;
  EXPECT_EQ(options.min_lifetime, absl::Seconds(10));  // The default.
  options.min_lifetime = absl::Seconds(2);
  OAuthTokenSource source(http, clock, options);
  source.SetApps({App()});
  std::optional<absl::StatusOr<Token>> result;
  source.Fetch({"exchange", {}}, [&](absl::StatusOr<Token> token) {
    result.emplace(std::move(token));
  });
  ASSERT_TRUE(result.has_value());
  ASSERT_THAT(*result, IsOk());
  EXPECT_EQ((*result)->expires_at, clock.Now() + absl::Seconds(3));
}

}  // namespace
}  // namespace tokenbroker
