#include "service/auth/policy.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kApps[] =
    "apps:\n"
    "  - {name: dc, base_url: 'http://127.0.0.1:1', client_id: id,\n"
    "     client_secret: {file: /dev/null},\n"
    "     scopes: [view:design_center, view:environment, read:exchange]}\n"
    "  - {name: ex, base_url: 'http://127.0.0.1:1', client_id: id2,\n"
    "     client_secret: {file: /dev/null}, scopes: [read:exchange]}\n"
    "  - {name: other, base_url: 'http://127.0.0.1:1', client_id: id3,\n"
    "     client_secret: {file: /dev/null}, scopes: [a]}\n";

Config Parse(const std::string& callers) {
  absl::StatusOr<Config> config =
      ParseConfig(absl::StrCat(kApps, "callers:\n", callers), "policy.yaml");
  EXPECT_THAT(config, IsOk());
  return config.ok() ? *std::move(config) : Config();
}

// The rule as the config parser builds it from "METHOD /pattern".
RouteRule Rule(const std::string& text) {
  Config config =
      Parse(absl::StrCat("  - name: c\n    grants:\n"
                         "      - {app: dc, routes: ['",
                         text, "']}\n"));
  if (config.callers.empty() || config.callers[0].grants.empty() ||
      config.callers[0].grants[0].routes.empty()) {
    ADD_FAILURE() << "route " << text << " did not parse";
    return RouteRule();
  }
  return config.callers[0].grants[0].routes[0];
}

struct RouteCase {
  std::string rule;
  std::string method;
  std::string path;
  bool matches;
};

std::ostream& operator<<(std::ostream& os, const RouteCase& c) {
  return os << "'" << c.rule << "' vs " << c.method << " " << c.path;
}

class RouteMatchesTest : public ::testing::TestWithParam<RouteCase> {};

TEST_P(RouteMatchesTest, Matches) {
  const RouteCase& c = GetParam();
  EXPECT_EQ(RouteMatches(Rule(c.rule), c.method, c.path), c.matches) << c;
}

INSTANTIATE_TEST_SUITE_P(
    Table, RouteMatchesTest,
    ::testing::Values(
        // Literal paths: exact, no trailing slash, query ignored.
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/me", true},
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/me/", false},
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/me?x=1", true},
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/me?a=/b/c",
                  true},
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api", false},
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/me/x", false},
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/mex", false},
        RouteCase{"GET /accounts/api/me", "GET", "accounts/api/me", false},
        RouteCase{"GET /accounts/api/me", "GET", "", false},
        RouteCase{"GET /accounts/api/me", "GET", "//accounts/api/me", false},
        // Methods: exact and case-sensitive; * is any.
        RouteCase{"GET /a", "POST", "/a", false},
        RouteCase{"GET /a", "get", "/a", false},
        RouteCase{"* /a", "DELETE", "/a", true},
        RouteCase{"* /a", "PATCH", "/a?q", true},
        // * is exactly one non-empty segment.
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/o1/envs", true},
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs//envs", false},
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/o1/o2/envs", false},
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/envs", false},
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/o1/envs/", false},
        RouteCase{"GET /orgs/*", "GET", "/orgs/o1", true},
        RouteCase{"GET /orgs/*", "GET", "/orgs/", false},
        RouteCase{"GET /orgs/*", "GET", "/orgs", false},
        RouteCase{"GET /orgs/*", "GET", "/orgs/o1?x=/y", true},
        // ** is the rest of the path, possibly empty.
        RouteCase{"GET /exchange/**", "GET", "/exchange", true},
        RouteCase{"GET /exchange/**", "GET", "/exchange/", true},
        RouteCase{"GET /exchange/**", "GET", "/exchange/a/b/c", true},
        RouteCase{"GET /exchange/**", "GET", "/exchange//a", true},
        RouteCase{"GET /exchange/**", "GET", "/exchangeX/a", false},
        RouteCase{"GET /exchange/**", "GET", "/other/exchange/a", false},
        RouteCase{"GET /orgs/*/**", "GET", "/orgs/o1/a/b", true},
        RouteCase{"GET /orgs/*/**", "GET", "/orgs//a", false},
        RouteCase{"* /**", "PUT", "/", true},
        RouteCase{"* /**", "GET", "/anything/at/all?x=y", true},
        RouteCase{"* /**", "GET", "no-leading-slash", false},
        // The root.
        RouteCase{"GET /", "GET", "/", true},
        RouteCase{"GET /", "GET", "/?q=1", true},
        RouteCase{"GET /", "GET", "/a", false},
        // Dot segments never match: the server would resolve them to a
        // path the rule does not grant.
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/../envs", false},
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/./envs", false},
        RouteCase{"GET /orgs/**", "GET", "/orgs/../admin", false},
        RouteCase{"GET /orgs/**", "GET", "/orgs/a/./b", false},
        RouteCase{"GET /orgs/**", "GET", "/orgs/%2e%2e/admin", false},
        RouteCase{"GET /orgs/**", "GET", "/orgs/%2E./admin", false},
        RouteCase{"* /**", "GET", "/..", false},
        RouteCase{"GET /orgs/**", "GET", "/orgs/a..b/c", true},
        // Path parameters: servlet containers read "..;" as "..", so
        // "/designcenter/..;/accounts/api/me" is /accounts/api/me there.
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/..;/accounts/api/me", false},
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/..%3b/accounts/api/me", false},
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/..%3B/accounts/api/me", false},
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/..%253b/accounts/api/me", false},
        RouteCase{"GET /designcenter/**", "GET", "/designcenter/.;/x", false},
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/%2e%2e;x=1/accounts/api/me", false},
        RouteCase{"GET /designcenter/*", "GET", "/designcenter/a;b", false},
        // Overlong and invalid UTF-8, malformed escapes.
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/%c0%ae%c0%ae/accounts/api/me", false},
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/%e0%80%ae%e0%80%ae/accounts", false},
        RouteCase{"GET /designcenter/*", "GET", "/designcenter/%ed%a0%80",
                  false},
        RouteCase{"GET /designcenter/**", "GET",
                  "/designcenter/%ef%bc%8e%ef%bc%8e/accounts", false},
        RouteCase{"GET /designcenter/*", "GET", "/designcenter/%zz", false},
        RouteCase{"GET /designcenter/*", "GET", "/designcenter/a%", false},
        // Encoded separators and other things the validator refuses.
        RouteCase{"GET /designcenter/*", "GET", "/designcenter/a%2fb", false},
        RouteCase{"GET /designcenter/**", "GET", "/designcenter/a\\b", false},
        RouteCase{"GET /designcenter/**", "GET", "/designcenter/a b", false},
        RouteCase{"GET /designcenter/**", "GET", "/designcenter/a#b", false},
        // Segments compare decoded, as the server sees them.
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/m%65", true},
        RouteCase{"GET /orgs/*/envs", "GET", "/orgs/o%201/envs", true},
        RouteCase{"GET /designcenter/**", "GET", "/designcenter/caf%c3%a9",
                  true},
        // A ';' in the query is not a path parameter.
        RouteCase{"GET /accounts/api/me", "GET", "/accounts/api/me?a=1;b=..;",
                  true}));

constexpr char kCallers[] =
    "  - name: reader\n"
    "    grants:\n"
    "      - {app: ex, scopes: [read:exchange]}\n"
    "      - app: dc\n"
    "        scopes: [read:exchange]\n"
    "        routes: ['GET /exchange/api/v2/assets/**']\n"
    "  - name: full\n"
    "    admin: true\n"
    "    grants:\n"
    "      - {app: dc, scopes: ['*'], routes: ['* /**']}\n"
    "      - {app: ex, scopes: [read:exchange]}\n"
    "  - name: call-only\n"
    "    grants:\n"
    "      - app: dc\n"
    "        scopes: [view:environment]\n"
    "        get_token: false\n"
    "        routes: ['GET /accounts/api/organizations/*/environments',\n"
    "                 'POST /designcenter/api/v1/**']\n"
    "  - name: no-scopes\n"
    "    grants:\n"
    "      - {app: dc, routes: ['GET /accounts/api/me']}\n"
    "  - name: env-reader\n"
    "    grants:\n"
    "      - {app: dc, scopes: [view:environment], routes: ['* /**']}\n"
    "  - name: ex-only\n"
    "    grants:\n"
    "      - {app: ex, scopes: [read:exchange], routes: ['* /**']}\n";

class PolicyTest : public ::testing::Test {
 protected:
  const CallerConfig& Caller(const std::string& name) {
    for (const CallerConfig& c : config_.callers) {
      if (c.name == name) return c;
    }
    ADD_FAILURE() << "no caller " << name;
    return config_.callers[0];
  }
  const AppConfig& App(const std::string& name) {
    const AppConfig* app = config_.FindApp(name);
    EXPECT_NE(app, nullptr) << name;
    return *app;
  }

  Config config_ = Parse(kCallers);
};

TEST_F(PolicyTest, TokenNeedsAGrantForTheApp) {
  EXPECT_THAT(AuthorizeToken(Caller("reader"), App("other"), {}),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("reader"), HasSubstr("no grant"),
                             HasSubstr("other"))));
  EXPECT_THAT(AuthorizeToken(Caller("full"), App("other"), {"a"}),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(PolicyTest, TokenNeedsEveryRequestedScope) {
  EXPECT_THAT(AuthorizeToken(Caller("reader"), App("dc"), {"read:exchange"}),
              IsOk());
  EXPECT_THAT(AuthorizeToken(Caller("reader"), App("dc"),
                             {"read:exchange", "view:environment"}),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("view:environment"), HasSubstr("app dc"),
                             Not(HasSubstr("[read:exchange view")))));
  EXPECT_THAT(
      AuthorizeToken(Caller("reader"), App("dc"), {"view:design_center"}),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("view:design_center"),
                     HasSubstr("allows [read:exchange]"))));
}

TEST_F(PolicyTest, StarGrantsEveryScopeOfTheApp) {
  for (const std::vector<std::string>& scopes :
       std::vector<std::vector<std::string>>{
           {},
           {"view:design_center"},
           {"view:design_center", "view:environment", "read:exchange"}}) {
    EXPECT_THAT(AuthorizeToken(Caller("full"), App("dc"), scopes), IsOk());
  }
}

TEST_F(PolicyTest, NoScopesRequestedMeansEveryScopeOfTheApp) {
  // A token asked for without scopes carries all of the app's scopes, so
  // only a grant covering all of them allows it.
  EXPECT_THAT(AuthorizeToken(Caller("reader"), App("dc"), {}),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("view:design_center"),
                             HasSubstr("view:environment"))));
  // ex has only read:exchange, which reader holds.
  EXPECT_THAT(AuthorizeToken(Caller("reader"), App("ex"), {}), IsOk());
  EXPECT_THAT(AuthorizeToken(Caller("no-scopes"), App("dc"), {}),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(PolicyTest, GetTokenFalseRefusesTokensButAllowsCall) {
  EXPECT_THAT(
      AuthorizeToken(Caller("call-only"), App("dc"), {"view:environment"}),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("call-only"), HasSubstr("get_token: false"))));
  EXPECT_THAT(
      AuthorizeCall(Caller("call-only"), App("dc"), {"view:environment"}, "GET",
                    "/accounts/api/organizations/o1/environments"),
      IsOk());
  EXPECT_THAT(
      AuthorizeCall(Caller("call-only"), App("dc"), {"view:environment"},
                    "POST", "/designcenter/api/v1/projects/p1/branches"),
      IsOk());
}

TEST_F(PolicyTest, CallNeedsAMatchingRoute) {
  EXPECT_THAT(
      AuthorizeCall(Caller("call-only"), App("dc"), {"view:environment"},
                    "DELETE",
                    "/accounts/api/organizations/o1/environments?force=1"),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("DELETE /accounts/api/organizations/o1/"
                               "environments"),
                     Not(HasSubstr("force=1")),
                     HasSubstr("GET /accounts/api/organizations/*/"
                               "environments"),
                     HasSubstr("POST /designcenter/api/v1/**"))));
  EXPECT_THAT(AuthorizeCall(Caller("reader"), App("dc"), {"read:exchange"},
                            "GET", "/exchange/api/v2/assets/g/a/1.0.0"),
              IsOk());
  EXPECT_THAT(AuthorizeCall(Caller("reader"), App("dc"), {"read:exchange"},
                            "GET", "/exchange/api/v1/assets"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(PolicyTest, CallWithoutRoutesIsRefused) {
  // reader's grant of ex has scopes but no routes: tokens only.
  EXPECT_THAT(AuthorizeCall(Caller("reader"), App("ex"), {"read:exchange"},
                            "GET", "/exchange/api/v2/assets"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("route"), HasSubstr("[]"))));
}

TEST_F(PolicyTest, CallNeedsTheScopesToo) {
  EXPECT_THAT(
      AuthorizeCall(Caller("call-only"), App("dc"), {"view:design_center"},
                    "GET", "/accounts/api/organizations/o1/environments"),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("view:design_center")));
  EXPECT_THAT(AuthorizeCall(Caller("call-only"), App("ex"), {}, "GET",
                            "/accounts/api/organizations/o1/environments"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("no grant for app ex")));
  // A grant without scopes covers no scope, and no scopes named means all
  // of the app's: such a grant allows no Call.
  EXPECT_THAT(AuthorizeCall(Caller("no-scopes"), App("dc"), {}, "GET",
                            "/accounts/api/me"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("all of its scopes")));
}

// Issue 10, defect 6: Call skipped the rule that no scopes means all of the
// app's scopes, so a caller granted view:environment only got a Call with
// scopes [] through, and was refused with [view:design_center].
TEST_F(PolicyTest, CallWithNoScopesMeansEveryScopeOfTheApp) {
  EXPECT_THAT(AuthorizeCall(Caller("call-only"), App("dc"), {}, "GET",
                            "/accounts/api/organizations/o1/environments"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("all of its scopes"),
                             HasSubstr("view:design_center"),
                             HasSubstr("read:exchange"))));
  EXPECT_THAT(
      AuthorizeCall(Caller("call-only"), App("dc"), {"view:design_center"},
                    "GET", "/accounts/api/organizations/o1/environments"),
      StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(
      AuthorizeCall(Caller("call-only"), App("dc"), {"view:environment"}, "GET",
                    "/accounts/api/organizations/o1/environments"),
      IsOk());
}

// One scope rule for every RPC: with a route that matches everything,
// AuthorizeCall and AuthorizeToken agree on every set of scopes, with the
// same message.
TEST_F(PolicyTest, TokenAndCallApplyTheSameScopeRule) {
  const std::vector<std::vector<std::string>> scope_sets = {
      {},
      {"view:environment"},
      {"view:design_center"},
      {"read:exchange"},
      {"view:environment", "read:exchange"},
      {"view:design_center", "view:environment", "read:exchange"},
      {"profile"},
      {"not:held"}};
  for (const char* caller : {"env-reader", "full", "ex-only"}) {
    for (const char* app : {"dc", "ex"}) {
      const AppGrant* grant = Caller(caller).FindGrant(app);
      if (grant == nullptr || grant->routes.empty()) continue;
      for (const std::vector<std::string>& scopes : scope_sets) {
        absl::Status token = AuthorizeToken(Caller(caller), App(app), scopes);
        absl::Status call =
            AuthorizeCall(Caller(caller), App(app), scopes, "GET", "/x");
        EXPECT_EQ(token, call) << caller << " " << app << " ["
                               << absl::StrJoin(scopes, " ") << "]";
      }
    }
  }
  EXPECT_THAT(
      AuthorizeCall(Caller("full"), App("dc"), {"not:held"}, "GET", "/x"),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("does not hold scope(s) [not:held]")));
}

TEST_F(PolicyTest, AdminNeedsTheAdminRole) {
  for (const char* rpc :
       {"ListApps", "RefreshToken", "RevokeToken", "ReloadConfig"}) {
    EXPECT_THAT(AuthorizeAdmin(Caller("full"), rpc), IsOk());
    EXPECT_THAT(AuthorizeAdmin(Caller("reader"), rpc),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr(absl::StrCat("BrokerAdmin.", rpc)),
                               HasSubstr("admin role"), HasSubstr("reader"))));
  }
}

TEST_F(PolicyTest, GrantCoversScopes) {
  const AppGrant* grant = Caller("reader").FindGrant("dc");
  ASSERT_NE(grant, nullptr);
  EXPECT_TRUE(GrantCoversScopes(*grant, {"read:exchange"}));
  EXPECT_FALSE(GrantCoversScopes(*grant, {"read:exchange", "x"}));
  const AppGrant* all = Caller("full").FindGrant("dc");
  ASSERT_NE(all, nullptr);
  EXPECT_TRUE(GrantCoversScopes(*all, {"anything"}));
}

TEST_F(PolicyTest, UnconfiguredCallerHasNothing) {
  CallerConfig nobody;
  nobody.name = "nobody";
  EXPECT_THAT(AuthorizeToken(nobody, App("dc"), {}),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(AuthorizeCall(nobody, App("dc"), {}, "GET", "/"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(AuthorizeAdmin(nobody, "ListApps"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// Issue 10, defect 7: a caller learns nothing about apps it holds no grant
// for. An unknown app and an app without a grant get the same code and the
// same message; the app's scopes appear in no message.
TEST_F(PolicyTest, UnknownAndUngrantedAppsLookTheSame) {
  for (const std::vector<std::string>& scopes :
       std::vector<std::vector<std::string>>{{}, {"a"}, {"x:y"}}) {
    absl::Status ungranted =
        AuthorizeTokenRequest(Caller("reader"), config_, "other", scopes)
            .status();
    absl::Status unknown =
        AuthorizeTokenRequest(Caller("reader"), config_, "nope", scopes)
            .status();
    EXPECT_THAT(ungranted,
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr("reader"), HasSubstr("no grant"),
                               HasSubstr("other"), Not(HasSubstr("[a]")))));
    EXPECT_EQ(unknown.code(), ungranted.code());
    std::string message(ungranted.message());
    message.replace(message.find("other"), 5, "nope");
    EXPECT_EQ(std::string(unknown.message()), message);

    absl::Status call_ungranted =
        AuthorizeCallRequest(Caller("reader"), config_, "other", scopes, "GET",
                             "/x")
            .status();
    absl::Status call_unknown =
        AuthorizeCallRequest(Caller("reader"), config_, "nope", scopes, "GET",
                             "/x")
            .status();
    EXPECT_EQ(call_ungranted, ungranted);
    EXPECT_EQ(call_unknown, unknown);
  }
  // dc's scopes are not revealed to a caller without a grant for dc.
  absl::Status s =
      AuthorizeTokenRequest(Caller("ex-only"), config_, "dc", {"manage:apis"})
          .status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied,
                          AllOf(Not(HasSubstr("view:")),
                                Not(HasSubstr("its scopes")))));
}

TEST_F(PolicyTest, GrantedAppsMayNameTheirScopes) {
  // full holds a grant for dc: telling it what dc holds is fine.
  EXPECT_THAT(
      AuthorizeTokenRequest(Caller("full"), config_, "dc", {"manage:apis"}),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("does not hold scope(s) [manage:apis]"),
                     HasSubstr("view:design_center"))));
  auto resolved = AuthorizeTokenRequest(
      Caller("full"), config_, "dc", {"view:environment", "view:environment"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app, &App("dc"));
  EXPECT_EQ(resolved->upstream.app, "dc");
  EXPECT_THAT(
      AuthorizeTokenRequest(Caller("call-only"), config_, "dc",
                            {"view:environment"}),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("get_token")));
}

TEST_F(PolicyTest, EmptyAppPicksTheNarrowestGrantedApp) {
  auto resolved =
      AuthorizeTokenRequest(Caller("reader"), config_, "", {"read:exchange"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app->name, "ex");
  // No scopes: all of the app's; reader's dc grant does not cover them.
  resolved = AuthorizeTokenRequest(Caller("reader"), config_, "", {});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app->name, "ex");
  resolved =
      AuthorizeTokenRequest(Caller("full"), config_, "", {"view:environment"});
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app->name, "dc");
  // Call-only grants are not candidates.
  EXPECT_THAT(AuthorizeTokenRequest(Caller("call-only"), config_, "",
                                    {"view:environment"}),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("no grant that allows GetToken")));
}

// With no app named, whether some app outside the caller's grants holds the
// scopes is not revealed: the same code and message either way, naming only
// the caller's own grants.
TEST_F(PolicyTest, EmptyAppRevealsNothingOutsideTheGrants) {
  absl::Status held_elsewhere =
      AuthorizeTokenRequest(Caller("reader"), config_, "", {"a"}).status();
  absl::Status held_nowhere =
      AuthorizeTokenRequest(Caller("reader"), config_, "", {"b"}).status();
  EXPECT_THAT(held_elsewhere,
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("[a]"), HasSubstr("dc [read:exchange]"),
                             HasSubstr("ex [read:exchange]"),
                             Not(HasSubstr("other")))));
  EXPECT_EQ(held_nowhere.code(), held_elsewhere.code());
  std::string message(held_elsewhere.message());
  message.replace(message.find("[a]"), 3, "[b]");
  EXPECT_EQ(std::string(held_nowhere.message()), message);
  // dc holds view:design_center, but reader's grant does not cover it: dc's
  // other scopes are not listed.
  EXPECT_THAT(AuthorizeTokenRequest(Caller("reader"), config_, "",
                                    {"view:design_center"}),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       Not(HasSubstr("view:environment"))));
}

TEST_F(PolicyTest, MalformedRequestsAreInvalidBeforeAnyLookUp) {
  for (const char* app : {"bad name!", "../x", "a/b"}) {
    EXPECT_THAT(AuthorizeTokenRequest(Caller("ex-only"), config_, app, {}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << app;
    EXPECT_THAT(
        AuthorizeCallRequest(Caller("reader"), config_, app, {}, "GET", "/x"),
        StatusIs(absl::StatusCode::kInvalidArgument))
        << app;
  }
  EXPECT_THAT(AuthorizeTokenRequest(Caller("reader"), config_, "ex", {"a b"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      AuthorizeCallRequest(Caller("reader"), config_, "", {}, "GET", "/x"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("app")));
}

TEST_F(PolicyTest, CallRequestChecksGrantScopesAndRoute) {
  auto resolved = AuthorizeCallRequest(
      Caller("call-only"), config_, "dc", {"view:environment"}, "GET",
      "/accounts/api/organizations/o1/environments");
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->app, &App("dc"));
  EXPECT_THAT(
      AuthorizeCallRequest(Caller("call-only"), config_, "dc", {}, "GET",
                           "/accounts/api/organizations/o1/environments"),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("all of its scopes")));
  EXPECT_THAT(
      AuthorizeCallRequest(Caller("call-only"), config_, "dc",
                           {"view:environment"}, "GET", "/accounts/api/me"),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("route")));
}

}  // namespace
}  // namespace tokenbroker
