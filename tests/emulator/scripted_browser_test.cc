// The scripted browser (tests/testing/scripted_browser.h) against the
// emulator and a CallbackServer standing in for the client: forms, cookies
// (path, SameSite, deletion), redirects and their limits.

#include "tests/testing/scripted_browser.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/emulator/callback_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::emulator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;
using ::tokenbroker::testing::BrowserResponse;
using ::tokenbroker::testing::HtmlForm;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::ParseForms;
using ::tokenbroker::testing::ScriptedBrowser;
using ::tokenbroker::testing::StatusIs;

constexpr char kFixture[] = R"yaml(
organizations:
  - {id: acme, name: Acme Corp}
users:
  - {id: user-1, username: alice, org_id: acme, password: alice-pw}
apps:
  - client_id: user-app
    client_secret: user-secret
    name: User App
    org_id: acme
    grant_types: [authorization_code, refresh_token]
    redirect_uris: [CALLBACK, ALT]
)yaml";

std::string Enc(const std::string& s) {
  return httplib::detail::encode_query_param(s);
}

class ScriptedBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string yaml = kFixture;
    yaml.replace(yaml.find("CALLBACK"), 8, callback_.callback_url());
    yaml.replace(yaml.find("ALT"), 3, Localhost("/oauth/callback"));
    absl::StatusOr<Fixture> fixture = ParseFixture(yaml, "test fixture");
    ASSERT_THAT(fixture, IsOk());
    emulator_ = std::make_unique<Emulator>(*std::move(fixture));
    ASSERT_THAT(emulator_->Start(Options()), IsOk());
  }

  std::string Localhost(const std::string& path) const {
    return absl::StrCat("http://localhost:", callback_.port(), path);
  }
  std::string Loopback(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", callback_.port(), path);
  }
  std::string AuthorizeUrl(const std::string& redirect_uri) const {
    return absl::StrCat(emulator_->base_url(),
                        "/accounts/api/v2/oauth2/authorize?response_type=code&"
                        "client_id=user-app&state=s1&redirect_uri=",
                        Enc(redirect_uri));
  }

  CallbackServer callback_;
  std::unique_ptr<Emulator> emulator_;
  ScriptedBrowser browser_;
};

TEST(ParseFormsTest, FormsInputsAndButtons) {
  const std::vector<HtmlForm> forms = ParseForms(R"html(
    <p>before</p><input name="outside" value="x">
    <FORM Method=POST action='/a?x=1&amp;y=2'>
      <!-- <input name="commented" value="no"> -->
      <input type="hidden" name="txn" value="t&quot;1&#39;&#x41;">
      <input name=user value=bob>
      <input id="password" type="password" name="password">
      <input type="checkbox" name="off" value="1">
      <input type="checkbox" name="on" checked>
      <input type="submit" name="go" value="Go">
      <button type="submit" name="decision" value="approve">Approve</button>
      <button type="button" name="ignored" value="1">No</button>
      <input value="nameless">
    </form>
    <form action="/b"><input type="hidden" name="k" value="v"></form>)html");
  ASSERT_THAT(forms, SizeIs(2));
  EXPECT_EQ(forms[0].method, "post");
  EXPECT_EQ(forms[0].action, "/a?x=1&y=2");
  EXPECT_THAT(forms[0].inputs,
              ElementsAre(Pair("txn", "t\"1'A"), Pair("user", "bob"),
                          Pair("password", ""), Pair("on", "on")));
  EXPECT_THAT(forms[0].buttons,
              ElementsAre(Pair("go", "Go"), Pair("decision", "approve")));
  EXPECT_EQ(forms[1].method, "get");
  EXPECT_EQ(forms[1].action, "/b");
  EXPECT_THAT(forms[1].inputs, ElementsAre(Pair("k", "v")));
  EXPECT_THAT(ParseForms("<p>no form</p>"), IsEmpty());
}

TEST_F(ScriptedBrowserTest, SignInAndConsentCarriesTheClientsCookie) {
  callback_.set_start_location(AuthorizeUrl(callback_.callback_url()), "v1");
  absl::StatusOr<BrowserResponse> last = browser_.SignInAndConsent(
      callback_.start_url(), "alice", "alice-pw", /*approve=*/true);
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->status, 200);
  EXPECT_EQ(last->body, "callback");
  EXPECT_THAT(last->url, HasSubstr("/oauth/callback?code="));
  ASSERT_THAT(last->chain, SizeIs(2));  // the consent POST, the callback
  ASSERT_THAT(callback_.callbacks(), SizeIs(1));
  const CallbackServer::Callback callback = callback_.callbacks()[0];
  EXPECT_EQ(callback.query.at("state"), "s1");
  EXPECT_EQ(callback.query.at("code").size(), 64u);
  EXPECT_EQ(callback.query.at("iss"),
            emulator_->base_url() + "/accounts/api/v2/oauth2");
  // Same host, another port: same site, every cookie goes along.
  EXPECT_EQ(callback.cookie, "tb_flow=v1; tb_none=v1; tb_strict=v1");
  const std::string host = absl::StrCat("127.0.0.1:", callback_.port());
  EXPECT_EQ(browser_.CookieValue(host, "tb_flow"), "v1");
  // Per host:port: the emulator never saw it.
  EXPECT_EQ(browser_.CookieValue(absl::StrCat("127.0.0.1:", emulator_->port()),
                                 "tb_flow"),
            "");

  // Path=/oauth: not sent to /cookie; Max-Age=0 deletes.
  absl::StatusOr<BrowserResponse> res = browser_.Get(Loopback("/cookie"));
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->body, "");
  ASSERT_THAT(browser_.Get(Loopback("/oauth/forget")), IsOk());
  EXPECT_EQ(browser_.CookieValue(host, "tb_flow"), "");
  res = browser_.Get(Loopback("/oauth/cookie"));
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->body, "tb_none=v1; tb_strict=v1");
}

TEST_F(ScriptedBrowserTest, DenyAndWrongPasswordStopWhereThePagesStop) {
  callback_.set_start_location(AuthorizeUrl(callback_.callback_url()), "v2");
  absl::StatusOr<BrowserResponse> last = browser_.SignInAndConsent(
      callback_.start_url(), "alice", "alice-pw", /*approve=*/false);
  ASSERT_THAT(last, IsOk());
  ASSERT_THAT(callback_.callbacks(), SizeIs(1));
  EXPECT_EQ(callback_.callbacks()[0].query.at("error"), "access_denied");
  // The description had %20s: they arrive as spaces.
  EXPECT_THAT(callback_.callbacks()[0].query.at("error_description"),
              HasSubstr("the user denied access"));

  last =
      browser_.SignInAndConsent(callback_.start_url(), "alice", "nope", true);
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->status, 200);
  EXPECT_THAT(last->body, HasSubstr("Incorrect username or password."));
  EXPECT_THAT(callback_.callbacks(), SizeIs(1));

  // A start URL with an error: the last response is the error page.
  last = browser_.SignInAndConsent(AuthorizeUrl("http://127.0.0.1:1/nope"),
                                   "alice", "alice-pw", true);
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->status, 400);
}

TEST_F(ScriptedBrowserTest, SameSiteAcrossLoopbackSites) {
  // Cookies set for localhost; the emulator is on 127.0.0.1, another site.
  callback_.set_start_location(AuthorizeUrl(Localhost("/oauth/callback")),
                               "v3");
  absl::StatusOr<BrowserResponse> last = browser_.SignInAndConsent(
      Localhost("/oauth/start"), "alice", "alice-pw", true);
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->body, "callback");
  // Cross-site top-level GET after the consent POST: Lax and None, not
  // Strict.
  ASSERT_THAT(callback_.callbacks(), SizeIs(1));
  EXPECT_EQ(callback_.callbacks()[0].cookie, "tb_flow=v3; tb_none=v3");

  // Typed: every cookie.
  absl::StatusOr<BrowserResponse> res =
      browser_.Get(Localhost("/oauth/cookie"));
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->body, "tb_flow=v3; tb_none=v3; tb_strict=v3");
  // A cross-site POST: None only.
  res = browser_.Get(Loopback("/form?to=" + Enc(Localhost("/oauth/cookie"))));
  ASSERT_THAT(res, IsOk());
  res = browser_.SubmitForm(*res, Localhost("/oauth/cookie"), {});
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->body, "tb_none=v3");
  // A same-site POST: all of them.
  res = browser_.Get(Localhost("/form?to=%2Foauth%2Fcookie"));
  ASSERT_THAT(res, IsOk());
  res = browser_.SubmitForm(*res, "/oauth/cookie", {{"b", "2"}});
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->body, "tb_flow=v3; tb_none=v3; tb_strict=v3");
}

TEST_F(ScriptedBrowserTest, RedirectsAndTheirLimits) {
  // Relative Location, 303 after a POST becomes a GET.
  absl::StatusOr<BrowserResponse> res =
      browser_.Get(Loopback("/redirect?to=oauth%2Fcallback%3Fx%3D1"));
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->url, Loopback("/oauth/callback?x=1"));
  EXPECT_THAT(res->chain, SizeIs(2));
  res =
      browser_.Get(Loopback("/form?to=" + Enc("/redirect?status=303&to=" +
                                              Enc(Loopback("/oauth/cookie")))));
  ASSERT_THAT(res, IsOk());
  const std::vector<HtmlForm> forms = ParseForms(res->body);
  ASSERT_THAT(forms, SizeIs(1));
  res = browser_.SubmitForm(*res, forms[0].action, {});
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->url, Loopback("/oauth/cookie"));
  EXPECT_THAT(res->chain, SizeIs(2));

  // Ten redirects are followed, not eleven.
  const std::string to = Enc(Loopback("/oauth/callback"));
  res = browser_.Get(Loopback("/redirect?hops=9&to=" + to));
  ASSERT_THAT(res, IsOk());
  EXPECT_EQ(res->body, "callback");
  EXPECT_THAT(res->chain, SizeIs(11));
  EXPECT_THAT(browser_.Get(Loopback("/redirect?hops=10&to=" + to)),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // Off loopback, https, and a closed port.
  EXPECT_THAT(
      browser_.Get(Loopback("/redirect?to=http%3A%2F%2Fexample.com%2F")),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(browser_.Get("https://127.0.0.1/"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(browser_.Get("http://10.0.0.1/"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(browser_.Get("http://127.0.0.1:1/"),
              StatusIs(absl::StatusCode::kUnavailable));
  // A form that is not on the page.
  res = browser_.Get(Loopback("/cookie"));
  ASSERT_THAT(res, IsOk());
  EXPECT_THAT(browser_.SubmitForm(*res, "/x", {}),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace tokenbroker::emulator
