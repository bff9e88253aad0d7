#include "service/http/oauth_flow.h"

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/path_segments.h"
#include "service/http/pending_flows.h"
#include "service/http/redis_pending_flows.h"
#include "service/redis/redis_client.h"
#include "service/store/sealed_box.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_http_client.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;
using ::tokenbroker::testing::FakeClock;
using ::tokenbroker::testing::FakeHttpClient;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::StatusIs;

constexpr char kBase[] = "https://as.example";
constexpr char kListener[] = "http://127.0.0.1:8080";
constexpr char kCode[] = "code-SECRET-4711";
constexpr char kAccessToken[] = "at-SECRET-0815";
constexpr char kRefreshToken[] = "rt-SECRET-1234";
constexpr char kClientSecret[] = "client-SECRET-42";

std::string TokenAnswer(absl::string_view scope =
                            "view:environment "
                            "offline_access",
                        bool refresh = true) {
  std::string json =
      absl::StrCat(R"({"access_token":")", kAccessToken,
                   R"(","token_type":"Bearer","expires_in":3600)");
  if (refresh)
    absl::StrAppend(&json, R"(,"refresh_token":")", kRefreshToken, "\"");
  if (!scope.empty()) absl::StrAppend(&json, R"(,"scope":")", scope, "\"");
  return json + "}";
}

AppConfig UserApp() {
  AppConfig app;
  app.name = "environments";
  app.control_plane = "custom";
  app.base_url = kBase;
  app.grant_type = GrantType::kAuthorizationCode;
  app.client_id.value = "client-1";
  app.client_secret.value = kClientSecret;
  app.scopes = {"view:environment"};
  app.authorize_params = {{"prompt", "consent"}};
  return app;
}

// Decodes a query string as the pages do (no repeats expected).
std::map<std::string, std::string> QueryOf(absl::string_view url) {
  std::map<std::string, std::string> params;
  size_t question = url.find('?');
  if (question == absl::string_view::npos) return params;
  for (absl::string_view pair :
       absl::StrSplit(url.substr(question + 1), '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> raw =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    std::replace(raw.second.begin(), raw.second.end(), '+', ' ');
    std::string value;
    EXPECT_TRUE(PercentDecodeOnce(raw.second, &value));
    params[raw.first] = value;
  }
  return params;
}

std::vector<std::string> HeaderValues(const PageResponse& page,
                                      absl::string_view name) {
  std::vector<std::string> values;
  for (const auto& [key, value] : page.headers) {
    if (key == name) values.push_back(value);
  }
  return values;
}

class RecordingAuditSink final : public AuditSink {
 public:
  absl::Status Write(const AuditRecord& record) override {
    absl::MutexLock lock(&mu_);
    records_.push_back(record);
    return absl::OkStatus();
  }
  std::vector<AuditRecord> records() const {
    absl::MutexLock lock(&mu_);
    return records_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<AuditRecord> records_ ABSL_GUARDED_BY(mu_);
};

// A browser's view of one started sign-in.
struct Started {
  std::string ticket;
  std::string location;
  std::map<std::string, std::string> authorize;  // The authorize query.
  std::string cookie_name;
  std::string cookie;
  std::string set_cookie;
};

class OAuthFlowTest : public ::testing::Test {
 protected:
  OAuthFlowTest() { ::testing::internal::CaptureStderr(); }
  ~OAuthFlowTest() override {
    if (!stderr_read_) ::testing::internal::GetCapturedStderr();
  }

  void SetUp() override { MakeFlow(); }

  void MakeFlow(OAuthFlowOptions options = Options(),
                std::vector<AppConfig> apps = {UserApp()}) {
    flow_ = std::make_unique<OAuthFlow>(std::move(options), http_, audit_,
                                        clock_, [this](UserGrant grant) {
                                          absl::MutexLock lock(&mu_);
                                          if (!store_status_.ok())
                                            return store_status_;
                                          grants_.push_back(std::move(grant));
                                          return absl::OkStatus();
                                        });
    flow_->SetApps(apps);
    flow_->SetListenerUrl(kListener);
  }

  static OAuthFlowOptions Options() {
    OAuthFlowOptions options;
    options.oauth.state_ttl = absl::Minutes(10);
    options.oauth.start_link_ttl = absl::Minutes(15);
    options.oauth.request_timeout = absl::Seconds(30);
    return options;
  }

  // The authorization server: token, userinfo and revoke answers.
  void Serve(std::string token_answer, int token_status = 200,
             std::string userinfo = R"({"sub":"u-1","preferred_username":)"
                                    R"("ada","email":"ada@example.com"})",
             int userinfo_status = 200) {
    http_.SetHandler([=](const HttpRequest& request) {
      if (absl::EndsWith(request.url, "/token")) {
        return FakeHttpClient::Json(token_status, token_answer);
      }
      if (absl::EndsWith(request.url, "/userinfo")) {
        return FakeHttpClient::Json(userinfo_status, userinfo);
      }
      return FakeHttpClient::Json(200, "");
    });
  }

  PageResponse Get(absl::string_view path_and_query,
                   std::vector<std::string> cookies = {},
                   std::string method = "GET") {
    PageRequest request;
    request.method = std::move(method);
    size_t question = path_and_query.find('?');
    request.path = std::string(path_and_query.substr(0, question));
    if (question != absl::string_view::npos) {
      request.query = std::string(path_and_query.substr(question + 1));
    }
    request.cookie_headers = std::move(cookies);
    request.peer = "192.0.2.7";
    PageResponse page = flow_->Handle(request);
    pages_.push_back(page);
    return page;
  }

  // CreateStartLink()'s answer; the flows of these tests answer inline
  // (MemoryPendingFlows) or on the Redis client's thread.
  absl::StatusOr<StartLink> MakeLink(absl::string_view app) {
    absl::Notification answered;
    absl::StatusOr<StartLink> result;
    flow_->CreateStartLink(app, "ops-admin",
                           [&](absl::StatusOr<StartLink> link) {
                             result = std::move(link);
                             answered.Notify();
                           });
    answered.WaitForNotification();
    return result;
  }

  std::string Link(absl::string_view app = "environments") {
    absl::StatusOr<StartLink> link = MakeLink(app);
    EXPECT_THAT(link, IsOk());
    return link.ok() ? link->url : "";
  }

  Started Start() { return StartWith(Link()); }

  // Opens `link` (made by Link()) in the browser.
  Started StartWith(const std::string& link) {
    Started started;
    EXPECT_TRUE(absl::StartsWith(link, absl::StrCat(kListener,
                                                    "/oauth/start"
                                                    "?ticket=")));
    started.ticket = QueryOf(link)["ticket"];
    PageResponse page = Get(absl::StripPrefix(link, kListener));
    EXPECT_EQ(page.status, 302) << page.body;
    std::vector<std::string> location = HeaderValues(page, "Location");
    EXPECT_THAT(location, SizeIs(1));
    if (location.empty()) return started;
    started.location = location[0];
    started.authorize = QueryOf(started.location);
    std::vector<std::string> set_cookie = HeaderValues(page, "Set-Cookie");
    EXPECT_THAT(set_cookie, SizeIs(1));
    if (set_cookie.empty()) return started;
    started.set_cookie = set_cookie[0];
    std::pair<std::string, std::string> pair = absl::StrSplit(
        absl::string_view(set_cookie[0]).substr(0, set_cookie[0].find(';')),
        absl::MaxSplits('=', 1));
    started.cookie_name = pair.first;
    started.cookie = pair.second;
    return started;
  }

  static std::string CookieHeader(const Started& started) {
    return absl::StrCat(started.cookie_name, "=", started.cookie);
  }

  PageResponse Callback(const Started& started, absl::string_view extra = "",
                        bool with_cookie = true) {
    return Get(absl::StrCat("/oauth/callback?code=", kCode,
                            "&state=", started.authorize.at("state"), extra),
               with_cookie ? std::vector<std::string>{CookieHeader(started)}
                           : std::vector<std::string>{});
  }

  std::vector<UserGrant> grants() {
    absl::MutexLock lock(&mu_);
    return grants_;
  }

  std::vector<HttpRequest> RequestsTo(absl::string_view suffix) {
    std::vector<HttpRequest> matching;
    for (HttpRequest& request : http_.requests()) {
      if (absl::EndsWith(request.url, suffix)) {
        matching.push_back(std::move(request));
      }
    }
    return matching;
  }

  // The last callback audit record.
  AuditRecord LastCallbackRecord() {
    std::vector<AuditRecord> records = audit_.records();
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      if (it->rpc == "GET /oauth/callback") return *it;
    }
    ADD_FAILURE() << "no callback audit record";
    return AuditRecord{};
  }

  // No page, header but the start's own, audit record or log line holds a
  // ticket, state, cookie, code, token or secret.
  void ExpectNoSecretLeaked(const std::vector<Started>& flows) {
    std::vector<std::string> secrets = {kCode, kAccessToken, kRefreshToken,
                                        kClientSecret};
    for (const Started& started : flows) {
      for (const std::string& value :
           {started.ticket, started.cookie, started.authorize.at("state")}) {
        if (!value.empty()) secrets.push_back(value);
      }
    }
    std::string logs = ::testing::internal::GetCapturedStderr();
    stderr_read_ = true;
    std::string audit;
    for (const AuditRecord& record : audit_.records()) {
      audit += AuditRecordToJson(record) + "\n";
    }
    for (const std::string& secret : secrets) {
      EXPECT_THAT(logs, Not(HasSubstr(secret))) << "in the log";
      EXPECT_THAT(audit, Not(HasSubstr(secret))) << "in the audit records";
      for (const PageResponse& page : pages_) {
        EXPECT_THAT(page.body, Not(HasSubstr(secret))) << "in a page";
        if (page.status == 302) continue;  // The start's own redirect.
        for (const auto& [name, value] : page.headers) {
          EXPECT_THAT(value, Not(HasSubstr(secret))) << "in header " << name;
        }
      }
    }
  }

  FakeClock clock_;
  FakeHttpClient http_;
  RecordingAuditSink audit_;
  absl::Mutex mu_;
  std::vector<UserGrant> grants_ ABSL_GUARDED_BY(mu_);
  absl::Status store_status_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<OAuthFlow> flow_;
  std::vector<PageResponse> pages_;
  bool stderr_read_ = false;
};

TEST_F(OAuthFlowTest, StartRedirectsToAuthorizeWithPkceAndBindingCookie) {
  Started started = Start();
  EXPECT_TRUE(absl::StartsWith(
      started.location,
      "https://as.example/accounts/api/v2/oauth2/authorize?response_type="
      "code&client_id=client-1&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%"
      "2Foauth%2Fcallback&scope=view%3Aenvironment+offline_access&state="))
      << started.location;
  EXPECT_THAT(started.authorize.at("state"), SizeIs(43));
  EXPECT_THAT(started.authorize.at("code_challenge"), SizeIs(43));
  EXPECT_EQ(started.authorize.at("code_challenge_method"), "S256");
  EXPECT_EQ(started.authorize.at("prompt"), "consent");
  EXPECT_EQ(started.cookie_name, "tb_oauth");
  EXPECT_THAT(started.cookie, SizeIs(43));
  EXPECT_NE(started.cookie, started.authorize.at("state"));
  EXPECT_EQ(started.set_cookie,
            absl::StrCat("tb_oauth=", started.cookie,
                         "; Path=/oauth; Max-Age=600; HttpOnly; "
                         "SameSite=Lax"));
  AuditRecord record = audit_.records().back();
  EXPECT_EQ(record.event, "connect");
  EXPECT_EQ(record.rpc, "GET /oauth/start");
  EXPECT_EQ(record.caller, "ops-admin");
  EXPECT_EQ(record.app, "environments");
  EXPECT_EQ(record.decision, "allow");
  EXPECT_EQ(flow_->stats().starts, 1u);
}

TEST_F(OAuthFlowTest, HttpsPublicUrlGetsAHostPrefixedSecureCookie) {
  OAuthFlowOptions options = Options();
  options.oauth.public_url = "https://broker.example";
  MakeFlow(options);
  std::string link = Link();
  EXPECT_TRUE(
      absl::StartsWith(link, "https://broker.example/oauth/start?ticket="));
  PageResponse page = Get(absl::StripPrefix(link, "https://broker.example"));
  ASSERT_EQ(page.status, 302);
  std::vector<std::string> set_cookie = HeaderValues(page, "Set-Cookie");
  ASSERT_THAT(set_cookie, SizeIs(1));
  EXPECT_TRUE(absl::StartsWith(set_cookie[0], "__Host-tb_oauth="));
  EXPECT_TRUE(absl::EndsWith(
      set_cookie[0], "; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax"));
  EXPECT_EQ(QueryOf(HeaderValues(page, "Location")[0]).at("redirect_uri"),
            "https://broker.example/oauth/callback");
}

TEST_F(OAuthFlowTest, AppRedirectUriDecidesTheLinkOrigin) {
  AppConfig app = UserApp();
  app.redirect_uri = "https://sso.example:8443/oauth/callback";
  app.pkce = false;
  MakeFlow(Options(), {app});
  std::string link = Link();
  EXPECT_TRUE(
      absl::StartsWith(link, "https://sso.example:8443/oauth/start?ticket="));
  PageResponse page = Get(absl::StripPrefix(link, "https://sso.example:8443"));
  ASSERT_EQ(page.status, 302);
  std::map<std::string, std::string> query =
      QueryOf(HeaderValues(page, "Location")[0]);
  EXPECT_EQ(query.at("redirect_uri"),
            "https://sso.example:8443/oauth/callback");
  EXPECT_EQ(query.count("code_challenge"), 0u) << "pkce: false";
  EXPECT_EQ(query.count("code_challenge_method"), 0u);
}

TEST_F(OAuthFlowTest, CreateStartLinkErrors) {
  AppConfig machine = UserApp();
  machine.name = "machine";
  machine.grant_type = GrantType::kClientCredentials;
  MakeFlow(Options(), {UserApp(), machine});
  EXPECT_THAT(MakeLink("nope"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(MakeLink("machine"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  flow_->SetListenerUrl("");
  EXPECT_THAT(MakeLink("environments"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not running yet")));
}

TEST_F(OAuthFlowTest, StartNeedsAValidUnusedTicket) {
  std::string link = std::string(absl::StripPrefix(Link(), kListener));
  const int pending = flow_->stats().pending;
  for (const std::string& path :
       {std::string("/oauth/start"),
        std::string("/oauth/start?app=environments"),
        std::string("/oauth/start?ticket="),
        std::string("/oauth/start?ticket=made-up-ticket")}) {
    PageResponse page = Get(path);
    EXPECT_EQ(page.status, 403) << path;
    EXPECT_THAT(HeaderValues(page, "Location"), IsEmpty());
    EXPECT_THAT(HeaderValues(page, "Set-Cookie"), IsEmpty());
    EXPECT_THAT(page.body, HasSubstr("tokenbrokerctl connect"));
  }
  EXPECT_EQ(flow_->stats().pending, pending) << "nothing changes";
  EXPECT_EQ(audit_.records().back().decision, "deny");

  EXPECT_EQ(Get(link).status, 302);
  PageResponse used = Get(link);
  EXPECT_EQ(used.status, 403);
  EXPECT_THAT(used.body, HasSubstr("already used"));

  std::string expiring = std::string(absl::StripPrefix(Link(), kListener));
  clock_.Advance(absl::Minutes(15));
  PageResponse expired = Get(expiring);
  EXPECT_EQ(expired.status, 403);
  EXPECT_THAT(expired.body, HasSubstr("expired"));
  EXPECT_EQ(flow_->stats().starts_refused, 6u);
}

TEST_F(OAuthFlowTest, CallbackConnectsTheUser) {
  Serve(TokenAnswer());
  Started started = Start();
  clock_.Advance(absl::Minutes(2));
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(page.body, AllOf(HasSubstr("Connected: environments"),
                               HasSubstr("signed in as ada"),
                               HasSubstr("<li>view:environment</li>"),
                               HasSubstr("You can close this window")));
  EXPECT_THAT(HeaderValues(page, "Set-Cookie"),
              Contains("tb_oauth=; Path=/oauth; Max-Age=0; HttpOnly; "
                       "SameSite=Lax"));
  EXPECT_THAT(page.headers, Contains(Pair("Cache-Control", "no-store")));

  std::vector<UserGrant> stored = grants();
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].app, "environments");
  EXPECT_EQ(stored[0].user_id, "u-1");
  EXPECT_EQ(stored[0].username, "ada");
  EXPECT_EQ(stored[0].refresh_token, kRefreshToken);
  EXPECT_THAT(stored[0].scopes,
              ElementsAre("offline_access", "view:environment"));
  EXPECT_EQ(stored[0].connected_at, clock_.Now());

  std::vector<HttpRequest> exchanges = RequestsTo("/token");
  ASSERT_THAT(exchanges, SizeIs(1));
  std::map<std::string, std::string> form =
      QueryOf(absl::StrCat("?", exchanges[0].body));
  EXPECT_EQ(form.at("grant_type"), "authorization_code");
  EXPECT_EQ(form.at("code"), kCode);
  EXPECT_EQ(form.at("redirect_uri"), "http://127.0.0.1:8080/oauth/callback");
  EXPECT_EQ(PkceS256Challenge(form.at("code_verifier")),
            started.authorize.at("code_challenge"));
  std::vector<HttpRequest> userinfo = RequestsTo("/userinfo");
  ASSERT_THAT(userinfo, SizeIs(1));
  EXPECT_THAT(
      userinfo[0].headers,
      Contains(Pair("Authorization", absl::StrCat("Bearer ", kAccessToken))));
  EXPECT_THAT(RequestsTo("/revoke"), IsEmpty());

  AuditRecord record = LastCallbackRecord();
  EXPECT_EQ(record.event, "connect");
  EXPECT_EQ(record.caller, "ops-admin");
  EXPECT_EQ(record.app, "environments");
  EXPECT_EQ(record.user, "ada");
  EXPECT_EQ(record.decision, "allow");
  EXPECT_EQ(record.peer, "192.0.2.7");
  EXPECT_EQ(flow_->stats().callbacks.at("connected"), 1u);
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, MatchingIssuerIsAccepted) {
  Serve(TokenAnswer());
  Started started = Start();
  EXPECT_EQ(Callback(started,
                     "&iss=https%3A%2F%2Fas.example%2Faccounts%2Fapi%2Fv2%"
                     "2Foauth2")
                .status,
            200);
}

TEST_F(OAuthFlowTest, IssuerMismatchIsRefusedBeforeTheExchange) {
  Serve(TokenAnswer());
  Started started = Start();
  PageResponse page = Callback(started, "&iss=https%3A%2F%2Fattacker.example");
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(page.body, HasSubstr("wrong server"));
  EXPECT_THAT(RequestsTo("/token"), IsEmpty());
  EXPECT_THAT(grants(), IsEmpty());
  EXPECT_EQ(LastCallbackRecord().reason, "issuer_mismatch");
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, DeclinedConsentIsAPage) {
  Serve(TokenAnswer());
  Started started = Start();
  PageResponse page =
      Get(absl::StrCat("/oauth/callback?error=access_denied&state=",
                       started.authorize.at("state")),
          {CookieHeader(started)});
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(page.body, HasSubstr("You declined access for environments"));
  EXPECT_THAT(http_.requests(), IsEmpty());
  EXPECT_THAT(grants(), IsEmpty());
  AuditRecord record = LastCallbackRecord();
  EXPECT_EQ(record.decision, "deny");
  EXPECT_EQ(record.reason, "declined");
  EXPECT_EQ(record.caller, "ops-admin");
}

TEST_F(OAuthFlowTest, OtherErrorsShowOnlyASanitizedCode) {
  Started started = Start();
  PageResponse page =
      Get(absl::StrCat("/oauth/callback?error=%3Cscript%3E&error_description="
                       "%3Cb%3Eevil%3C%2Fb%3E&state=",
                       started.authorize.at("state")),
          {CookieHeader(started)});
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(page.body,
              AllOf(HasSubstr("(unrecognized error)"), Not(HasSubstr("script")),
                    Not(HasSubstr("evil"))));
  Started second = Start();
  PageResponse server_error =
      Get(absl::StrCat("/oauth/callback?error=temporarily_unavailable&state=",
                       second.authorize.at("state")),
          {CookieHeader(second)});
  EXPECT_EQ(server_error.status, 502);
  EXPECT_THAT(server_error.body, HasSubstr("temporarily_unavailable"));
}

TEST_F(OAuthFlowTest, ReplayedCallbackIsRefused) {
  Serve(TokenAnswer());
  Started started = Start();
  ASSERT_EQ(Callback(started).status, 200);
  PageResponse replay = Callback(started);
  EXPECT_EQ(replay.status, 403);
  EXPECT_THAT(replay.body, HasSubstr("already completed"));
  EXPECT_THAT(RequestsTo("/token"), SizeIs(1));
  EXPECT_THAT(grants(), SizeIs(1));
  EXPECT_EQ(LastCallbackRecord().reason, "unknown_state");
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, MissingOrWrongCookieIsRefusedAndUsesTheState) {
  Serve(TokenAnswer());
  Started started = Start();
  PageResponse no_cookie = Callback(started, "", /*with_cookie=*/false);
  EXPECT_EQ(no_cookie.status, 403);
  EXPECT_THAT(no_cookie.body, HasSubstr("another browser"));
  EXPECT_EQ(LastCallbackRecord().reason, "no_cookie");
  EXPECT_EQ(LastCallbackRecord().caller, "ops-admin");
  // The state was used by that attempt: the right browser is too late.
  EXPECT_EQ(Callback(started).status, 403);

  Started second = Start();
  PageResponse wrong =
      Get(absl::StrCat("/oauth/callback?code=", kCode,
                       "&state=", second.authorize.at("state")),
          {absl::StrCat("tb_oauth=", started.cookie)});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(LastCallbackRecord().reason, "cookie_mismatch");
  EXPECT_THAT(RequestsTo("/token"), IsEmpty());
  EXPECT_THAT(grants(), IsEmpty());
  ExpectNoSecretLeaked({started, second});
}

TEST_F(OAuthFlowTest, ForeignCallbackDoesNotEndTheBrowsersSignIn) {
  Serve(TokenAnswer());
  Started mine = Start();
  Started theirs = Start();  // Another browser's (an attacker's) sign-in.
  // A page makes this browser open callbacks that are not its own.
  for (const std::string& path :
       {std::string("/oauth/callback?code=x&state=made-up"),
        absl::StrCat("/oauth/callback?code=x&state=",
                     theirs.authorize.at("state"))}) {
    PageResponse page = Get(path, {CookieHeader(mine)});
    EXPECT_EQ(page.status, 403) << path;
    EXPECT_THAT(HeaderValues(page, "Set-Cookie"), IsEmpty())
        << "the browser's own binding cookie stays";
  }
  EXPECT_EQ(Callback(mine).status, 200);
  EXPECT_THAT(grants(), SizeIs(1));
}

TEST_F(OAuthFlowTest, ExpiredStateIsRefused) {
  Serve(TokenAnswer());
  Started started = Start();
  clock_.Advance(absl::Minutes(10));
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(RequestsTo("/token"), IsEmpty());
}

TEST_F(OAuthFlowTest, NoRefreshTokenSaysWhatToEnable) {
  Serve(TokenAnswer("view:environment", /*refresh=*/false));
  Started started = Start();
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 502);
  EXPECT_THAT(page.body, AllOf(HasSubstr("no refresh token"),
                               HasSubstr("offline_access")));
  EXPECT_THAT(grants(), IsEmpty());
  EXPECT_THAT(RequestsTo("/userinfo"), IsEmpty());
  EXPECT_EQ(LastCallbackRecord().reason, "no_refresh_token");
}

TEST_F(OAuthFlowTest, NarrowerScopesAreRefusedAndTheTokenRevoked) {
  AppConfig app = UserApp();
  app.scopes = {"read:exchange", "view:environment"};
  MakeFlow(Options(), {app});
  Serve(TokenAnswer("view:environment offline_access"));
  Started started = Start();
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(page.body, AllOf(HasSubstr("<li>read:exchange</li>"),
                               Not(HasSubstr("<li>view:environment</li>"))));
  EXPECT_THAT(grants(), IsEmpty());
  std::vector<HttpRequest> revokes = RequestsTo("/revoke");
  ASSERT_THAT(revokes, SizeIs(1));
  EXPECT_THAT(revokes[0].body,
              HasSubstr(absl::StrCat("token=", kRefreshToken,
                                     "&token_type_hint=refresh_token")));
  EXPECT_THAT(RequestsTo("/userinfo"), IsEmpty());
  EXPECT_EQ(LastCallbackRecord().reason, "scopes_narrower");
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, AnswerWithoutScopeGrantsWhatWasRequested) {
  Serve(TokenAnswer(/*scope=*/""));
  Started started = Start();
  EXPECT_EQ(Callback(started).status, 200);
  ASSERT_THAT(grants(), SizeIs(1));
  EXPECT_THAT(grants()[0].scopes,
              ElementsAre("offline_access", "view:environment"));
}

TEST_F(OAuthFlowTest, RefusedCodeChangesNothing) {
  Serve(R"({"error":"invalid_grant","error_description":"code-SECRET-4711"})",
        400);
  Started started = Start();
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 502);
  EXPECT_THAT(page.body, HasSubstr("invalid_grant"));
  EXPECT_THAT(grants(), IsEmpty());
  EXPECT_EQ(LastCallbackRecord().reason, "exchange_failed");
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, UserinfoFailureRevokes) {
  Serve(TokenAnswer(), 200, R"({"error":"invalid_token"})", 401);
  Started started = Start();
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 502);
  EXPECT_THAT(grants(), IsEmpty());
  EXPECT_THAT(RequestsTo("/revoke"), SizeIs(1));
  EXPECT_EQ(LastCallbackRecord().reason, "userinfo_failed");
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, StoreFailureRevokes) {
  Serve(TokenAnswer());
  {
    absl::MutexLock lock(&mu_);
    store_status_ = absl::UnavailableError("disk full");
  }
  Started started = Start();
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 500);
  EXPECT_THAT(page.body, HasSubstr("could not store"));
  EXPECT_THAT(RequestsTo("/revoke"), SizeIs(1));
  AuditRecord record = LastCallbackRecord();
  EXPECT_EQ(record.reason, "store_failed");
  EXPECT_EQ(record.user, "ada");
  ExpectNoSecretLeaked({started});
}

TEST_F(OAuthFlowTest, MalformedRequests) {
  Started started = Start();
  EXPECT_EQ(Get("/oauth/elsewhere").status, 404);
  PageResponse post = Get("/oauth/start", {}, "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_THAT(post.headers, Contains(Pair("Allow", "GET")));
  EXPECT_EQ(
      Get(absl::StrCat("/oauth/start?ticket=", started.ticket), {}, "HEAD")
          .status,
      405);
  EXPECT_EQ(
      Get(absl::StrCat("/oauth/callback?state=x&code=", std::string(5000, 'a')))
          .status,
      400);
  EXPECT_EQ(Get("/oauth/callback?code=a&code=b&state=x").status, 400);
  EXPECT_EQ(Get("/oauth/callback?code=%zz&state=x").status, 400);
  EXPECT_EQ(Get("/oauth/callback?code=abc").status, 400);
  // None of these used the state: the sign-in still completes.
  Serve(TokenAnswer());
  EXPECT_EQ(Callback(started).status, 200);
  EXPECT_EQ(flow_->stats().callbacks.at("bad_request"), 4u);
}

TEST_F(OAuthFlowTest, RepeatedStateIsRefusedWithoutUsingIt) {
  Serve(TokenAnswer());
  Started started = Start();
  const std::string& state = started.authorize.at("state");
  EXPECT_EQ(Get(absl::StrCat("/oauth/callback?code=x&state=", state,
                             "&state=", state),
                {CookieHeader(started)})
                .status,
            400);
  EXPECT_EQ(Callback(started).status, 200);
}

TEST_F(OAuthFlowTest, BusyCallbackLeavesItsStateUnused) {
  OAuthFlowOptions options = Options();
  options.max_concurrent_callbacks = 1;
  MakeFlow(options);
  Started first = Start();
  Started second = Start();
  // The first callback waits on the authorization server (no handler).
  PageResponse first_page;
  std::thread waiting([&] {
    PageRequest request;
    request.method = "GET";
    request.path = "/oauth/callback";
    request.query =
        absl::StrCat("code=", kCode, "&state=", first.authorize.at("state"));
    request.cookie_headers = {CookieHeader(first)};
    first_page = flow_->Handle(request);
  });
  ASSERT_TRUE(PollUntil([&] { return http_.pending_count() == 1; }));
  PageResponse busy = Callback(second);
  EXPECT_EQ(busy.status, 503);
  EXPECT_THAT(busy.headers, Contains(Pair("Retry-After", "5")));
  EXPECT_THAT(HeaderValues(busy, "Set-Cookie"), IsEmpty());

  // Answers from now on (userinfo), then the exchange still pending.
  Serve(TokenAnswer());
  http_.CompleteNext(FakeHttpClient::Json(200, TokenAnswer()));
  waiting.join();
  EXPECT_EQ(first_page.status, 200) << first_page.body;
  EXPECT_EQ(Callback(second).status, 200) << "reloading works";
  EXPECT_EQ(flow_->stats().callbacks.at("busy"), 1u);
}

TEST_F(OAuthFlowTest, LateExchangeAnswerIsRevokedAfterTheFlowIsGone) {
  OAuthFlowOptions options = Options();
  options.oauth.request_timeout = absl::Milliseconds(1);
  MakeFlow(options);
  Started started = Start();
  // No handler: the exchange stays pending, the page gives up waiting.
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 502);
  EXPECT_THAT(page.body, HasSubstr("no answer in time"));
  EXPECT_EQ(LastCallbackRecord().reason, "timeout");
  ASSERT_EQ(http_.pending_count(), 1u);

  // The flow goes away before the answer arrives (shutdown): the completion
  // must touch only what it shares (ASan checks), and still revoke.
  flow_.reset();
  ASSERT_TRUE(http_.CompleteNext(FakeHttpClient::Json(200, TokenAnswer())));
  std::vector<HttpRequest> revokes = RequestsTo("/revoke");
  ASSERT_THAT(revokes, SizeIs(1));
  EXPECT_THAT(revokes[0].body,
              HasSubstr(absl::StrCat("token=", kRefreshToken)));
  http_.CompleteNext(FakeHttpClient::Json(200, ""));
  EXPECT_THAT(grants(), IsEmpty());
  ExpectNoSecretLeaked({started});
}

// Three replicas whose sign-ins in progress are shared on one Redis (with
// an append-only file, so that it keeps them across a stop and start), as
// the Ingress sends each browser request to any of them.
class SharedOAuthFlowTest : public OAuthFlowTest {
 protected:
  static constexpr int kReplicas = 3;

  ~SharedOAuthFlowTest() override {
    On(-1);
    replicas_.clear();  // Before the Redis clients they use.
  }

  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    server_ = RedisServerProcess::StartNew(
        {"", false, {"appendonly yes", "appendfsync always"}});
    ASSERT_NE(server_, nullptr);
    absl::StatusOr<std::shared_ptr<const KeyRing>> keys =
        KeyRing::Create({SealKey("k1", std::string(kSealKeyBytes, '\x42'))});
    ASSERT_THAT(keys, IsOk());
    for (int i = 0; i < kReplicas; ++i) {
      absl::StatusOr<std::unique_ptr<RedisClient>> redis =
          StartRedisClient(server_->ClientOptions());
      ASSERT_THAT(redis, IsOk());
      RedisClient& client = **redis;
      clients_.push_back(*std::move(redis));
      ASSERT_TRUE(PollUntil([&] { return client.stats().connected; }));
      OAuthFlowOptions options = Options();
      options.pending_flows = [&client, keys = *keys](
                                  const Clock& clock,
                                  PendingFlowsOptions pending) {
        return std::make_unique<RedisPendingFlows>(client, keys,
                                                   "tb-test:", clock, pending);
      };
      MakeFlow(std::move(options));
      replicas_.push_back(std::move(flow_));
    }
  }

  // Sends the next requests to replica `replica` (-1: none).
  void On(int replica) {
    if (current_ >= 0) std::swap(flow_, replicas_[current_]);
    current_ = replica;
    if (current_ >= 0) std::swap(flow_, replicas_[current_]);
  }

  // Waits until every replica's client reaches Redis again.
  bool Reconnected() {
    return PollUntil([&] {
      for (auto& client : clients_) {
        if (!client->CommandSync({"PING"}).ok()) return false;
      }
      return true;
    });
  }

  std::unique_ptr<RedisServerProcess> server_;
  std::vector<std::unique_ptr<RedisClient>> clients_;
  std::vector<std::unique_ptr<OAuthFlow>> replicas_;
  int current_ = -1;
};

TEST_F(SharedOAuthFlowTest, LinkFromOneReplicaStartsOnAnotherEndsOnAThird) {
  Serve(TokenAnswer());
  On(0);
  const std::string link = Link();
  On(1);
  Started started = StartWith(link);
  ASSERT_FALSE(started.cookie.empty());
  On(2);
  PageResponse page = Callback(started);
  EXPECT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(grants(), SizeIs(1));
  std::vector<HttpRequest> exchanges = RequestsTo("/token");
  ASSERT_THAT(exchanges, SizeIs(1));
  EXPECT_EQ(
      PkceS256Challenge(
          QueryOf(absl::StrCat("?", exchanges[0].body)).at("code_verifier")),
      started.authorize.at("code_challenge"))
      << "the verifier made on replica 1 is the one replica 2 sends";

  // Each is used once, on whichever replica.
  On(0);
  EXPECT_EQ(Callback(started).status, 403);
  EXPECT_EQ(LastCallbackRecord().reason, "unknown_state");
  EXPECT_EQ(Get(absl::StripPrefix(link, kListener)).status, 403);
  EXPECT_THAT(grants(), SizeIs(1));
  ExpectNoSecretLeaked({started});
}

TEST_F(SharedOAuthFlowTest, SharedStateDownPagesSayTryAgain) {
  Serve(TokenAnswer());
  On(0);
  const std::string link = Link();
  ASSERT_THAT(server_->Stop(), IsOk());

  On(1);
  PageResponse start = Get(absl::StripPrefix(link, kListener));
  EXPECT_EQ(start.status, 503);
  EXPECT_THAT(start.headers, Contains(Pair("Retry-After", "5")));
  EXPECT_THAT(start.body, HasSubstr("open it again in a moment"));
  EXPECT_THAT(HeaderValues(start, "Set-Cookie"), IsEmpty());
  EXPECT_THAT(
      MakeLink("environments"),
      StatusIs(absl::StatusCode::kUnavailable,
               HasSubstr("the shared state (Redis) cannot be reached")));

  // Back: the same link works.
  ASSERT_THAT(server_->Start(), IsOk());
  ASSERT_TRUE(Reconnected());
  Started started = StartWith(link);
  ASSERT_FALSE(started.cookie.empty());

  ASSERT_THAT(server_->Stop(), IsOk());
  On(2);
  PageResponse callback = Callback(started);
  EXPECT_EQ(callback.status, 503);
  EXPECT_THAT(callback.headers, Contains(Pair("Retry-After", "5")));
  EXPECT_THAT(callback.body, HasSubstr("Reload this page in a moment"));
  EXPECT_EQ(LastCallbackRecord().reason, "unavailable");
  EXPECT_EQ(flow_->stats().callbacks.at("unavailable"), 1u);
  EXPECT_THAT(RequestsTo("/token"), IsEmpty());

  // Back: reloading the page completes the sign-in.
  ASSERT_THAT(server_->Start(), IsOk());
  ASSERT_TRUE(Reconnected());
  PageResponse reloaded = Callback(started);
  EXPECT_EQ(reloaded.status, 200) << reloaded.body;
  EXPECT_THAT(grants(), SizeIs(1));
  ExpectNoSecretLeaked({started});
}

}  // namespace
}  // namespace tokenbroker
