// Parsing and validation of the security keys: listen.tls,
// development.insecure_plaintext, callers (identities, bearer keys, admin,
// grants with scopes, get_token and routes) and audit.

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

// Two apps on lines 1-11; what a test appends starts on line 12.
constexpr char kApps[] = R"yaml(apps:
  - name: dc
    control_plane: us
    client_id: id
    client_secret: {env: S}
    scopes: [view:design_center, read:exchange, view:environment]
  - name: ex
    control_plane: us
    client_id: id2
    client_secret: {env: S2}
    scopes: [read:exchange]
)yaml";

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');

TEST(ConfigAuthTest, FullSecuritySectionParses) {
  std::string yaml = absl::StrCat(R"yaml(listen:
  grpc: 0.0.0.0:50051
  tls:
    cert_file: /tls/tls.crt
    key_file: /tls/tls.key
    client_ca_file: /tls/ca.crt
development:
  insecure_plaintext: false
audit:
  path: /var/log/broker/audit.jsonl
  fail_closed: true
)yaml",
                                  kApps, R"yaml(callers:
  - name: orders
    identities:
      - spiffe://cluster.local/ns/shop/sa/orders
      - orders.shop.svc
    bearer_key_sha256: [)yaml",
                                  std::string(64, 'A'), ", ", kHashB,
                                  R"yaml(]
    grants:
      - app: dc
        scopes: [view:environment, read:exchange, read:exchange]
        routes:
          - GET /accounts/api/organizations/*/environments
          - "* /exchange/api/v2/**"
      - app: ex
        scopes: ['*']
        get_token: false
  - name: ops
    admin: true
  - name: profile-only
    grants:
      - {app: ex, scopes: [profile]}
)yaml");
  absl::StatusOr<Config> config = ParseConfig(yaml, "full.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen.tls.cert_file, "/tls/tls.crt");
  EXPECT_EQ(config->listen.tls.key_file, "/tls/tls.key");
  EXPECT_EQ(config->listen.tls.client_ca_file, "/tls/ca.crt");
  EXPECT_TRUE(config->listen.tls.enabled());
  EXPECT_FALSE(config->development.insecure_plaintext);
  EXPECT_EQ(config->audit.path, "/var/log/broker/audit.jsonl");
  EXPECT_TRUE(config->audit.fail_closed);

  ASSERT_EQ(config->callers.size(), 3u);
  const CallerConfig& orders = config->callers[0];
  EXPECT_EQ(orders.name, "orders");
  // SPIFFE ids and CNs are kept apart.
  EXPECT_THAT(orders.spiffe_ids,
              ElementsAre("spiffe://cluster.local/ns/shop/sa/orders"));
  EXPECT_THAT(orders.common_names, ElementsAre("orders.shop.svc"));
  // Hashes are stored lower-case.
  EXPECT_THAT(orders.bearer_key_sha256, ElementsAre(kHashA, kHashB));
  EXPECT_FALSE(orders.admin);
  ASSERT_EQ(orders.grants.size(), 2u);
  const AppGrant* dc = orders.FindGrant("dc");
  ASSERT_NE(dc, nullptr);
  EXPECT_THAT(dc->scopes, ElementsAre("read:exchange", "view:environment"));
  EXPECT_FALSE(dc->all_scopes);
  EXPECT_TRUE(dc->get_token);
  ASSERT_EQ(dc->routes.size(), 2u);
  EXPECT_EQ(dc->routes[0].method, "GET");
  EXPECT_THAT(
      dc->routes[0].segments,
      ElementsAre("accounts", "api", "organizations", "*", "environments"));
  EXPECT_EQ(dc->routes[0].text,
            "GET /accounts/api/organizations/*/environments");
  EXPECT_EQ(dc->routes[1].method, "*");
  EXPECT_THAT(dc->routes[1].segments,
              ElementsAre("exchange", "api", "v2", "**"));
  const AppGrant* ex = orders.FindGrant("ex");
  ASSERT_NE(ex, nullptr);
  EXPECT_TRUE(ex->all_scopes);
  EXPECT_THAT(ex->scopes, IsEmpty());
  EXPECT_FALSE(ex->get_token);
  EXPECT_THAT(ex->routes, IsEmpty());
  EXPECT_EQ(orders.FindGrant("other"), nullptr);

  const CallerConfig& ops = config->callers[1];
  EXPECT_TRUE(ops.admin);
  EXPECT_THAT(ops.grants, IsEmpty());
  EXPECT_THAT(ops.spiffe_ids, IsEmpty());
  EXPECT_THAT(ops.common_names, IsEmpty());
  // profile is always allowed, like on the token endpoint.
  EXPECT_THAT(config->callers[2].grants[0].scopes, ElementsAre("profile"));
}

TEST(ConfigAuthTest, DefaultsAreClosed) {
  absl::StatusOr<Config> config = ParseConfig(kApps, "min.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_FALSE(config->listen.tls.enabled());
  EXPECT_FALSE(config->development.insecure_plaintext);
  EXPECT_THAT(config->callers, IsEmpty());  // Nobody may do anything.
  EXPECT_THAT(config->audit.path, IsEmpty());
  EXPECT_FALSE(config->audit.fail_closed);
}

TEST(ConfigAuthTest, TlsWithoutClientCaIsServerSideTls) {
  absl::StatusOr<Config> config = ParseConfig(
      absl::StrCat("listen:\n  tls: {cert_file: c.pem, key_file: k.pem}\n",
                   kApps),
      "tls.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_TRUE(config->listen.tls.enabled());
  EXPECT_THAT(config->listen.tls.client_ca_file, IsEmpty());
}

TEST(ConfigAuthTest, InsecurePlaintextFlag) {
  absl::StatusOr<Config> config =
      ParseConfig(absl::StrCat("development: {insecure_plaintext: true}\n",
                               kApps, "callers:\n  - name: anonymous\n"),
                  "dev.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_TRUE(config->development.insecure_plaintext);
  EXPECT_FALSE(config->development.allow_inline_secrets);
}

TEST(ConfigAuthTest, AuditToStdout) {
  absl::StatusOr<Config> config =
      ParseConfig(absl::StrCat(kApps, "audit: {path: '-'}\n"), "audit.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->audit.path, "-");
}

TEST(ConfigAuthTest, RouteForms) {
  absl::StatusOr<Config> config =
      ParseConfig(absl::StrCat(kApps,
                               "callers:\n  - name: c\n    grants:\n"
                               "      - app: dc\n        routes:\n"
                               "          - 'GET /'\n"
                               "          - 'DELETE /a/b'\n"
                               "          - '  PATCH    /x/*  '\n"
                               "          - 'HEAD /**'\n"),
                  "routes.yaml");
  ASSERT_THAT(config, IsOk());
  const std::vector<RouteRule>& routes = config->callers[0].grants[0].routes;
  ASSERT_EQ(routes.size(), 4u);
  EXPECT_THAT(routes[0].segments, ElementsAre(""));
  EXPECT_EQ(routes[1].method, "DELETE");
  EXPECT_EQ(routes[2].method, "PATCH");
  EXPECT_THAT(routes[2].segments, ElementsAre("x", "*"));
  EXPECT_THAT(routes[3].segments, ElementsAre("**"));
}

struct ErrorCase {
  std::string name;
  std::string yaml;
  std::string expected_prefix;  // "<file>:<line>: <key path>:"
  std::string expected_text;    // Part of the explanation.
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

// `callers` is appended to kApps: "callers:" is line 12, the first caller
// starts on line 13.
std::string WithCallers(const std::string& callers) {
  return absl::StrCat(kApps, "callers:\n", callers);
}

std::vector<ErrorCase> ErrorCases() {
  const std::string apps = kApps;
  return {
      // listen.tls
      {"TlsNotAMap", "listen:\n  tls: yes\n" + apps, "bad.yaml:2: listen.tls:",
       "must be a map with the keys cert_file, key_file, client_ca_file"},
      {"TlsUnknownKey",
       "listen:\n  tls:\n    cert_file: c\n    ca_file: x\n" + apps,
       "bad.yaml:4: listen.tls.ca_file:", "unknown key; allowed keys here are"},
      {"TlsKeyMissing", "listen:\n  tls:\n    cert_file: c.pem\n" + apps,
       "bad.yaml:2: listen.tls:", "cert_file and key_file are both required"},
      {"TlsCertMissing",
       "listen:\n  tls:\n    key_file: k.pem\n    client_ca_file: ca.pem\n" +
           apps,
       "bad.yaml:2: listen.tls:", "cert_file and key_file are both required"},
      {"TlsEmptyPath", "listen:\n  tls: {cert_file: '', key_file: k}\n" + apps,
       "bad.yaml:2: listen.tls.cert_file:", "must not be empty"},
      {"TlsPathNotString",
       "listen:\n  tls:\n    cert_file: [a]\n    key_file: k\n" + apps,
       "bad.yaml:3: listen.tls.cert_file:", "must be a string"},
      // development.insecure_plaintext
      {"PlaintextNotBool", "development:\n  insecure_plaintext: maybe\n" + apps,
       "bad.yaml:2: development.insecure_plaintext:", "must be true or false"},
      // audit
      {"AuditNotMap", apps + "audit: /var/log/audit\n",
       "bad.yaml:12: audit:", "must be a map with the keys path, fail_closed"},
      {"AuditUnknownKey", apps + "audit:\n  file: x\n",
       "bad.yaml:13: audit.file:", "unknown key"},
      {"AuditFailClosedNotBool",
       apps + "audit:\n  path: a\n  fail_closed: 1x\n",
       "bad.yaml:14: audit.fail_closed:", "must be true or false"},
      {"AuditEmptyPath", apps + "audit:\n  path: ''\n",
       "bad.yaml:13: audit.path:", "must not be empty"},
      {"AuditFailClosedWithoutPath", apps + "audit:\n  fail_closed: true\n",
       "bad.yaml:13: audit.fail_closed:", "needs audit.path"},
      // callers
      {"CallersNotList", apps + "callers:\n  orders: {}\n",
       "bad.yaml:12: callers:", "must be a list of callers"},
      {"CallerNotMap", WithCallers("  - orders\n"), "bad.yaml:13: callers[0]:",
       "must be a map with the keys name, identities"},
      {"CallerUnknownKey", WithCallers("  - name: a\n    identites: [x]\n"),
       "bad.yaml:14: callers[0].identites:",
       "unknown key (did you mean identities?)"},
      {"CallerNameMissing", WithCallers("  - admin: true\n"),
       "bad.yaml:13: callers[0]:", "name is required"},
      {"CallerNameInvalid", WithCallers("  - name: a/b\n"),
       "bad.yaml:13: callers[0].name:", "'a/b' is not a valid caller name"},
      {"CallerNameDuplicate",
       WithCallers("  - name: a\n  - name: b\n  - name: a\n"),
       "bad.yaml:15: callers[2].name:", "duplicate caller name 'a'"},
      {"IdentitiesNotList", WithCallers("  - name: a\n    identities: x\n"),
       "bad.yaml:14: callers[0].identities:", "must be a list of strings"},
      {"IdentityEmpty", WithCallers("  - name: a\n    identities: ['']\n"),
       "bad.yaml:14: callers[0].identities[0]:", "must not be empty"},
      {"IdentityWithSpace",
       WithCallers("  - name: a\n    identities:\n      - 'my cn'\n"),
       "bad.yaml:15: callers[0].identities[0]:", "must not contain whitespace"},
      {"IdentityTwiceAcrossCallers",
       WithCallers("  - name: a\n    identities: [x, y]\n"
                   "  - name: b\n    identities: [z, y]\n"),
       "bad.yaml:16: callers[1].identities:",
       "identity 'y' is already given to caller a"},
      {"IdentityTwiceInOneCaller",
       WithCallers("  - name: a\n    identities: [x, x]\n"),
       "bad.yaml:14: callers[0].identities:",
       "identity 'x' is already given to caller a"},
      // An entry that reads as a SPIFFE id must be a valid one: it is
      // never taken for a CN.
      {"SpiffeIdWithoutPath",
       WithCallers("  - name: a\n    identities: ['spiffe://cluster.local']\n"),
       "bad.yaml:14: callers[0].identities:",
       "'spiffe://cluster.local' is not a valid SPIFFE id: it has no path"},
      {"SpiffeIdUpperCaseScheme",
       WithCallers("  - name: a\n    identities: ['SPIFFE://td/ns/a']\n"),
       "bad.yaml:14: callers[0].identities:",
       "is not a valid SPIFFE id: it must start with spiffe://"},
      {"SpiffeIdWithoutSlashes",
       WithCallers("  - name: a\n    identities: ['spiffe:td/ns/a']\n"),
       "bad.yaml:14: callers[0].identities:", "is not a valid SPIFFE id"},
      {"SpiffeIdWithPort",
       WithCallers("  - name: a\n    identities: ['spiffe://td:443/a']\n"),
       "bad.yaml:14: callers[0].identities:", "the trust domain may hold only"},
      {"SpiffeIdWithQuery",
       WithCallers("  - name: a\n    identities: ['spiffe://td/a?b=c']\n"),
       "bad.yaml:14: callers[0].identities:", "the path may hold only"},
      {"SpiffeIdWithDotDot",
       WithCallers("  - name: a\n    identities: ['spiffe://td/a/../b']\n"),
       "bad.yaml:14: callers[0].identities:", "'.' or '..' segment"},
      {"KeyHashNotHex",
       WithCallers("  - name: a\n    bearer_key_sha256: [" +
                   std::string(63, 'a') + "z]\n"),
       "bad.yaml:14: callers[0].bearer_key_sha256:",
       "64 hex digits of a key's SHA-256"},
      {"KeyHashTooShort",
       WithCallers("  - name: a\n    bearer_key_sha256: [abc123]\n"),
       "bad.yaml:14: callers[0].bearer_key_sha256:", "never the key itself"},
      {"KeyHashTwiceAcrossCallers",
       WithCallers("  - name: a\n    bearer_key_sha256: [" + kHashA +
                   "]\n  - name: b\n    bearer_key_sha256: [" +
                   std::string(64, 'A') + "]\n"),
       "bad.yaml:16: callers[1].bearer_key_sha256:",
       "a key hash is already given to caller a"},
      {"AdminNotBool", WithCallers("  - name: a\n    admin: sure\n"),
       "bad.yaml:14: callers[0].admin:", "must be true or false"},
      // grants
      {"GrantsNotList", WithCallers("  - name: a\n    grants: {app: dc}\n"),
       "bad.yaml:14: callers[0].grants:", "must be a list of grants"},
      {"GrantNotMap", WithCallers("  - name: a\n    grants:\n      - dc\n"),
       "bad.yaml:15: callers[0].grants[0]:",
       "must be a map with the keys app, scopes, get_token, routes"},
      {"GrantUnknownKey",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        scope: [read:exchange]\n"),
       "bad.yaml:16: callers[0].grants[0].scope:",
       "unknown key (did you mean scopes?)"},
      {"GrantAppMissing",
       WithCallers("  - name: a\n    grants:\n      - scopes: [x]\n"),
       "bad.yaml:15: callers[0].grants[0]:", "app is required"},
      {"GrantOfUnknownApp",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "      - app: nope\n"),
       "bad.yaml:16: callers[0].grants[1].app:",
       "'nope' is not an app of this config"},
      {"GrantTwice",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "      - app: ex\n      - app: dc\n"),
       "bad.yaml:17: callers[0].grants[2]:", "app dc is granted twice"},
      {"ScopeNotHeldByApp",
       WithCallers("  - name: a\n    grants:\n      - app: ex\n"
                   "        scopes: [read:exchange, view:design_center]\n"),
       "bad.yaml:16: callers[0].grants[0].scopes:",
       "scope 'view:design_center' is not among app ex's scopes "
       "[read:exchange]"},
      {"StarWithOtherScopes",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        scopes: ['*', read:exchange]\n"),
       "bad.yaml:16: callers[0].grants[0].scopes:", "'*'"},
      {"ScopesNotList",
       WithCallers(
           "  - name: a\n    grants:\n      - {app: dc, scopes: '*'}\n"),
       "bad.yaml:15: callers[0].grants[0].scopes:", "must be a list"},
      {"GetTokenNotBool",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        get_token: no-thanks\n"),
       "bad.yaml:16: callers[0].grants[0].get_token:", "must be true or false"},
      // routes
      {"RoutesNotList",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: 'GET /a'\n"),
       "bad.yaml:16: callers[0].grants[0].routes:",
       "must be a list of \"METHOD /path\" routes"},
      {"RouteWithoutMethod",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes:\n          - /accounts/api/me\n"),
       "bad.yaml:17: callers[0].grants[0].routes[0]:",
       "'/accounts/api/me' is not a route"},
      {"RouteUnknownMethod",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a', 'FETCH /a']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[1]:",
       "'FETCH' is not GET, HEAD, POST, PUT, PATCH, DELETE or *"},
      {"RouteLowerCaseMethod",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['get /a']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:", "'get' is not GET"},
      {"RouteRelativePath",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET a/b']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:",
       "must be a plain path starting with '/'"},
      {"RouteWithQuery",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a?b=c']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:", "no query"},
      {"RouteWithPercent",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a%2Fb']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:", "'%'"},
      {"RouteDotDot",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a/../b']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:",
       "must not contain . or .. segments"},
      {"RouteDoubleStarInTheMiddle",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a/**/b']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:",
       "** is allowed only as the last segment"},
      {"RoutePartialStar",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a/b*']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:",
       "* must stand alone in a segment"},
      {"RouteThreeParts",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes: ['GET /a /b']\n"),
       "bad.yaml:16: callers[0].grants[0].routes[0]:", "is not a route"},
      {"RouteNotString",
       WithCallers("  - name: a\n    grants:\n      - app: dc\n"
                   "        routes:\n          - {GET: /a}\n"),
       "bad.yaml:17: callers[0].grants[0].routes[0]:", "must be a string"},
      {"ErrorInSecondCaller",
       WithCallers("  - name: a\n  - name: b\n    grants:\n"
                   "      - {app: ex, scopes: [nope]}\n"),
       "bad.yaml:16: callers[1].grants[0].scopes:", "scope 'nope'"},
  };
}

class ConfigAuthErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigAuthErrorTest, IsInvalidArgumentWithLineAndKeyPath) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<Config> config = ParseConfig(c.yaml, "bad.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(StartsWith(c.expected_prefix),
                                     HasSubstr(c.expected_text))));
}

INSTANTIATE_TEST_SUITE_P(All, ConfigAuthErrorTest,
                         ::testing::ValuesIn(ErrorCases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

TEST(ConfigAuthTest, KeyHashErrorsNeverQuoteTheValue) {
  // Someone pasting the key itself instead of its hash must not find it in
  // the broker's logs.
  const std::string key = "this-is-the-raw-bearer-key-not-its-hash";
  absl::StatusOr<Config> config = ParseConfig(
      WithCallers("  - name: a\n    bearer_key_sha256: [" + key + "]\n"),
      "bad.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               Not(HasSubstr(key))));
}

TEST(ConfigAuthTest, CallersMayComeBeforeTheAppsTheyGrant) {
  // The order of sections in the file does not matter.
  absl::StatusOr<Config> config = ParseConfig(
      absl::StrCat("callers:\n  - name: a\n    grants: [{app: ex}]\n", kApps),
      "order.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_NE(config->callers[0].FindGrant("ex"), nullptr);
}

TEST(ConfigAuthTest, ExampleDocumentsTheSecurityKeys) {
  absl::StatusOr<Config> config = LoadConfigFile(
      absl::StrCat(TOKENBROKER_SOURCE_DIR, "/config/broker.example.yaml"));
  ASSERT_THAT(config, IsOk());
  EXPECT_FALSE(config->listen.tls.client_ca_file.empty());
  EXPECT_FALSE(config->development.insecure_plaintext);
  EXPECT_TRUE(config->audit.fail_closed);
  ASSERT_EQ(config->callers.size(), 2u);
  const AppGrant* grant = config->callers[0].FindGrant("design-center");
  ASSERT_NE(grant, nullptr);
  EXPECT_FALSE(grant->get_token);
  EXPECT_EQ(grant->routes.size(), 2u);
  EXPECT_TRUE(config->callers[1].admin);
}

TEST(CheckSpiffeIdTest, AcceptsWorkloadIdsOfTheSpec) {
  for (const std::string& id :
       {std::string("spiffe://cluster.local/ns/shop/sa/orders"),
        std::string("spiffe://example.org/a"),
        std::string("spiffe://td-1_x.y/A.b-c_D/0"),
        "spiffe://" + std::string(255, 'd') + "/x",
        "spiffe://td/" + std::string(2048 - 12, 'p')}) {
    EXPECT_EQ(CheckSpiffeId(id), "") << id;
    EXPECT_TRUE(IsValidSpiffeId(id)) << id;
  }
}

TEST(CheckSpiffeIdTest, RefusesWhatTheSpecRefuses) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "must start with spiffe://"},
      {"cluster.local/ns/a", "must start with spiffe://"},
      {"SPIFFE://cluster.local/ns/a", "must start with spiffe://"},
      {"Spiffe://cluster.local/ns/a", "must start with spiffe://"},
      {"https://cluster.local/ns/a", "must start with spiffe://"},
      {"spiffe:/cluster.local/ns/a", "must start with spiffe://"},
      {"spiffe://", "trust domain is empty"},
      {"spiffe:///ns/a", "trust domain is empty"},
      {"spiffe://cluster.local", "no path"},
      {"spiffe://cluster.local/", "empty segment"},
      {"spiffe://cluster.local/ns/a/", "empty segment"},
      {"spiffe://cluster.local//ns/a", "empty segment"},
      {"spiffe://cluster.local/ns/./a", "'.' or '..'"},
      {"spiffe://cluster.local/ns/../a", "'.' or '..'"},
      {"spiffe://cluster.local/..", "'.' or '..'"},
      {"spiffe://Cluster.local/ns/a", "trust domain may hold only"},
      {"spiffe://cluster.local:8443/ns/a", "trust domain may hold only"},
      {"spiffe://user@cluster.local/ns/a", "trust domain may hold only"},
      {"spiffe://cluster.local?x=1", "trust domain may hold only"},
      {"spiffe://cluster.local#f", "trust domain may hold only"},
      {"spiffe://cluster.local/ns/a?x=1", "path may hold only"},
      {"spiffe://cluster.local/ns/a#frag", "path may hold only"},
      {"spiffe://cluster.local/ns/%61", "path may hold only"},
      {"spiffe://cluster.local/ns/a b", "path may hold only"},
      {std::string("spiffe://cluster.local/ns/a\0b", 29), "path may hold only"},
      {"spiffe://cluster.local/ns/\xc3\xa9", "path may hold only"},
      {"spiffe://" + std::string(256, 'd') + "/x", "longer than 255"},
      {"spiffe://td/" + std::string(2048 - 11, 'p'), "longer than 2048"},
  };
  for (const auto& [id, problem] : cases) {
    EXPECT_THAT(CheckSpiffeId(id), HasSubstr(problem)) << id;
    EXPECT_FALSE(IsValidSpiffeId(id)) << id;
  }
}

TEST(ConfigAuthTest, SpiffeIdsAndCommonNamesAreKeptApart) {
  absl::StatusOr<Config> config = ParseConfig(
      absl::StrCat(kApps,
                   "callers:\n"
                   "  - name: a\n"
                   "    identities: [a.internal, 'spiffe://td/ns/a',\n"
                   "                 'https://td/ns/a', b.internal]\n"),
      "ids.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_THAT(config->callers[0].spiffe_ids, ElementsAre("spiffe://td/ns/a"));
  // Only spiffe: entries are SPIFFE ids; any other text is a CN.
  EXPECT_THAT(config->callers[0].common_names,
              ElementsAre("a.internal", "https://td/ns/a", "b.internal"));
}

}  // namespace
}  // namespace tokenbroker
