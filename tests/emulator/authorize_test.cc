// The emulator's side of the authorization code flow: the authorize request's
// validation, the sign-in and consent pages, codes (single use, bound to
// client, redirect URI and PKCE challenge, 10 minutes), refresh tokens
// (rotation with a reuse grace, reuse revokes the grant, lifetime), grants
// and the test-control calls over them, and what a user token may reach.
// Browser steps go through the scripted browser; the client's redirect URI is
// a CallbackServer that records what it receives.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/http_helpers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/emulator/callback_server.h"
#include "tests/testing/scripted_browser.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::tokenbroker::testing::BrowserResponse;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::ScriptedBrowser;
using ::tokenbroker::testing::StatusIs;

constexpr char kOrg[] = "c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f";
constexpr char kOtherOrg[] = "99999999-0000-4000-8000-000000000000";
constexpr char kTokenPath[] = "/accounts/api/v2/oauth2/token";
constexpr char kLogin[] = "/accounts/api/v2/oauth2/authorize/login";
constexpr char kConsent[] = "/accounts/api/v2/oauth2/authorize/consent";
constexpr char kState[] = "st-8f2c1e";
// RFC 7636 Appendix B.
constexpr char kVerifier[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr char kChallenge[] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

// CALLBACK and ALT are replaced by the callback server's URLs.
constexpr char kFixture[] = R"yaml(
organizations:
  - id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    name: Acme Corp
    environments:
      - {id: 7f3a9b2e-1d4c-4e8f-a6b5-0c9d8e7f6a51, name: Production, is_production: true}
  - id: 99999999-0000-4000-8000-000000000000
    name: Other Corp
users:
  - {id: user-1, username: alice, org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f, password: alice-pw}
  - {id: user-2, username: bob, org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f, password: bob-pw}
  - {id: user-3, username: olga, org_id: 99999999-0000-4000-8000-000000000000, password: olga-pw}
  - id: user-4
    username: max
    org_id: 99999999-0000-4000-8000-000000000000
    org_ids: [c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f]
    password: max-pw
  - {id: user-5, username: nopass, org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
apps:
  - client_id: user-app
    client_secret: user-secret
    name: User App
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    grant_types: [authorization_code, refresh_token]
    scopes:
      - {scope: view:environment, org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
      - {scope: view:design_center, org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
    redirect_uris: [CALLBACK, ALT]
  - client_id: members-app
    client_secret: members-secret
    name: "Members <Only> & \"Co\""
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    audience: org_members
    grant_types: [authorization_code, refresh_token]
    scopes:
      - {scope: view:environment, org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
    redirect_uris: [CALLBACK]
    rotate_refresh_tokens: false
    refresh_token_lifetime_seconds: 3600
  - client_id: code-only-app
    client_secret: code-secret
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    grant_types: [authorization_code]
    redirect_uris: [CALLBACK]
  - client_id: cc-app
    client_secret: cc-secret
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    grant_types: [client_credentials]
    redirect_uris: [CALLBACK]
)yaml";

std::string Enc(const std::string& s) {
  return httplib::detail::encode_query_param(s);
}

json Json(const httplib::Result& res) {
  return json::parse(res->body, nullptr, false);
}

std::string Secret(const std::string& client_id) {
  static const auto* const kSecrets =
      new std::map<std::string, std::string>{{"user-app", "user-secret"},
                                             {"members-app", "members-secret"},
                                             {"code-only-app", "code-secret"}};
  return kSecrets->at(client_id);
}

// What a client keeps between the steps of a flow.
struct Tokens {
  std::string access, refresh;
};

class AuthorizeTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith(kFixture); }

  void StartWith(const std::string& yaml, Options options = Options()) {
    emulator_.reset();
    const std::string text = absl::StrReplaceAll(
        yaml, {{"CALLBACK", callback_.callback_url()},
               {"ALT", absl::StrCat("http://localhost:", callback_.port(),
                                    "/oauth/callback")}});
    absl::StatusOr<Fixture> fixture = ParseFixture(text, "test fixture");
    ASSERT_THAT(fixture, IsOk());
    emulator_ = std::make_unique<Emulator>(*std::move(fixture));
    ASSERT_THAT(emulator_->Start(options), IsOk());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", emulator_->port());
    client_->set_read_timeout(5, 0);
  }

  std::string Issuer() const {
    return emulator_->base_url() + "/accounts/api/v2/oauth2";
  }

  // An authorize URL to the callback server, with state and (unless
  // `extra` says otherwise) the PKCE challenge of kVerifier.
  std::string AuthorizeUrl(const std::string& scope,
                           const std::string& client_id = "user-app",
                           const std::string& extra = "", bool pkce = true) {
    return absl::StrCat(
        emulator_->base_url(),
        "/accounts/api/v2/oauth2/authorize?response_type=code&client_id=",
        client_id, "&redirect_uri=", Enc(callback_.callback_url()),
        "&scope=", Enc(scope), "&state=", kState,
        pkce ? absl::StrCat("&code_challenge=", kChallenge,
                            "&code_challenge_method=S256")
             : "",
        extra);
  }

  // Signs in and answers the consent page with the scripted browser; returns
  // the query the callback got (empty if the flow did not reach it).
  std::map<std::string, std::string> Flow(
      const std::string& url, const std::string& username = "alice",
      const std::string& password = "alice-pw", bool approve = true) {
    const size_t before = callback_.callbacks().size();
    absl::StatusOr<BrowserResponse> last =
        browser_.SignInAndConsent(url, username, password, approve);
    EXPECT_THAT(last, IsOk());
    if (!last.ok()) return {};
    const std::vector<CallbackServer::Callback> callbacks =
        callback_.callbacks();
    if (callbacks.size() != before + 1) return {};
    EXPECT_EQ(last->body, "callback");
    return callbacks.back().query;
  }

  // Opens `url` (the sign-in page, into *sign_in) and signs in: the
  // consent page, or whatever the sign-in answered.
  absl::StatusOr<BrowserResponse> SignIn(
      const std::string& url, BrowserResponse* sign_in,
      const std::string& username = "alice",
      const std::string& password = "alice-pw") {
    absl::StatusOr<BrowserResponse> page = browser_.Get(url);
    if (!page.ok()) return page.status();
    *sign_in = *page;
    return browser_.SubmitForm(
        *page, kLogin, {{"username", username}, {"password", password}});
  }

  std::string Code(const std::string& scope,
                   const std::string& client_id = "user-app",
                   const std::string& username = "alice",
                   const std::string& password = "alice-pw", bool pkce = true) {
    std::map<std::string, std::string> query =
        Flow(AuthorizeUrl(scope, client_id, "", pkce), username, password);
    EXPECT_EQ(query["state"], kState);
    EXPECT_EQ(query["iss"], Issuer());
    return query["code"];
  }

  httplib::Result Exchange(const std::string& code,
                           const std::string& verifier = kVerifier,
                           const std::string& client_id = "user-app",
                           const std::string& redirect_uri = "") {
    std::string body = absl::StrCat(
        "grant_type=authorization_code&code=", Enc(code), "&redirect_uri=",
        Enc(redirect_uri.empty() ? callback_.callback_url() : redirect_uri),
        "&client_id=", client_id, "&client_secret=", Secret(client_id));
    if (!verifier.empty()) absl::StrAppend(&body, "&code_verifier=", verifier);
    return client_->Post(kTokenPath, body, "application/x-www-form-urlencoded");
  }

  httplib::Result Refresh(const std::string& refresh_token,
                          const std::string& client_id = "user-app") {
    return client_->Post(
        kTokenPath,
        absl::StrCat(
            "grant_type=refresh_token&refresh_token=", Enc(refresh_token),
            "&client_id=", client_id, "&client_secret=", Secret(client_id)),
        "application/x-www-form-urlencoded");
  }

  // The whole flow through to tokens.
  Tokens Connect(const std::string& scope = "view:environment offline_access",
                 const std::string& client_id = "user-app",
                 const std::string& username = "alice",
                 const std::string& password = "alice-pw") {
    httplib::Result res = Exchange(Code(scope, client_id, username, password),
                                   kVerifier, client_id);
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
    if (!res || res->status != 200) return {};
    const json body = Json(res);
    return Tokens{body["access_token"].get<std::string>(),
                  body.value("refresh_token", "")};
  }

  httplib::Result Environments(const std::string& access,
                               const std::string& org = kOrg) {
    return client_->Get(
        absl::StrCat("/accounts/api/organizations/", org, "/environments"),
        {{"Authorization", "Bearer " + access}});
  }

  // Expects `res` to be the OAuth error `error` (400 JSON).
  static void ExpectOAuthError(const httplib::Result& res,
                               const std::string& error) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << res->body;
    EXPECT_EQ(Json(res)["error"], error) << res->body;
  }

  // The query of a 302 Location. httplib's client URL-decodes header values,
  // so values must not hold '&' or '=' (ours do not).
  static std::map<std::string, std::string> LocationQuery(
      const httplib::Result& res) {
    std::map<std::string, std::string> query;
    const std::string location = res->get_header_value("Location");
    const size_t question = location.find('?');
    if (question == std::string::npos) return query;
    for (const auto& [k, v] :
         internal::DecodeUrlEncoded(location.substr(question + 1))) {
      query[k] = v;
    }
    return query;
  }

  CallbackServer callback_;
  ScriptedBrowser browser_;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<httplib::Client> client_;
};

// --- The pages
// ----------------------------------------------------------------

TEST_F(AuthorizeTest, SignInPageContract) {
  absl::StatusOr<BrowserResponse> page =
      browser_.Get(AuthorizeUrl("view:environment"));
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->url, StartsWith(emulator_->base_url()));
  const auto header = [&](const char* name) {
    auto it = page->headers.find(name);
    return it == page->headers.end() ? std::string() : it->second;
  };
  EXPECT_THAT(header("Content-Type"), StartsWith("text/html"));
  EXPECT_EQ(header("Cache-Control"), "no-store");
  EXPECT_EQ(header("X-Frame-Options"), "DENY");
  EXPECT_EQ(header("Content-Security-Policy"), "frame-ancestors 'none'");
  EXPECT_THAT(
      page->body,
      AllOf(HasSubstr("<title>Sign in to Anypoint Platform</title>"),
            HasSubstr("<h1>Sign in to Anypoint Platform</h1>"),
            HasSubstr("<form method=\"post\" "
                      "action=\"/accounts/api/v2/oauth2/authorize/login\">"),
            HasSubstr("<input id=\"username\" name=\"username\">"),
            HasSubstr("<input id=\"password\" type=\"password\" "
                      "name=\"password\">"),
            HasSubstr("<button type=\"submit\">Sign in</button>"),
            HasSubstr("User App"), Not(HasSubstr(kChallenge)),
            Not(HasSubstr(kState))));
  const std::vector<testing::HtmlForm> forms = testing::ParseForms(page->body);
  ASSERT_THAT(forms, SizeIs(1));
  ASSERT_THAT(forms[0].inputs, SizeIs(3));
  EXPECT_EQ(forms[0].inputs[0].first, "txn");
  // 256 random bits, hex.
  EXPECT_EQ(forms[0].inputs[0].second.size(), 64u);
  EXPECT_EQ(emulator_->GetCounters().authorize_page_views, 1);
}

TEST_F(AuthorizeTest, WrongPasswordShowsTheSignInPageAgainWithoutEnumeration) {
  absl::StatusOr<BrowserResponse> page =
      browser_.Get(AuthorizeUrl("view:environment"));
  ASSERT_THAT(page, IsOk());
  absl::StatusOr<BrowserResponse> wrong_password = browser_.SubmitForm(
      *page, kLogin, {{"username", "alice"}, {"password", "guess-1"}});
  absl::StatusOr<BrowserResponse> unknown_user = browser_.SubmitForm(
      *page, kLogin, {{"username", "mallory"}, {"password", "guess-2"}});
  absl::StatusOr<BrowserResponse> no_password = browser_.SubmitForm(
      *page, kLogin, {{"username", "nopass"}, {"password", ""}});
  for (const auto* res : {&wrong_password, &unknown_user, &no_password}) {
    ASSERT_THAT(*res, IsOk());
    EXPECT_EQ((*res)->status, 200);
    EXPECT_THAT((*res)->body,
                AllOf(HasSubstr("Incorrect username or password."),
                      HasSubstr("<input id=\"password\""),
                      Not(HasSubstr("guess-")), Not(HasSubstr("Allow "))));
  }
  // Same page whether the user exists or not.
  EXPECT_EQ(wrong_password->body, unknown_user->body);
  EXPECT_THAT(callback_.callbacks(), IsEmpty());

  // The same sign-in page still works with the right password.
  absl::StatusOr<BrowserResponse> consent =
      browser_.SubmitForm(*wrong_password, kLogin,
                          {{"username", "alice"}, {"password", "alice-pw"}});
  ASSERT_THAT(consent, IsOk());
  EXPECT_THAT(consent->body, HasSubstr("Allow User App to access"));
  Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.logins_failed, 3);
  EXPECT_EQ(counters.logins_ok, 1);
}

TEST_F(AuthorizeTest, TooManyWrongPasswordsEndTheSignIn) {
  absl::StatusOr<BrowserResponse> page =
      browser_.Get(AuthorizeUrl("view:environment"));
  ASSERT_THAT(page, IsOk());
  for (int i = 0; i < 4; ++i) {
    page = browser_.SubmitForm(*page, kLogin,
                               {{"username", "alice"}, {"password", "x"}});
    ASSERT_THAT(page, IsOk());
    ASSERT_EQ(page->status, 200);
  }
  absl::StatusOr<BrowserResponse> fifth = browser_.SubmitForm(
      *page, kLogin, {{"username", "alice"}, {"password", "x"}});
  ASSERT_THAT(fifth, IsOk());
  EXPECT_EQ(fifth->status, 400);
  EXPECT_THAT(fifth->body, HasSubstr("Too many failed sign-in attempts"));
  absl::StatusOr<BrowserResponse> right = browser_.SubmitForm(
      *page, kLogin, {{"username", "alice"}, {"password", "alice-pw"}});
  ASSERT_THAT(right, IsOk());
  EXPECT_EQ(right->status, 400);
}

TEST_F(AuthorizeTest, ConsentPageNamesTheAppUserAndScopesEscaped) {
  BrowserResponse page;
  absl::StatusOr<BrowserResponse> consent = SignIn(
      AuthorizeUrl("view:environment offline_access", "members-app"), &page);
  ASSERT_THAT(consent, IsOk());
  EXPECT_THAT(page.body,
              HasSubstr("Members &lt;Only&gt; &amp; &quot;Co&quot;"));
  EXPECT_EQ(consent->status, 200);
  EXPECT_THAT(
      consent->body,
      AllOf(HasSubstr("<h1>Allow Members &lt;Only&gt; &amp; &quot;Co&quot; "
                      "to access your Anypoint account?</h1>"),
            HasSubstr(">alice<"), HasSubstr("<li>view:environment</li>"),
            HasSubstr("<li>offline_access</li>"),
            HasSubstr("<form method=\"post\" "
                      "action=\"/accounts/api/v2/oauth2/authorize/consent\">"),
            HasSubstr("<button type=\"submit\" name=\"decision\" "
                      "value=\"approve\">Approve</button>"),
            HasSubstr("<button type=\"submit\" name=\"decision\" "
                      "value=\"deny\">Deny</button>"),
            Not(HasSubstr("<Only>")), Not(HasSubstr("alice-pw"))));
  const std::vector<testing::HtmlForm> forms =
      testing::ParseForms(consent->body);
  ASSERT_THAT(forms, SizeIs(1));
  EXPECT_EQ(forms[0].action, kConsent);
  ASSERT_THAT(forms[0].inputs, SizeIs(1));
  EXPECT_EQ(forms[0].inputs[0].first, "txn");
  EXPECT_THAT(
      forms[0].buttons,
      ElementsAre(std::pair<std::string, std::string>("decision", "approve"),
                  std::pair<std::string, std::string>("decision", "deny")));
}

TEST_F(AuthorizeTest, ApproveRedirectsWithCodeStateAndIss) {
  std::map<std::string, std::string> query =
      Flow(AuthorizeUrl("view:environment"));
  EXPECT_EQ(query["state"], kState);
  EXPECT_EQ(query["iss"], Issuer());
  EXPECT_EQ(query["code"].size(), 64u);
  EXPECT_EQ(query.count("error"), 0u);
  // The issuer is the discovery document's.
  httplib::Result res =
      client_->Get("/accounts/api/v2/oauth2/.well-known/openid-configuration");
  ASSERT_TRUE(res);
  EXPECT_EQ(Json(res)["issuer"], Issuer());
  EXPECT_EQ(Json(res)["code_challenge_methods_supported"],
            json::array({"S256"}));
  Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.consents_approved, 1);
  EXPECT_EQ(counters.consents_denied, 0);
}

TEST_F(AuthorizeTest, IssuerOption) {
  Options options;
  options.issuer = "https://anypoint.example/accounts/api/v2/oauth2";
  StartWith(kFixture, options);
  EXPECT_EQ(Flow(AuthorizeUrl("view:environment"))["iss"], options.issuer);
  httplib::Result res =
      client_->Get("/accounts/api/v2/oauth2/.well-known/openid-configuration");
  EXPECT_EQ(Json(res)["issuer"], options.issuer);
}

TEST_F(AuthorizeTest, DenyRedirectsWithAccessDenied) {
  std::map<std::string, std::string> query =
      Flow(AuthorizeUrl("view:environment"), "alice", "alice-pw",
           /*approve=*/false);
  EXPECT_EQ(query["error"], "access_denied");
  EXPECT_THAT(query["error_description"], HasSubstr("denied"));
  EXPECT_EQ(query["state"], kState);
  EXPECT_EQ(query["iss"], Issuer());
  EXPECT_EQ(query.count("code"), 0u);
  EXPECT_EQ(emulator_->GetCounters().consents_denied, 1);
}

TEST_F(AuthorizeTest, MembersOnlyAppRefusesUsersOutsideItsOrganization) {
  const std::string url = AuthorizeUrl("view:environment", "members-app");
  absl::StatusOr<BrowserResponse> page = browser_.Get(url);
  ASSERT_THAT(page, IsOk());
  absl::StatusOr<BrowserResponse> last = browser_.SubmitForm(
      *page, kLogin, {{"username", "olga"}, {"password", "olga-pw"}});
  ASSERT_THAT(last, IsOk());
  // Straight to the callback: no consent page on the way.
  EXPECT_EQ(last->body, "callback");
  ASSERT_THAT(last->chain, SizeIs(2));
  ASSERT_THAT(callback_.callbacks(), SizeIs(1));
  std::map<std::string, std::string> query = callback_.callbacks()[0].query;
  EXPECT_EQ(query["error"], "access_denied");
  EXPECT_THAT(query["error_description"],
              HasSubstr("only available to members of its organization"));
  EXPECT_EQ(query["state"], kState);
  EXPECT_EQ(query["iss"], Issuer());
  EXPECT_EQ(query.count("code"), 0u);

  // A member (max through org_ids, alice by her own org) gets the consent.
  EXPECT_FALSE(
      Code("view:environment", "members-app", "max", "max-pw").empty());
  EXPECT_FALSE(
      Code("view:environment", "members-app", "alice", "alice-pw").empty());
  // An all-users app lets olga consent.
  EXPECT_FALSE(Code("view:environment", "user-app", "olga", "olga-pw").empty());
}

TEST_F(AuthorizeTest, TheTransactionIsSingleUseAndExpires) {
  BrowserResponse sign_in;
  absl::StatusOr<BrowserResponse> consent =
      SignIn(AuthorizeUrl("view:environment"), &sign_in);
  ASSERT_THAT(consent, IsOk());
  // Signed in: the sign-in form cannot be used again.
  absl::StatusOr<BrowserResponse> again = browser_.SubmitForm(
      sign_in, kLogin, {{"username", "bob"}, {"password", "bob-pw"}});
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->status, 400);
  EXPECT_THAT(again->body, HasSubstr("start again"));

  absl::StatusOr<BrowserResponse> done =
      browser_.SubmitForm(*consent, kConsent, {{"decision", "approve"}});
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->body, "callback");
  // Replayed consent: a page, no second redirect.
  absl::StatusOr<BrowserResponse> replay =
      browser_.SubmitForm(*consent, kConsent, {{"decision", "approve"}});
  ASSERT_THAT(replay, IsOk());
  EXPECT_EQ(replay->status, 400);
  EXPECT_THAT(replay->chain, SizeIs(1));
  EXPECT_THAT(callback_.callbacks(), SizeIs(1));

  // Consent without sign-in, and an unknown transaction.
  absl::StatusOr<BrowserResponse> page =
      browser_.Get(AuthorizeUrl("view:environment"));
  ASSERT_THAT(page, IsOk());
  for (const std::string& txn : {std::string(""), std::string("nope")}) {
    httplib::Result res = client_->Post(kConsent, "decision=approve&txn=" + txn,
                                        "application/x-www-form-urlencoded");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    EXPECT_FALSE(res->has_header("Location"));
  }
  absl::StatusOr<BrowserResponse> early =
      browser_.SubmitForm(*page, kConsent, {{"decision", "approve"}});
  EXPECT_THAT(early, StatusIs(absl::StatusCode::kNotFound));  // no such form

  // Ten minutes for the whole flow.
  page = browser_.Get(AuthorizeUrl("view:environment"));
  ASSERT_THAT(page, IsOk());
  ASSERT_THAT(emulator_->AdvanceTime(absl::Minutes(10)), IsOk());
  absl::StatusOr<BrowserResponse> late = browser_.SubmitForm(
      *page, kLogin, {{"username", "alice"}, {"password", "alice-pw"}});
  ASSERT_THAT(late, IsOk());
  EXPECT_EQ(late->status, 400);
}

// --- The authorize request
// ------------------------------------------------------

TEST_F(AuthorizeTest, UnverifiedClientOrRedirectUriGetsAPageNeverARedirect) {
  const std::string cb = Enc(callback_.callback_url());
  const std::string base =
      "/accounts/api/v2/oauth2/authorize?response_type=code&state=x";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {base + "&redirect_uri=" + cb, "no client_id"},
      {base + "&client_id=nobody&redirect_uri=" + cb, "Unknown client_id"},
      // Exact match: a trailing slash, another case, an extra query differ.
      {base + "&client_id=user-app&redirect_uri=" + cb + "%2F",
       "is not registered"},
      {base + "&client_id=user-app&redirect_uri=" +
           Enc(absl::StrCat("http://LOCALHOST:", callback_.port(),
                            "/oauth/callback")),
       "is not registered"},
      {base + "&client_id=user-app&redirect_uri=" + cb + "%3Fx%3D1",
       "is not registered"},
      {base + "&client_id=user-app&redirect_uri=http%3A%2F%2Fevil.example%2Fcb",
       "is not registered"},
      // Two registered: the request must say which.
      {base + "&client_id=user-app", "redirect_uri is required"},
      {base + "&client_id=user-app&client_id=members-app&redirect_uri=" + cb,
       "more than once"},
      {base + "&client_id=user-app&redirect_uri=" + cb + "&redirect_uri=" + cb,
       "more than once"},
  };
  for (const auto& [path, message] : cases) {
    httplib::Result res = client_->Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 400) << path;
    EXPECT_FALSE(res->has_header("Location")) << path;
    EXPECT_THAT(res->get_header_value("Content-Type"), StartsWith("text/html"));
    EXPECT_THAT(res->body, HasSubstr(message)) << path;
    EXPECT_THAT(res->body, Not(HasSubstr("<script"))) << path;
  }
  // A value put into the page is escaped.
  httplib::Result res =
      client_->Get(base + "&client_id=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, AllOf(HasSubstr("&lt;script&gt;alert(1)"),
                               Not(HasSubstr("<script>"))));
  EXPECT_EQ(emulator_->GetCounters().authorize_page_views, 0);
}

TEST_F(AuthorizeTest, ErrorsAfterTheRedirectUriIsVerifiedGoBackToIt) {
  const std::string start =
      absl::StrCat("/accounts/api/v2/oauth2/authorize?state=", kState,
                   "&redirect_uri=", Enc(callback_.callback_url()));
  const std::string user_app = start + "&response_type=code&client_id=user-app";
  struct Case {
    std::string path, error, description;
  };
  const std::vector<Case> cases = {
      {start + "&client_id=user-app", "invalid_request", "response_type"},
      {start + "&client_id=user-app&response_type=token",
       "unsupported_response_type", "code"},
      {start + "&client_id=cc-app&response_type=code", "unauthorized_client",
       "authorization_code"},
      {user_app + "&scope=read%3Aexchange", "invalid_scope", "read:exchange"},
      {start + "&client_id=code-only-app&response_type=code&scope=offline_"
               "access",
       "invalid_scope", "refresh_token"},
      {user_app + "&code_challenge=" + kChallenge +
           "&code_challenge_method=plain",
       "invalid_request", "S256"},
      {user_app + "&code_challenge=" + kChallenge, "invalid_request", "S256"},
      {user_app + "&code_challenge=" + kChallenge +
           "&code_challenge_method=S512",
       "invalid_request", "S256"},
      {user_app + "&code_challenge=short&code_challenge_method=S256",
       "invalid_request", "43"},
      {user_app + "&code_challenge=" + std::string(kChallenge).substr(1) +
           "%2B&code_challenge_method=S256",
       "invalid_request", "base64url"},
      {user_app + "&code_challenge_method=S256", "invalid_request",
       "without code_challenge"},
      {user_app + "&scope=profile&scope=openid", "invalid_request",
       "more than once"},
      {user_app + "&prompt=none", "login_required", "sign in"},
  };
  for (const Case& c : cases) {
    httplib::Result res = client_->Get(c.path);
    ASSERT_TRUE(res) << c.path;
    EXPECT_EQ(res->status, 302) << c.path;
    EXPECT_THAT(res->get_header_value("Location"),
                StartsWith(callback_.callback_url() + "?error="))
        << c.path;
    std::map<std::string, std::string> query = LocationQuery(res);
    EXPECT_EQ(query["error"], c.error) << c.path;
    EXPECT_THAT(query["error_description"], HasSubstr(c.description)) << c.path;
    EXPECT_EQ(query["state"], kState) << c.path;
    EXPECT_EQ(query["iss"], Issuer()) << c.path;
  }
  EXPECT_EQ(emulator_->GetCounters().authorize_page_views, 0);
}

TEST_F(AuthorizeTest, OmittedRedirectUriUsesTheOnlyRegisteredOne) {
  const std::string url = absl::StrCat(
      emulator_->base_url(),
      "/accounts/api/v2/oauth2/authorize?response_type=code&client_id=members-"
      "app&scope=view%3Aenvironment&state=",
      kState);
  const std::string code = Flow(url)["code"];
  ASSERT_FALSE(code.empty());
  // Not sent to authorize: may be left out of the token request too, and if
  // sent must be the registered one.
  ExpectOAuthError(
      Exchange(code, "", "members-app", callback_.callback_url() + "/"),
      "invalid_grant");
  httplib::Result res =
      client_->Post(kTokenPath,
                    "grant_type=authorization_code&code=" + code +
                        "&client_id=members-app&client_secret=members-secret",
                    "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

// --- Codes
// ----------------------------------------------------------------------

TEST_F(AuthorizeTest, PkceS256) {
  // Good.
  httplib::Result res = Exchange(Code("view:environment"), kVerifier);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;

  // Missing or wrong verifier.
  const std::string code = Code("view:environment");
  ExpectOAuthError(Exchange(code, ""), "invalid_grant");
  ExpectOAuthError(Exchange(code, std::string(kVerifier).replace(0, 1, "e")),
                   "invalid_grant");
  ExpectOAuthError(Exchange(code, kChallenge), "invalid_grant");
  ExpectOAuthError(Exchange(code, "short"), "invalid_grant");
  // A failed attempt does not spend the code.
  res = Exchange(code, kVerifier);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;

  // A verifier for a code that had no challenge.
  const std::string plain_code =
      Code("view:environment", "user-app", "alice", "alice-pw", false);
  ExpectOAuthError(Exchange(plain_code, kVerifier), "invalid_grant");
  res = Exchange(plain_code, "");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(AuthorizeTest, CodeReplayRevokesTheTokensIssuedWithIt) {
  const std::string code = Code("view:environment offline_access");
  httplib::Result res = Exchange(code);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const std::string access = Json(res)["access_token"];
  const std::string refresh = Json(res)["refresh_token"];
  EXPECT_EQ(Environments(access)->status, 200);
  ASSERT_THAT(emulator_->ListGrants(), SizeIs(1));

  res = Exchange(code);
  ExpectOAuthError(res, "invalid_grant");
  EXPECT_THAT(Json(res)["error_description"].get<std::string>(),
              HasSubstr("already used"));
  EXPECT_EQ(Environments(access)->status, 401);
  ExpectOAuthError(Refresh(refresh), "invalid_grant");
  EXPECT_THAT(emulator_->ListGrants(), IsEmpty());
}

TEST_F(AuthorizeTest, CodeIsBoundToClientAndRedirectUri) {
  const std::string code = Code("view:environment");
  // Another client's credentials.
  ExpectOAuthError(Exchange(code, kVerifier, "members-app"), "invalid_grant");
  // The other registered URI, and none.
  ExpectOAuthError(Exchange(code, kVerifier, "user-app",
                            absl::StrCat("http://localhost:", callback_.port(),
                                         "/oauth/callback")),
                   "invalid_grant");
  httplib::Result res = client_->Post(
      kTokenPath,
      absl::StrCat("grant_type=authorization_code&code=", code,
                   "&code_verifier=", kVerifier,
                   "&client_id=user-app&client_secret=user-secret"),
      "application/x-www-form-urlencoded");
  ExpectOAuthError(res, "invalid_grant");
  res = Exchange(code);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(AuthorizeTest, CodesExpireAfterTenMinutes) {
  const std::string fresh = Code("view:environment");
  const std::string stale = Code("view:environment");
  ASSERT_THAT(emulator_->AdvanceTime(absl::Minutes(9)), IsOk());
  httplib::Result res = Exchange(fresh);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  ASSERT_THAT(emulator_->AdvanceTime(absl::Minutes(1)), IsOk());
  res = Exchange(stale);
  ExpectOAuthError(res, "invalid_grant");
  EXPECT_THAT(Json(res)["error_description"].get<std::string>(),
              HasSubstr("expired"));
  EXPECT_THAT(emulator_->AdvanceTime(absl::Seconds(-1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- Tokens of a user
// -------------------------------------------------------------

// Moved from emulator_test's auto-approved flow: code, tokens, userinfo, me,
// a resource, rotation and revocation of the refresh token.
TEST_F(AuthorizeTest, AuthorizationCodeThenRefreshWithRotation) {
  const Tokens tokens = Connect("profile offline_access view:environment");
  ASSERT_FALSE(tokens.refresh.empty());
  const httplib::Headers auth = {{"Authorization", "Bearer " + tokens.access}};
  httplib::Result res = client_->Get("/accounts/api/v2/oauth2/userinfo", auth);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["sub"], "user-1");
  EXPECT_EQ(Json(res)["username"], "alice");
  EXPECT_EQ(Json(res)["preferred_username"], "alice");
  res = client_->Get("/accounts/api/me", auth);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["user"]["id"], "user-1");
  EXPECT_EQ(Json(res)["user"]["username"], "alice");
  EXPECT_EQ(Json(res)["user"]["organization"]["id"], kOrg);
  EXPECT_EQ(Json(res)["user"]["organization"]["name"], "Acme Corp");
  EXPECT_EQ(Environments(tokens.access)->status, 200);

  res = Refresh(tokens.refresh);
  ASSERT_EQ(res->status, 200) << res->body;
  const std::string refresh2 = Json(res)["refresh_token"];
  EXPECT_NE(refresh2, tokens.refresh);
  EXPECT_EQ(Environments(Json(res)["access_token"])->status, 200);
  ASSERT_EQ(Refresh(refresh2)->status, 200);
  // refresh2 was used: the first one is spent.
  ExpectOAuthError(Refresh(tokens.refresh), "invalid_grant");

  // Revoking a refresh token through the revoke endpoint ends the grant.
  const Tokens other = Connect();
  res = client_->Post("/accounts/api/v2/oauth2/revoke",
                      "token=" + other.refresh +
                          "&client_id=user-app&client_secret=user-secret",
                      "application/x-www-form-urlencoded");
  EXPECT_EQ(res->status, 200);
  ExpectOAuthError(Refresh(other.refresh), "invalid_grant");
  EXPECT_EQ(Environments(other.access)->status, 401);
}

TEST_F(AuthorizeTest, RotationGraceAndReuseRevokesTheGrant) {
  const Tokens first = Connect();
  const Tokens second =
      Connect("view:environment offline_access", "user-app", "bob", "bob-pw");
  // r0 -> r1, and r0 again while r1 was never presented (a client that
  // crashed before it stored r1): a fresh pair, and r1 dies.
  httplib::Result res = Refresh(first.refresh);
  ASSERT_EQ(res->status, 200) << res->body;
  const std::string r1 = Json(res)["refresh_token"];
  res = Refresh(first.refresh);
  ASSERT_EQ(res->status, 200) << res->body;
  const std::string r2 = Json(res)["refresh_token"];
  EXPECT_NE(r2, r1);
  ExpectOAuthError(Refresh(r1), "invalid_grant");
  std::vector<GrantInfo> grants = emulator_->ListGrants();
  ASSERT_THAT(grants, SizeIs(2));
  EXPECT_EQ(grants[0].username, "alice");
  EXPECT_EQ(grants[0].live_refresh_tokens, 2);  // r0 and r2
  EXPECT_EQ(emulator_->GetCounters().refresh_token_reuse_detected, 0);

  // r2 is presented: r0 is spent; presenting it again is reuse.
  res = Refresh(r2);
  ASSERT_EQ(res->status, 200) << res->body;
  const std::string r3 = Json(res)["refresh_token"];
  const std::string a3 = Json(res)["access_token"];
  EXPECT_EQ(Environments(a3)->status, 200);
  res = Refresh(first.refresh);
  ExpectOAuthError(res, "invalid_grant");
  EXPECT_THAT(Json(res)["error_description"].get<std::string>(),
              HasSubstr("whole grant is revoked"));
  // The whole grant: every refresh and access token of it.
  ExpectOAuthError(Refresh(r3), "invalid_grant");
  ExpectOAuthError(Refresh(r2), "invalid_grant");
  EXPECT_EQ(Environments(a3)->status, 401);
  EXPECT_EQ(Environments(first.access)->status, 401);
  EXPECT_EQ(emulator_->GetCounters().refresh_token_reuse_detected, 1);
  // Bob's grant is untouched.
  grants = emulator_->ListGrants();
  ASSERT_THAT(grants, SizeIs(1));
  EXPECT_EQ(grants[0].username, "bob");
  EXPECT_EQ(Refresh(second.refresh)->status, 200);
}

TEST_F(AuthorizeTest, RotationOffPerAppAndBySetting) {
  // members-app: rotate_refresh_tokens: false in the fixture.
  const Tokens members =
      Connect("view:environment offline_access", "members-app");
  for (int i = 0; i < 3; ++i) {
    httplib::Result res = Refresh(members.refresh, "members-app");
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_FALSE(Json(res).contains("refresh_token"));
  }
  const Tokens user = Connect();
  ASSERT_THAT(emulator_->SetRotateRefreshTokens("user-app", false), IsOk());
  httplib::Result res = Refresh(user.refresh);
  ASSERT_EQ(res->status, 200);
  EXPECT_FALSE(Json(res).contains("refresh_token"));
  res = client_->Post("/_emulator/apps/user-app/rotation", R"({"rotate":true})",
                      "application/json");
  ASSERT_EQ(res->status, 200);
  res = Refresh(user.refresh);
  ASSERT_EQ(res->status, 200);
  EXPECT_TRUE(Json(res).contains("refresh_token"));
  EXPECT_THAT(emulator_->SetRotateRefreshTokens("nobody", true),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AuthorizeTest, RefreshTokenLifetimeCountsFromEachTokensIssue) {
  // members-app: refresh_token_lifetime_seconds: 3600, no rotation.
  const Tokens members =
      Connect("view:environment offline_access", "members-app");
  ASSERT_THAT(emulator_->AdvanceTime(absl::Seconds(3599)), IsOk());
  ASSERT_EQ(Refresh(members.refresh, "members-app")->status, 200);
  ASSERT_THAT(emulator_->AdvanceTime(absl::Seconds(1)), IsOk());
  httplib::Result res = Refresh(members.refresh, "members-app");
  ExpectOAuthError(res, "invalid_grant");
  EXPECT_THAT(Json(res)["error_description"].get<std::string>(),
              HasSubstr("expired"));

  // user-app: the default, 90 days, from each rotated token's issue.
  const Tokens user = Connect();
  ASSERT_THAT(emulator_->AdvanceTime(absl::Hours(24 * 60)), IsOk());
  res = Refresh(user.refresh);
  ASSERT_EQ(res->status, 200);
  const std::string rotated = Json(res)["refresh_token"];
  ASSERT_THAT(emulator_->AdvanceTime(absl::Hours(24 * 30)), IsOk());
  ExpectOAuthError(Refresh(user.refresh), "invalid_grant");
  res = Refresh(rotated);
  ASSERT_EQ(res->status, 200);
  const std::string latest = Json(res)["refresh_token"];

  // Shortened by test-control: applies to tokens already issued.
  ASSERT_EQ(client_
                ->Post("/_emulator/apps/user-app/refresh-token-lifetime",
                       R"({"seconds":60})", "application/json")
                ->status,
            200);
  ASSERT_THAT(emulator_->AdvanceTime(absl::Seconds(60)), IsOk());
  ExpectOAuthError(Refresh(latest), "invalid_grant");
  EXPECT_THAT(emulator_->SetRefreshTokenLifetime("user-app", 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(emulator_->SetRefreshTokenLifetime("nobody", 5),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AuthorizeTest, PasswordChangeRevokesEveryGrantOfTheUser) {
  const Tokens alice_user_app = Connect();
  const Tokens alice_members =
      Connect("view:environment offline_access", "members-app");
  const Tokens bob =
      Connect("view:environment offline_access", "user-app", "bob", "bob-pw");
  const std::string pending = Code("view:environment");
  ASSERT_THAT(emulator_->ListGrants(), SizeIs(3));

  httplib::Result res =
      client_->Post("/_emulator/users/alice/password",
                    R"({"password":"new-alice-pw"})", "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  for (const auto& [tokens, client] :
       {std::make_pair(alice_user_app, "user-app"),
        std::make_pair(alice_members, "members-app")}) {
    ExpectOAuthError(Refresh(tokens.refresh, client), "invalid_grant");
    EXPECT_EQ(Environments(tokens.access)->status, 401);
  }
  // A code issued before the change cannot be redeemed either.
  ExpectOAuthError(Exchange(pending), "invalid_grant");
  EXPECT_EQ(Refresh(bob.refresh)->status, 200);
  EXPECT_EQ(Environments(bob.access)->status, 200);
  ASSERT_THAT(emulator_->ListGrants(), SizeIs(1));

  // The old password no longer signs in; the new one does.
  absl::StatusOr<BrowserResponse> page = browser_.SignInAndConsent(
      AuthorizeUrl("view:environment"), "alice", "alice-pw", true);
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(page->body, HasSubstr("Incorrect username or password."));
  EXPECT_FALSE(Connect("view:environment offline_access", "user-app", "alice",
                       "new-alice-pw")
                   .access.empty());

  // By user id too; errors.
  EXPECT_THAT(emulator_->SetUserPassword("user-2", "new-bob-pw"), IsOk());
  EXPECT_EQ(Environments(bob.access)->status, 401);
  EXPECT_THAT(emulator_->SetUserPassword("nobody", "x"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(emulator_->SetUserPassword("alice", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(AuthorizeTest, SignedInBeforeAPasswordChangeCannotConsent) {
  BrowserResponse sign_in;
  absl::StatusOr<BrowserResponse> consent =
      SignIn(AuthorizeUrl("view:environment"), &sign_in);
  ASSERT_THAT(consent, IsOk());
  ASSERT_THAT(emulator_->SetUserPassword("alice", "changed"), IsOk());
  absl::StatusOr<BrowserResponse> done =
      browser_.SubmitForm(*consent, kConsent, {{"decision", "approve"}});
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->status, 400);
  EXPECT_THAT(callback_.callbacks(), IsEmpty());
}

TEST_F(AuthorizeTest, ListAndRevokeGrants) {
  const Tokens alice = Connect("view:environment offline_access");
  const Tokens bob =
      Connect("view:environment offline_access", "user-app", "bob", "bob-pw");
  std::vector<GrantInfo> grants = emulator_->ListGrants();
  ASSERT_THAT(grants, SizeIs(2));
  EXPECT_EQ(grants[0].user_id, "user-1");
  EXPECT_EQ(grants[0].client_id, "user-app");
  EXPECT_THAT(grants[0].scopes,
              ElementsAre("view:environment", "offline_access"));
  EXPECT_EQ(grants[0].live_refresh_tokens, 1);
  EXPECT_EQ(grants[1].username, "bob");

  httplib::Result res = client_->Get("/_emulator/grants");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["grants"][1]["user_id"], "user-2");
  EXPECT_EQ(Json(res)["grants"][1]["live_refresh_tokens"], 1);
  // Never a token value.
  for (const std::string& token :
       {alice.access, alice.refresh, bob.access, bob.refresh}) {
    EXPECT_THAT(res->body, Not(HasSubstr(token)));
  }

  res = client_->Post("/_emulator/grants/" + grants[0].grant_id + "/revoke", "",
                      "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  ExpectOAuthError(Refresh(alice.refresh), "invalid_grant");
  EXPECT_EQ(Environments(alice.access)->status, 401);
  EXPECT_EQ(Environments(bob.access)->status, 200);
  EXPECT_THAT(emulator_->RevokeGrant(grants[0].grant_id),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(emulator_->RevokeGrant(grants[1].grant_id), IsOk());
  EXPECT_EQ(Environments(bob.access)->status, 401);
  EXPECT_THAT(emulator_->ListGrants(), IsEmpty());
}

// Moved from emulator_test: only the consented scopes, and no refresh token
// without offline_access.
TEST_F(AuthorizeTest, UserTokensHoldOnlyConsentedScopes) {
  const Tokens tokens =
      Connect("view:design_center", "user-app", "bob", "bob-pw");
  EXPECT_TRUE(tokens.refresh.empty());
  EXPECT_EQ(Environments(tokens.access)->status, 403);
  httplib::Result res =
      client_->Get("/designcenter/api-designer/projects",
                   {{"Authorization", "Bearer " + tokens.access},
                    {"X-ORGANIZATION-ID", kOrg}});
  EXPECT_EQ(res->status, 200);
  res = client_->Get("/accounts/api/v2/oauth2/userinfo",
                     {{"Authorization", "Bearer " + tokens.access}});
  EXPECT_EQ(Json(res)["username"], "bob");
}

TEST_F(AuthorizeTest, UserTokensReachOnlyTheirUsersOrganizations) {
  // user-app lets anyone consent; olga is in Other Corp only.
  const Tokens olga =
      Connect("view:environment offline_access", "user-app", "olga", "olga-pw");
  httplib::Result res = Environments(olga.access, kOrg);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_THAT(Json(res)["message"].get<std::string>(),
              HasSubstr("olga is not a member of organization"));
  // Her own org: a member, but the app's scope is for Acme only.
  res = Environments(olga.access, kOtherOrg);
  EXPECT_EQ(res->status, 403);
  EXPECT_THAT(Json(res)["message"].get<std::string>(),
              HasSubstr("lacks the scope view:environment"));
  res = client_->Get("/accounts/api/me",
                     {{"Authorization", "Bearer " + olga.access}});
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["user"]["organization"]["name"], "Other Corp");

  // max is a member of Acme through org_ids.
  const Tokens max =
      Connect("view:environment offline_access", "user-app", "max", "max-pw");
  res = Environments(max.access, kOrg);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["total"], 1);
  res = client_->Get("/accounts/api/me",
                     {{"Authorization", "Bearer " + max.access}});
  EXPECT_THAT(Json(res)["user"]["memberOfOrganizations"], SizeIs(2));
}

// --- Test control and counters
// -------------------------------------------------

TEST_F(AuthorizeTest, CountersOfTheFlowAndTheTokenEndpoint) {
  emulator_->ResetCounters();
  const Tokens tokens = Connect();
  Refresh(tokens.refresh);
  Flow(AuthorizeUrl("view:environment"), "alice", "alice-pw", false);
  client_->Post(kTokenPath,
                "grant_type=client_credentials&client_id=cc-app&client_"
                "secret=cc-secret",
                "application/x-www-form-urlencoded");
  client_->Post(kTokenPath, "grant_type=password",
                "application/x-www-form-urlencoded");
  Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.authorize_page_views, 2);
  EXPECT_EQ(counters.logins_ok, 2);
  EXPECT_EQ(counters.consents_approved, 1);
  EXPECT_EQ(counters.consents_denied, 1);
  EXPECT_EQ(counters.token_requests_by_grant_type["authorization_code"], 1);
  EXPECT_EQ(counters.token_requests_by_grant_type["refresh_token"], 1);
  EXPECT_EQ(counters.token_requests_by_grant_type["client_credentials"], 1);
  EXPECT_EQ(counters.token_requests_by_grant_type["other"], 1);
  EXPECT_EQ(counters.requests_by_endpoint["authorize"], 2);
  EXPECT_EQ(counters.requests_by_endpoint["authorize_login"], 2);
  EXPECT_EQ(counters.requests_by_endpoint["authorize_consent"], 2);

  httplib::Result res = client_->Get("/_emulator/counters");
  ASSERT_EQ(res->status, 200);
  const json body = Json(res);
  EXPECT_EQ(body["logins_ok"], 2);
  EXPECT_EQ(body["logins_failed"], 0);
  EXPECT_EQ(body["consents_denied"], 1);
  EXPECT_EQ(body["authorize_page_views"], 2);
  EXPECT_EQ(body["refresh_token_reuse_detected"], 0);
  EXPECT_EQ(body["token_requests_by_grant_type"]["refresh_token"], 1);
}

TEST_F(AuthorizeTest, ControlApiOfTheFlow) {
  const Tokens tokens = Connect();
  httplib::Result res = client_->Post(
      "/_emulator/advance-time", R"({"seconds":3600})", "application/json");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Environments(tokens.access)->status, 401);  // expired

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"/_emulator/advance-time", R"({"seconds":-1})"},
      {"/_emulator/advance-time", R"({})"},
      {"/_emulator/apps/user-app/rotation", R"({"rotate":"yes"})"},
      {"/_emulator/apps/user-app/refresh-token-lifetime", R"({"seconds":0})"},
      {"/_emulator/apps/user-app/refresh-token-lifetime", R"({})"},
      {"/_emulator/users/alice/password", R"({"password":""})"},
      {"/_emulator/users/alice/password", R"({"password":5})"},
      {"/_emulator/users/alice/password", "not json"},
  };
  for (const auto& [path, body] : bad) {
    res = client_->Post(path, body, "application/json");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 400) << path << " " << body;
    EXPECT_TRUE(Json(res).contains("message")) << path;
  }
  const std::vector<std::pair<std::string, std::string>> unknown = {
      {"/_emulator/apps/nobody/rotation", R"({"rotate":true})"},
      {"/_emulator/apps/nobody/refresh-token-lifetime", R"({"seconds":5})"},
      {"/_emulator/users/nobody/password", R"({"password":"x"})"},
      {"/_emulator/grants/nope/revoke", ""},
  };
  for (const auto& [path, body] : unknown) {
    res = client_->Post(path, body, "application/json");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
  }
  // The password is never echoed.
  res = client_->Post("/_emulator/users/alice/password",
                      R"({"password":"s3cret-new"})", "application/json");
  EXPECT_THAT(res->body, Not(HasSubstr("s3cret-new")));
}

TEST_F(AuthorizeTest, RedirectUrisCanBeAddedForAClientOnAPickedPort) {
  const std::string other = "http://127.0.0.1:1/oauth/callback";
  const std::string url = absl::StrCat(
      emulator_->base_url(),
      "/accounts/api/v2/oauth2/authorize?response_type=code&client_id=user-app"
      "&redirect_uri=",
      Enc(other), "&scope=profile&state=", kState);
  absl::StatusOr<BrowserResponse> page = browser_.Get(url);
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->status, 400);
  httplib::Result res = client_->Post(
      "/_emulator/apps/user-app/redirect-uris",
      absl::StrCat(R"({"redirect_uri":")", other, R"("})"), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  page = browser_.Get(url);
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("Sign in to Anypoint Platform"));
  EXPECT_THAT(emulator_->AddRedirectUri("nobody", other),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(emulator_->AddRedirectUri("user-app", "x#y"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tokenbroker::emulator
