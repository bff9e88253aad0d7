// The broker's OAuth pages against the in-process emulator, walked by the
// scripted browser: Anypoint's sign-in and consent, then the callback.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/auth/audit.h"
#include "service/common/clock.h"
#include "service/http/admin_server.h"
#include "service/http/oauth_flow.h"
#include "service/store/memory_grant_store.h"
#include "service/upstream/client_auth.h"
#include "service/upstream/curl_http_client.h"
#include "service/users/user_grants.h"
#include "tests/testing/scripted_browser.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::tokenbroker::testing::BrowserResponse;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::ScriptedBrowser;

constexpr char kClientId[] = "env-viewer-client";
constexpr char kClientSecret[] = "env-viewer-secret";

emulator::Fixture MakeFixture() {
  emulator::Fixture fixture;
  fixture.organizations = {{"org-acme", "Acme Corp", {}},
                           {"org-globex", "Globex Inc", {}}};
  emulator::AppFixture app;
  app.client_id = kClientId;
  app.client_secret = kClientSecret;
  app.name = "Environment Viewer";
  app.org_id = "org-acme";
  app.grant_types = {"authorization_code", "refresh_token"};
  app.scopes = {{"view:environment", "org-acme", ""}};
  app.audience = emulator::Audience::kOrgMembers;
  fixture.apps = {app};
  fixture.users = {
      {"u-alice", "alice.acme", "org-acme", "alice-pw", {"org-acme"}},
      {"u-bob", "bob.globex", "org-globex", "bob-pw", {"org-globex"}}};
  return fixture;
}

class OAuthEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(emulator_.Start(emulator::Options{}), IsOk());
    absl::StatusOr<std::unique_ptr<CurlHttpClient>> http =
        CurlHttpClient::Create(CurlHttpClientOptions{});
    ASSERT_THAT(http, IsOk());
    http_ = *std::move(http);

    OAuthFlowOptions options;
    options.oauth.request_timeout = absl::Seconds(20);
    flow_ = std::make_unique<OAuthFlow>(
        options, *http_, audit_, clock_,
        [this](UserGrant grant) { return grants_.Connect(std::move(grant)); });
    AppConfig app;
    app.name = "env-viewer";
    app.control_plane = "custom";
    app.base_url = emulator_.base_url();
    app.grant_type = GrantType::kAuthorizationCode;
    app.client_id.value = kClientId;
    app.client_secret.value = kClientSecret;
    app.scopes = {"view:environment"};
    app_ = app;
    flow_->SetApps({app});

    AdminHttpHandlers handlers;
    handlers.oauth = flow_.get();
    absl::StatusOr<std::unique_ptr<AdminHttpServer>> server =
        AdminHttpServer::Start("127.0.0.1:0", std::move(handlers),
                               AdminHttpRole::kOAuth);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    // The callback's port is known only now: register it, as an operator
    // registers the broker's redirect URI in Access Management.
    flow_->SetListenerUrl(server_->url());
    ASSERT_THAT(emulator_.AddRedirectUri(
                    kClientId, absl::StrCat(server_->url(), "/oauth/callback")),
                IsOk());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
    http_.reset();  // Completes what is in flight before the flow goes.
  }

  std::string Link() {
    // MemoryPendingFlows answers inline.
    absl::StatusOr<StartLink> link =
        absl::FailedPreconditionError("no answer from CreateStartLink");
    flow_->CreateStartLink(
        "env-viewer", "ops-admin",
        [&](absl::StatusOr<StartLink> answer) { link = std::move(answer); });
    EXPECT_THAT(link, IsOk());
    return link.ok() ? link->url : "";
  }

  bool IsCallback(const BrowserResponse& page) {
    return absl::StartsWith(page.url,
                            absl::StrCat(server_->url(), "/oauth/callback"));
  }

  int64_t CodeExchanges() {
    return emulator_.GetCounters()
        .token_requests_by_grant_type["authorization_code"];
  }

  SystemClock clock_;
  emulator::Emulator emulator_{MakeFixture()};
  std::unique_ptr<CurlHttpClient> http_;
  NullAuditSink audit_;
  MemoryGrantStore store_;
  UserGrants grants_{store_, clock_};
  AppConfig app_;
  std::unique_ptr<OAuthFlow> flow_;
  std::unique_ptr<AdminHttpServer> server_;
};

TEST_F(OAuthEmulatorTest, ApproveConnectsTheUserWithAWorkingRefreshToken) {
  ScriptedBrowser browser;
  absl::StatusOr<BrowserResponse> page =
      browser.SignInAndConsent(Link(), "alice.acme", "alice-pw", true);
  ASSERT_THAT(page, IsOk());
  ASSERT_TRUE(IsCallback(*page)) << page->url;
  EXPECT_EQ(page->status, 200) << page->body;
  EXPECT_THAT(page->body, AllOf(HasSubstr("Connected: env-viewer"),
                                HasSubstr("signed in as alice.acme"),
                                HasSubstr("<li>view:environment</li>")));
  EXPECT_EQ(page->headers.find("Cache-Control")->second, "no-store");
  EXPECT_EQ(browser.CookieValue(server_->url().substr(7), "tb_oauth"), "")
      << "the callback clears the binding cookie";

  std::optional<UserGrant> grant = store_.Get("env-viewer", "u-alice");
  ASSERT_TRUE(grant.has_value());
  EXPECT_EQ(grant->username, "alice.acme");
  EXPECT_THAT(grant->scopes, ::testing::Contains("view:environment"));
  EXPECT_FALSE(grant->refresh_token.empty());
  EXPECT_THAT(page->body, Not(HasSubstr(grant->refresh_token)));
  ASSERT_THAT(emulator_.ListGrants(), SizeIs(1));
  EXPECT_EQ(emulator_.ListGrants()[0].username, "alice.acme");

  // The stored refresh token is the real thing: the server honours it.
  absl::StatusOr<HttpRequest> refresh =
      BuildClientAuthFormPost(app_, app_.token_path,
                              {{"grant_type", "refresh_token"},
                               {"refresh_token", grant->refresh_token}},
                              absl::Seconds(10), "test");
  ASSERT_THAT(refresh, IsOk());
  absl::StatusOr<HttpResponse> answer = http_->SendAndWait(*std::move(refresh));
  ASSERT_THAT(answer, IsOk());
  EXPECT_EQ(answer->status, 200) << answer->body;
}

TEST_F(OAuthEmulatorTest, DenyChangesNothing) {
  ScriptedBrowser browser;
  absl::StatusOr<BrowserResponse> page =
      browser.SignInAndConsent(Link(), "alice.acme", "alice-pw", false);
  ASSERT_THAT(page, IsOk());
  ASSERT_TRUE(IsCallback(*page)) << page->url;
  EXPECT_EQ(page->status, 403);
  EXPECT_THAT(page->body, HasSubstr("You declined access for env-viewer"));
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(CodeExchanges(), 0);
}

TEST_F(OAuthEmulatorTest, ReplayedCallbackIsRefused) {
  ScriptedBrowser browser;
  absl::StatusOr<BrowserResponse> page =
      browser.SignInAndConsent(Link(), "alice.acme", "alice-pw", true);
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->status, 200) << page->body;
  absl::StatusOr<BrowserResponse> replay = browser.Get(page->url);
  ASSERT_THAT(replay, IsOk());
  EXPECT_EQ(replay->status, 403);
  EXPECT_THAT(replay->body, HasSubstr("already completed"));
  EXPECT_EQ(CodeExchanges(), 1) << "the code went to the server once";
  EXPECT_EQ(store_.put_count(), 1);
}

TEST_F(OAuthEmulatorTest, SignInFinishedInAnotherBrowserIsRefused) {
  // Browser A opens the link (and gets the cookie); browser B, without it,
  // signs in on the authorize page A was sent to: the login-CSRF pattern.
  ScriptedBrowser a;
  absl::StatusOr<BrowserResponse> sign_in = a.Get(Link());
  ASSERT_THAT(sign_in, IsOk());
  ASSERT_TRUE(absl::StartsWith(sign_in->url, emulator_.base_url()));
  ScriptedBrowser b;
  absl::StatusOr<BrowserResponse> page =
      b.SignInAndConsent(sign_in->url, "alice.acme", "alice-pw", true);
  ASSERT_THAT(page, IsOk());
  ASSERT_TRUE(IsCallback(*page)) << page->url;
  EXPECT_EQ(page->status, 403);
  EXPECT_THAT(page->body, HasSubstr("another browser"));
  EXPECT_EQ(CodeExchanges(), 0);
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(OAuthEmulatorTest, UserOutsideAMembersOnlyAppsOrganization) {
  ScriptedBrowser browser;
  absl::StatusOr<BrowserResponse> page =
      browser.SignInAndConsent(Link(), "bob.globex", "bob-pw", true);
  ASSERT_THAT(page, IsOk());
  ASSERT_TRUE(IsCallback(*page)) << page->url;
  EXPECT_EQ(page->status, 403);
  EXPECT_THAT(page->body, HasSubstr("members of its organization"));
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_THAT(emulator_.ListGrants(), IsEmpty());
}

TEST_F(OAuthEmulatorTest, LinkWorksOnce) {
  const std::string link = Link();
  ScriptedBrowser browser;
  ASSERT_THAT(browser.Get(link), IsOk());
  ScriptedBrowser other;
  absl::StatusOr<BrowserResponse> again = other.Get(link);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->status, 403);
  EXPECT_THAT(again->chain, ElementsAre(link)) << "not sent anywhere";
}

}  // namespace
}  // namespace tokenbroker
