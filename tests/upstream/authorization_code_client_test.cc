#include "service/upstream/authorization_code_client.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_http_client.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::FakeHttpClient;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kCode[] = "the-code-XYZ";
constexpr char kTokens[] =
    R"({"access_token":"at-1","token_type":"Bearer","expires_in":3600,)"
    R"("refresh_token":"rt-1","scope":"view:environment offline_access"})";

AppConfig App() {
  AppConfig app;
  app.name = "environments";
  app.control_plane = "custom";
  app.base_url = "https://as.example";
  app.grant_type = GrantType::kAuthorizationCode;
  app.client_id.value = "client 1";
  app.client_secret.value = "s3cr3t&x";
  app.scopes = {"view:environment"};
  return app;
}

class AuthorizationCodeClientTest : public ::testing::Test {
 protected:
  AuthorizationCodeClientTest()
      : client_(http_, clock_, [] {
          AuthorizationCodeClientOptions options;
          options.request_timeout = absl::Seconds(7);
          return options;
        }()) {}

  void Answer(int status, std::string body) {
    http_.SetHandler([status, body](const HttpRequest&) {
      return FakeHttpClient::Json(status, body);
    });
  }

  absl::StatusOr<UserTokenResponse> Exchange(const AppConfig& app,
                                             std::string verifier = "v-1") {
    std::optional<absl::StatusOr<UserTokenResponse>> result;
    client_.ExchangeCode(app, kCode, "https://broker.example/oauth/callback",
                         std::move(verifier),
                         [&](absl::StatusOr<UserTokenResponse> answer) {
                           result.emplace(std::move(answer));
                         });
    EXPECT_TRUE(result.has_value()) << "the fake answers inline";
    if (!result.has_value()) return absl::InternalError("no answer");
    return std::move(*result);
  }

  absl::StatusOr<UserInfo> Userinfo(const std::string& access_token = "at-1") {
    std::optional<absl::StatusOr<UserInfo>> result;
    client_.FetchUserinfo(App(), access_token,
                          [&](absl::StatusOr<UserInfo> info) {
                            result.emplace(std::move(info));
                          });
    EXPECT_TRUE(result.has_value());
    return result.value_or(absl::InternalError("no answer"));
  }

  absl::Status Revoke(const AppConfig& app) {
    std::optional<absl::Status> result;
    client_.RevokeRefreshToken(app, "rt-secret",
                               [&](absl::Status status) { result = status; });
    EXPECT_TRUE(result.has_value());
    return result.value_or(absl::InternalError("no answer"));
  }

  FakeClock clock_;
  FakeHttpClient http_;
  AuthorizationCodeClient client_;
};

TEST_F(AuthorizationCodeClientTest, ExchangePostsTheCodeWithVerifier) {
  Answer(200, kTokens);
  absl::StatusOr<UserTokenResponse> tokens = Exchange(App());
  ASSERT_THAT(tokens, IsOk());
  EXPECT_EQ(tokens->token.access_token, "at-1");
  EXPECT_EQ(tokens->refresh_token, "rt-1");
  EXPECT_TRUE(tokens->scope_present);
  EXPECT_THAT(tokens->token.scopes,
              ElementsAre("offline_access", "view:environment"));
  EXPECT_EQ(tokens->token.expires_at, clock_.Now() + absl::Hours(1));

  ASSERT_EQ(http_.requests().size(), 1u);
  const HttpRequest request = http_.requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://as.example/accounts/api/v2/oauth2/token");
  EXPECT_EQ(request.timeout, absl::Seconds(7));
  EXPECT_EQ(request.body,
            "grant_type=authorization_code&code=the-code-XYZ&redirect_uri="
            "https%3A%2F%2Fbroker.example%2Foauth%2Fcallback&code_verifier="
            "v-1&client_id=client+1&client_secret=s3cr3t%26x");
  EXPECT_THAT(
      request.headers,
      Contains(Pair("Content-Type", "application/x-www-form-urlencoded")));
}

TEST_F(AuthorizationCodeClientTest, NoVerifierWithoutPkceAndBasicAuth) {
  Answer(200, kTokens);
  AppConfig app = App();
  app.client_auth = ClientAuthMethod::kClientSecretBasic;
  ASSERT_THAT(Exchange(app, /*verifier=*/""), IsOk());
  const HttpRequest request = http_.requests()[0];
  EXPECT_EQ(request.body,
            "grant_type=authorization_code&code=the-code-XYZ&redirect_uri="
            "https%3A%2F%2Fbroker.example%2Foauth%2Fcallback");
  std::string basic;
  absl::Base64Escape("client+1:s3cr3t%26x", &basic);
  EXPECT_THAT(request.headers,
              Contains(Pair("Authorization", "Basic " + basic)));
}

TEST_F(AuthorizationCodeClientTest, AnswerWithoutRefreshTokenIsNotAnError) {
  Answer(200, R"({"access_token":"at-1","token_type":"bearer"})");
  absl::StatusOr<UserTokenResponse> tokens = Exchange(App());
  ASSERT_THAT(tokens, IsOk());
  EXPECT_TRUE(tokens->refresh_token.empty());
  EXPECT_FALSE(tokens->scope_present);
}

TEST_F(AuthorizationCodeClientTest, RefusedCodeNamesTheErrorNotTheCode) {
  // A server that quotes what it refused in error_description.
  Answer(400, R"({"error":"invalid_grant","error_description":"code )"
              R"(the-code-XYZ is expired"})");
  absl::StatusOr<UserTokenResponse> tokens = Exchange(App());
  EXPECT_THAT(tokens,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("invalid_grant"), HasSubstr("HTTP 400"),
                             Not(HasSubstr("the-code-XYZ")))));
}

TEST_F(AuthorizationCodeClientTest, ServerErrorsAreUnavailable) {
  Answer(503, "");
  EXPECT_THAT(Exchange(App()), StatusIs(absl::StatusCode::kUnavailable));
  http_.SetHandler([](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
    return absl::DeadlineExceededError("timed out");
  });
  EXPECT_THAT(Exchange(App()), StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(AuthorizationCodeClientTest, UnstorableRefreshTokenIsRefused) {
  Answer(200, R"({"access_token":"at-1","refresh_token":"rt\n-secret-bytes"})");
  EXPECT_THAT(Exchange(App()), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        AllOf(HasSubstr("printable ASCII"),
                                              Not(HasSubstr("secret-bytes")))));
}

TEST_F(AuthorizationCodeClientTest, UnresolvableSecretFailsWithoutRequest) {
  AppConfig app = App();
  app.client_secret = SecretRef{};
  app.client_secret.env = "TB_TEST_NO_SUCH_VARIABLE_AC";
  EXPECT_THAT(Exchange(app), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("client secret")));
  EXPECT_TRUE(http_.requests().empty());
}

TEST_F(AuthorizationCodeClientTest, UserinfoPrefersPreferredUsername) {
  Answer(200, R"({"sub":"u-1","preferred_username":"ada","username":"x",)"
              R"("email":"ada@example.com"})");
  absl::StatusOr<UserInfo> info = Userinfo();
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->sub, "u-1");
  EXPECT_EQ(info->username, "ada");
  const HttpRequest request = http_.requests()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url, "https://as.example/accounts/api/v2/oauth2/userinfo");
  EXPECT_THAT(request.headers, Contains(Pair("Authorization", "Bearer at-1")));
  EXPECT_EQ(request.timeout, absl::Seconds(7));
}

TEST_F(AuthorizationCodeClientTest, UserinfoFallsBackToUsernameEmailSub) {
  Answer(200, R"({"sub":"u-1","username":"anypoint-user"})");
  EXPECT_EQ(Userinfo()->username, "anypoint-user");
  Answer(200, R"({"sub":"u-1","email":"ada@example.com"})");
  EXPECT_EQ(Userinfo()->username, "ada@example.com");
  Answer(200, R"({"sub":"u-1","preferred_username":"bad\u0007name"})");
  EXPECT_EQ(Userinfo()->username, "u-1");
  Answer(200, R"({"sub":12345})");
  EXPECT_EQ(Userinfo()->sub, "12345");
}

TEST_F(AuthorizationCodeClientTest, UserinfoWithoutUsableSubIsAnError) {
  Answer(200, R"({"preferred_username":"ada"})");
  EXPECT_THAT(Userinfo(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no sub")));
  Answer(200, "eyJhbGciOi.not-json.x");
  EXPECT_THAT(Userinfo(), StatusIs(absl::StatusCode::kUnavailable));
  Answer(200, R"({"sub":"u\u0000-1"})");
  EXPECT_THAT(Userinfo(), StatusIs(absl::StatusCode::kFailedPrecondition));
  Answer(200, R"({"sub":")" + std::string(300, 'a') + R"("})");
  EXPECT_THAT(Userinfo(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(AuthorizationCodeClientTest, UserinfoRefusedTokenDoesNotQuoteIt) {
  Answer(401, R"({"error":"invalid_token","error_description":"at-1"})");
  EXPECT_THAT(Userinfo(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   AllOf(HasSubstr("invalid_token"),
                                         Not(HasSubstr("at-1")))));
}

TEST_F(AuthorizationCodeClientTest, RevokeSendsTheHint) {
  Answer(200, "");
  EXPECT_THAT(Revoke(App()), IsOk());
  const HttpRequest request = http_.requests()[0];
  EXPECT_EQ(request.url, "https://as.example/accounts/api/v2/oauth2/revoke");
  EXPECT_EQ(request.body,
            "token=rt-secret&token_type_hint=refresh_token&client_id=client+1&"
            "client_secret=s3cr3t%26x");
  Answer(400, R"({"error":"unsupported_token_type","error_description":)"
              R"("rt-secret"})");
  EXPECT_THAT(Revoke(App()), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      AllOf(HasSubstr("unsupported_token_type"),
                                            Not(HasSubstr("rt-secret")))));
}

}  // namespace
}  // namespace tokenbroker
