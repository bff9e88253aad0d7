// The refresh_token grant of user apps in OAuthTokenSource: what is sent,
// the rotation rule (stored before served), invalid_grant, store failures.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/memory_grant_store.h"
#include "service/upstream/oauth_token_source.h"
#include "service/users/user_grants.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_http_client.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::FakeHttpClient;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kOldRefresh[] = "rt-old-0123456789";
constexpr char kNewRefresh[] = "rt-new-9876543210";

AppConfig UserApp() {
  AppConfig app;
  app.name = "viewer";
  app.control_plane = "custom";
  app.base_url = "https://anypoint.example";
  app.grant_type = GrantType::kAuthorizationCode;
  app.client_id.value = "viewer-id";
  app.client_secret.value = "viewer-secret";
  app.scopes = {"view:environment"};
  return app;
}

class UserTokenSourceTest : public ::testing::Test {
 protected:
  UserTokenSourceTest() {
    source_.SetApps({UserApp()});
    UserGrant grant;
    grant.app = "viewer";
    grant.user_id = "u-1";
    grant.username = "alice";
    grant.refresh_token = kOldRefresh;
    grant.scopes = {"offline_access", "view:environment"};
    grant.connected_at = clock_.Now();
    EXPECT_THAT(grants_.Connect(std::move(grant)), IsOk());
  }

  // Fetches the token of u-1; the answer may come on the writer thread.
  absl::StatusOr<Token> Fetch(std::function<void()> on_answer = nullptr) {
    absl::Notification answered;
    std::optional<absl::StatusOr<Token>> result;
    source_.Fetch({"viewer", {}, "u-1"}, [&](absl::StatusOr<Token> token) {
      if (on_answer) on_answer();
      result.emplace(std::move(token));
      answered.Notify();
    });
    EXPECT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return result.value_or(absl::InternalError("no answer"));
  }

  void Answer(int status, std::string json) {
    http_.SetHandler([status, json](const HttpRequest&) {
      return FakeHttpClient::Json(status, json);
    });
  }

  std::string StoredRefreshToken() {
    std::optional<UserGrant> grant = store_.Get("viewer", "u-1");
    return grant.has_value() ? grant->refresh_token : "";
  }

  FakeClock clock_;
  FakeHttpClient http_{[](const HttpRequest&) {
    return FakeHttpClient::Json(
        200, R"({"access_token":"at-1","token_type":"bearer"})");
  }};
  MemoryGrantStore store_;
  UserGrants grants_{store_, clock_};
  OAuthTokenSource source_{http_, clock_, OAuthTokenSourceOptions(), &grants_};
};

TEST_F(UserTokenSourceTest, RefreshesWithTheUsersRefreshTokenAndNoScope) {
  absl::StatusOr<Token> token = Fetch();
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(token->access_token, "at-1");
  // No `scope` in the answer: the grant's scopes (RFC 6749 5.1).
  EXPECT_THAT(token->scopes, ElementsAre("offline_access", "view:environment"));
  ASSERT_EQ(http_.requests().size(), 1u);
  const HttpRequest sent = http_.requests()[0];
  EXPECT_EQ(sent.url, "https://anypoint.example/accounts/api/v2/oauth2/token");
  EXPECT_THAT(sent.body, HasSubstr("grant_type=refresh_token"));
  EXPECT_THAT(sent.body,
              HasSubstr(std::string("refresh_token=") + kOldRefresh));
  EXPECT_THAT(sent.body, Not(HasSubstr("scope=")));
  // Not rotated: the stored grant keeps its refresh token.
  EXPECT_EQ(StoredRefreshToken(), kOldRefresh);
}

TEST_F(UserTokenSourceTest, RotatedRefreshTokenIsStoredBeforeTheTokenIsServed) {
  Answer(200, std::string(R"({"access_token":"at-2","token_type":"bearer",)"
                          R"("refresh_token":")") +
                  kNewRefresh + R"(","scope":"view:environment"})");
  std::string stored_when_served;
  absl::StatusOr<Token> token =
      Fetch([&] { stored_when_served = StoredRefreshToken(); });
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(stored_when_served, kNewRefresh);
  EXPECT_THAT(token->scopes, ElementsAre("view:environment"));
  // The next refresh uses the new one.
  Answer(200, R"({"access_token":"at-3","token_type":"bearer"})");
  ASSERT_THAT(Fetch(), IsOk());
  EXPECT_THAT(http_.requests().back().body,
              HasSubstr(std::string("refresh_token=") + kNewRefresh));
}

TEST_F(UserTokenSourceTest, StoreFailureWithholdsTheTokenButKeepsTheNewGrant) {
  Answer(200, std::string(R"({"access_token":"at-2","token_type":"bearer",)"
                          R"("refresh_token":")") +
                  kNewRefresh + R"("})");
  store_.SetFailure(absl::UnavailableError("disk full"));
  absl::StatusOr<Token> token = Fetch();
  EXPECT_THAT(token, StatusIs(absl::StatusCode::kUnavailable,
                              HasSubstr("could not be stored")));
  EXPECT_THAT(token.status().message(), Not(HasSubstr(kNewRefresh)));
  EXPECT_EQ(StoredRefreshToken(), kOldRefresh);
  // The store works again: the refresh uses the new refresh token (the old
  // one may be dead), and a rotation stores it.
  store_.SetFailure(absl::OkStatus());
  Answer(200, R"({"access_token":"at-3","token_type":"bearer",)"
              R"("refresh_token":"rt-third"})");
  ASSERT_THAT(Fetch(), IsOk());
  EXPECT_THAT(http_.requests().back().body,
              HasSubstr(std::string("refresh_token=") + kNewRefresh));
  EXPECT_EQ(StoredRefreshToken(), "rt-third");
}

TEST_F(UserTokenSourceTest, InvalidGrantMarksTheGrantAndStopsRefreshing) {
  Answer(400, R"({"error":"invalid_grant","error_description":"revoked"})");
  absl::StatusOr<Token> token = Fetch();
  EXPECT_THAT(token, StatusIs(absl::StatusCode::kFailedPrecondition,
                              HasSubstr("tokenbrokerctl connect viewer")));
  EXPECT_THAT(token.status().message(), Not(HasSubstr(kOldRefresh)));
  grants_.Drain();
  std::optional<UserGrantSummary> grant = grants_.Find("viewer", "u-1");
  ASSERT_TRUE(grant.has_value());
  EXPECT_TRUE(grant->needs_reauthorization);
  std::optional<UserGrant> stored = store_.Get("viewer", "u-1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(stored->needs_reauthorization);
  // No more requests with a refused refresh token.
  const size_t sent = http_.requests().size();
  EXPECT_THAT(Fetch(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("needs re-authorization")));
  EXPECT_EQ(http_.requests().size(), sent);
}

TEST_F(UserTokenSourceTest, OtherErrorsDoNotMarkTheGrant) {
  Answer(401, R"({"error":"invalid_client"})");
  EXPECT_THAT(Fetch(), StatusIs(absl::StatusCode::kFailedPrecondition));
  Answer(503, "busy");
  EXPECT_THAT(Fetch(), StatusIs(absl::StatusCode::kUnavailable));
  grants_.Drain();
  EXPECT_FALSE(grants_.Find("viewer", "u-1")->needs_reauthorization);
}

TEST_F(UserTokenSourceTest, UnknownUserIsFailedPreconditionWithoutRequest) {
  std::optional<absl::StatusOr<Token>> result;
  source_.Fetch({"viewer", {}, "u-2"},
                [&](absl::StatusOr<Token> token) { result.emplace(token); });
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(*result, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("connect")));
  EXPECT_TRUE(http_.requests().empty());
}

TEST_F(UserTokenSourceTest, ReconnectDuringARefreshWins) {
  // The grant is replaced while the refresh is on the wire: the rotated
  // refresh token of the old grant must not overwrite the new grant.
  http_.SetHandler([this](const HttpRequest&) {
    UserGrant fresh;
    fresh.app = "viewer";
    fresh.user_id = "u-1";
    fresh.username = "alice";
    fresh.refresh_token = "rt-reconnected";
    EXPECT_THAT(grants_.Connect(std::move(fresh)), IsOk());
    return FakeHttpClient::Json(
        200, std::string(R"({"access_token":"at-2","refresh_token":")") +
                 kNewRefresh + R"("})");
  });
  EXPECT_THAT(Fetch(), IsOk());
  grants_.Drain();
  EXPECT_EQ(StoredRefreshToken(), "rt-reconnected");
}

}  // namespace
}  // namespace tokenbroker
