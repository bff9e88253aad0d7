#include "service/config/config.h"

#include <fstream>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kFullConfig[] = R"yaml(listen:
  grpc: "[::1]:6000"
log_level: debug
upstream:
  ca_file: /etc/ca.pem
  connect_timeout: 2s
  request_timeout: 1m
cache:
  min_ttl: 1m
  refresh_fraction: 0.5
  refresh_jitter: 0.2
  backoff_base: 250ms
  backoff_max: 2m
  rejected_retry: 10m
  idle_evict_after: 2h
  default_lifetime: 30m
  min_lifetime: 1m
  max_lifetime: 12h
  fetch_timeout: 3s
development:
  allow_inline_secrets: true
apps:
  - name: zeta
    base_url: HTTPS://emulator.local:8081/
    grant_type: authorization_code
    client_id: {env: ZETA_ID}
    client_secret: {value: dev-secret}
    scopes: [profile, offline_access, profile, openid]
    org_id: org-1
    environment_ids: [env-2, env-1]
    token_path: /oauth/token
    revoke_path: /oauth/revoke
    authorize_path: /oauth/authorize
    send_scope: true
    client_auth: client_secret_basic
    redirect_uri: https://broker.example.com/oauth/callback
    pkce: false
    authorize_params: {prompt: consent, access_type: offline}
    issuer: https://emulator.local:8081/issuer
    userinfo_path: /oauth/userinfo
  - name: alpha
    control_plane: eu
    client_id: alpha-id
    client_secret: {file: /run/secrets/alpha}
grant_store:
  directory: /var/lib/tokenbroker/grants
  keys:
    - {id: k2, file: /etc/store/k2}
    - {id: k1, file: /etc/store/k1}
oauth:
  public_url: https://broker.example.com/
  state_ttl: 5m
  start_link_ttl: 2h
  max_pending: 50
  request_timeout: 4s
)yaml";

TEST(ParseConfigTest, FullConfigParsesToExpectedStruct) {
  absl::StatusOr<Config> config = ParseConfig(kFullConfig, "full.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->path, "full.yaml");
  EXPECT_EQ(config->listen.grpc, "[::1]:6000");
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->upstream.ca_file, "/etc/ca.pem");
  EXPECT_EQ(config->upstream.connect_timeout, absl::Seconds(2));
  EXPECT_EQ(config->upstream.request_timeout, absl::Minutes(1));
  EXPECT_EQ(config->cache.min_ttl, absl::Minutes(1));
  EXPECT_DOUBLE_EQ(config->cache.refresh_fraction, 0.5);
  EXPECT_DOUBLE_EQ(config->cache.refresh_jitter, 0.2);
  EXPECT_EQ(config->cache.backoff_base, absl::Milliseconds(250));
  EXPECT_EQ(config->cache.backoff_max, absl::Minutes(2));
  EXPECT_EQ(config->cache.rejected_retry, absl::Minutes(10));
  EXPECT_EQ(config->cache.idle_evict_after, absl::Hours(2));
  EXPECT_EQ(config->cache.default_lifetime, absl::Minutes(30));
  EXPECT_EQ(config->cache.min_lifetime, absl::Minutes(1));
  EXPECT_EQ(config->cache.max_lifetime, absl::Hours(12));
  EXPECT_EQ(config->cache.fetch_timeout, absl::Seconds(3));
  EXPECT_TRUE(config->development.allow_inline_secrets);

  ASSERT_EQ(config->apps.size(), 2u);
  const AppConfig& alpha = config->apps[0];  // Sorted by name.
  EXPECT_EQ(alpha.name, "alpha");
  EXPECT_EQ(alpha.control_plane, "eu");
  EXPECT_EQ(alpha.base_url, "https://eu1.anypoint.mulesoft.com");
  EXPECT_EQ(alpha.grant_type, GrantType::kClientCredentials);
  EXPECT_EQ(alpha.client_id.value, "alpha-id");
  EXPECT_EQ(alpha.client_secret.file, "/run/secrets/alpha");
  EXPECT_THAT(alpha.client_secret.value, IsEmpty());
  EXPECT_THAT(alpha.scopes, IsEmpty());
  EXPECT_EQ(alpha.token_path, "/accounts/api/v2/oauth2/token");
  EXPECT_EQ(alpha.revoke_path, "/accounts/api/v2/oauth2/revoke");
  EXPECT_EQ(alpha.authorize_path, "/accounts/api/v2/oauth2/authorize");
  EXPECT_FALSE(alpha.send_scope);
  EXPECT_EQ(alpha.client_auth, ClientAuthMethod::kClientSecretPost);

  const AppConfig& zeta = config->apps[1];
  EXPECT_EQ(zeta.name, "zeta");
  EXPECT_EQ(zeta.control_plane, "custom");
  EXPECT_EQ(zeta.base_url, "https://emulator.local:8081");
  EXPECT_EQ(zeta.grant_type, GrantType::kAuthorizationCode);
  EXPECT_EQ(zeta.client_id.env, "ZETA_ID");
  EXPECT_EQ(zeta.client_secret.value, "dev-secret");
  EXPECT_THAT(zeta.scopes, ElementsAre("offline_access", "openid", "profile"));
  EXPECT_EQ(zeta.org_id, "org-1");
  EXPECT_THAT(zeta.environment_ids, ElementsAre("env-2", "env-1"));
  EXPECT_EQ(zeta.token_path, "/oauth/token");
  EXPECT_EQ(zeta.revoke_path, "/oauth/revoke");
  EXPECT_EQ(zeta.authorize_path, "/oauth/authorize");
  EXPECT_TRUE(zeta.send_scope);
  EXPECT_EQ(zeta.client_auth, ClientAuthMethod::kClientSecretBasic);
  EXPECT_EQ(zeta.redirect_uri, "https://broker.example.com/oauth/callback");
  EXPECT_FALSE(zeta.pkce);
  EXPECT_THAT(zeta.authorize_params,
              ElementsAre(std::make_pair("access_type", "offline"),
                          std::make_pair("prompt", "consent")));
  EXPECT_EQ(zeta.issuer, "https://emulator.local:8081/issuer");
  EXPECT_EQ(zeta.userinfo_path, "/oauth/userinfo");
  EXPECT_TRUE(alpha.pkce);
  EXPECT_EQ(IssuerOf(alpha),
            "https://eu1.anypoint.mulesoft.com"
            "/accounts/api/v2/oauth2");

  EXPECT_EQ(config->grant_store.directory, "/var/lib/tokenbroker/grants");
  ASSERT_EQ(config->grant_store.keys.size(), 2u);
  EXPECT_EQ(config->grant_store.keys[0].id, "k2");
  EXPECT_EQ(config->grant_store.keys[1].file, "/etc/store/k1");
  EXPECT_EQ(config->oauth.public_url, "https://broker.example.com");
  EXPECT_EQ(config->oauth.state_ttl, absl::Minutes(5));
  EXPECT_EQ(config->oauth.start_link_ttl, absl::Hours(2));
  EXPECT_EQ(config->oauth.max_pending, 50);
  EXPECT_EQ(config->oauth.request_timeout, absl::Seconds(4));
  EXPECT_TRUE(config->HasUserApps());

  EXPECT_EQ(config->FindApp("zeta"), &config->apps[1]);
  EXPECT_EQ(config->FindApp("alpha"), &config->apps[0]);
  EXPECT_EQ(config->FindApp("beta"), nullptr);
}

TEST(ParseConfigTest, MinimalConfigGetsDefaults) {
  absl::StatusOr<Config> config = ParseConfig(R"yaml(
apps:
  - name: a
    control_plane: us
    client_id: id
    client_secret: {env: A_SECRET}
)yaml",
                                              "min.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen.grpc, "127.0.0.1:50051");
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->cache.min_ttl, absl::Seconds(30));
  EXPECT_EQ(config->cache.min_lifetime, absl::Seconds(10));
  EXPECT_FALSE(config->development.allow_inline_secrets);
  ASSERT_EQ(config->apps.size(), 1u);
  EXPECT_EQ(config->apps[0].base_url, "https://anypoint.mulesoft.com");
  EXPECT_EQ(config->apps[0].client_secret.env, "A_SECRET");
}

TEST(ParseConfigTest, ListenAddressForms) {
  for (const char* address :
       {"0.0.0.0:0", "localhost:65535", "[::]:50051", "unix:/run/tb.sock"}) {
    SCOPED_TRACE(address);
    absl::StatusOr<Config> config = ParseConfig(
        absl::StrCat("listen: {grpc: \"", address, "\"}\n",
                     "apps: [{name: a, control_plane: gov, client_id: i, "
                     "client_secret: {env: S}}]\n"),
        "l.yaml");
    ASSERT_THAT(config, IsOk());
    EXPECT_EQ(config->listen.grpc, address);
    EXPECT_EQ(config->apps[0].base_url, "https://gov.anypoint.mulesoft.com");
  }
}

TEST(ControlPlaneBaseUrlTest, KnownAndUnknown) {
  EXPECT_EQ(ControlPlaneBaseUrl("us"), "https://anypoint.mulesoft.com");
  EXPECT_EQ(ControlPlaneBaseUrl("eu"), "https://eu1.anypoint.mulesoft.com");
  EXPECT_EQ(ControlPlaneBaseUrl("gov"), "https://gov.anypoint.mulesoft.com");
  EXPECT_EQ(ControlPlaneBaseUrl("custom"), "");
}

// A valid app; line 2 of a document starting with "apps:".
constexpr char kApp[] = R"yaml(apps:
  - name: a
    control_plane: us
    client_id: id
    client_secret: {env: A_SECRET}
)yaml";

struct ErrorCase {
  std::string name;
  std::string yaml;
  std::string expected_prefix;  // "<file>:<line>: <key path>:"
  std::string expected_text;    // Part of the explanation.
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

std::vector<ErrorCase> ErrorCases() {
  const std::string app = kApp;
  return {
      {"Empty", "", "bad.yaml:1: apps:", "at least one app"},
      {"SyntaxError", "apps:\n  - name: a\n    scopes: [a, b\n",
       "bad.yaml:", "YAML syntax error"},
      {"TopLevelNotMap", "- a\n- b\n",
       "bad.yaml:1: (top level):", "must be a map"},
      {"UnknownTopLevelKey", app + "lisen:\n  grpc: x\n", "bad.yaml:6: lisen:",
       "unknown key (did you mean listen?); allowed keys here are: listen, "
       "log_level"},
      {"UnknownAppKey", app + "    clientsecret: x\n",
       "bad.yaml:6: apps[0].clientsecret:",
       "unknown key (did you mean client_secret?); allowed keys here are: "
       "name,"},
      {"DuplicateKey", app + "    client_id: other\n",
       "bad.yaml:6: apps[0].client_id:",
       "duplicate key (first given on line 4)"},
      {"MissingApps", "log_level: info\n", "bad.yaml:1: apps:", "is required"},
      {"EmptyApps", "apps: []\n",
       "bad.yaml:1: apps:", "at least one app is required"},
      {"AppsNotList", "apps: {name: a}\n",
       "bad.yaml:1: apps:", "must be a list of apps"},
      {"DuplicateAppName",
       app + "  - name: a\n    control_plane: eu\n"
             "    client_id: i\n"
             "    client_secret: {env: B}\n",
       "bad.yaml:6: apps[1].name:",
       "duplicate app name 'a' (first used on line 2)"},
      {"BadAppName", "apps:\n  - name: a b\n",
       "bad.yaml:2: apps[0].name:", "not a valid app name"},
      {"LongAppName", "apps:\n  - name: " + std::string(65, 'x') + "\n",
       "bad.yaml:2: apps[0].name:", "not a valid app name"},
      {"MissingName", "apps:\n  - control_plane: us\n",
       "bad.yaml:2: apps[0]:", "name is required"},
      {"BadControlPlane", "apps:\n  - name: a\n    control_plane: asia\n",
       "bad.yaml:3: apps[0].control_plane:",
       "'asia' is not one of us, eu, gov"},
      {"NoControlPlane", "apps:\n  - name: a\n    client_id: i\n",
       "bad.yaml:2: apps[0].control_plane:", "one of control_plane"},
      {"BothControlPlaneAndBaseUrl",
       "apps:\n  - name: a\n    control_plane: us\n"
       "    base_url: https://x.example\n",
       "bad.yaml:4: apps[0].base_url:", "not both"},
      {"BaseUrlNoScheme",
       "apps:\n  - name: a\n    base_url: anypoint.mulesoft.com\n",
       "bad.yaml:3: apps[0].base_url:", "must start with https://"},
      {"BaseUrlFtp", "apps:\n  - name: a\n    base_url: ftp://x.example\n",
       "bad.yaml:3: apps[0].base_url:", "must start with https://"},
      {"BaseUrlPath",
       "apps:\n  - name: a\n    base_url: https://x.example/accounts\n",
       "bad.yaml:3: apps[0].base_url:", "must not have a path"},
      {"BaseUrlQuery",
       "apps:\n  - name: a\n    base_url: https://x.example?a=b\n",
       "bad.yaml:3: apps[0].base_url:", "must not have a path, query"},
      {"BaseUrlUserinfo",
       "apps:\n  - name: a\n    base_url: https://u:pw@x.example\n",
       "bad.yaml:3: apps[0].base_url:", "must not contain user information"},
      {"BaseUrlBadPort",
       "apps:\n  - name: a\n    base_url: https://x.example:99999\n",
       "bad.yaml:3: apps[0].base_url:",
       "port must be a number from 0 to 65535"},
      {"BaseUrlEmptyHost", "apps:\n  - name: a\n    base_url: https://\n",
       "bad.yaml:3: apps[0].base_url:", "the host must be"},
      {"BadGrantType", app + "    grant_type: password\n",
       "bad.yaml:6: apps[0].grant_type:",
       "'password' is not one of client_credentials, authorization_code"},
      {"BadClientAuth", app + "    client_auth: private_key_jwt\n",
       "bad.yaml:6: apps[0].client_auth:", "is not one of client_secret_post"},
      {"MissingClientId",
       "apps:\n  - name: a\n    control_plane: us\n"
       "    client_secret: {env: S}\n",
       "bad.yaml:2: apps[0].client_id:", "is required"},
      {"MissingClientSecret",
       "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n",
       "bad.yaml:2: apps[0].client_secret:", "is required"},
      {"SecretTwoSources",
       "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n"
       "    client_secret: {env: S, file: /x}\n",
       "bad.yaml:5: apps[0].client_secret:",
       "exactly one of file, env or value"},
      {"SecretUnknownSource",
       "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n"
       "    client_secret: {path: /x}\n",
       "bad.yaml:5: apps[0].client_secret.path:",
       "allowed keys here are: file, env, value"},
      {"SecretBadEnvName",
       "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n"
       "    client_secret: {env: 1-BAD}\n",
       "bad.yaml:5: apps[0].client_secret.env:",
       "not an environment variable name"},
      {"SecretList",
       "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n"
       "    client_secret: [a]\n",
       "bad.yaml:5: apps[0].client_secret:", "got a list"},
      {"ScopesNotList", app + "    scopes: read:exchange\n",
       "bad.yaml:6: apps[0].scopes:", "must be a list of strings"},
      {"ScopeWithSpace",
       app + "    scopes:\n      - read:exchange\n      - \"a b\"\n",
       "bad.yaml:8: apps[0].scopes[1]:", "must not contain whitespace"},
      {"ScopeEmpty", app + "    scopes: [\"\"]\n",
       "bad.yaml:6: apps[0].scopes[0]:", "must not be empty"},
      {"ScopeNotString", app + "    scopes: [[a]]\n",
       "bad.yaml:6: apps[0].scopes[0]:", "must be a string; got a list"},
      {"EnvironmentIdsNotList", app + "    environment_ids: {a: b}\n",
       "bad.yaml:6: apps[0].environment_ids:", "must be a list"},
      {"TokenPathRelative", app + "    token_path: oauth/token\n",
       "bad.yaml:6: apps[0].token_path:", "must be a path starting with"},
      {"RevokePathQuery", app + "    revoke_path: /revoke?x=1\n",
       "bad.yaml:6: apps[0].revoke_path:", "no query"},
      {"SendScopeNotBool", app + "    send_scope: maybe\n",
       "bad.yaml:6: apps[0].send_scope:", "must be true or false"},
      {"OrgIdNull", app + "    org_id:\n",
       "bad.yaml:6: apps[0].org_id:", "must be a string; got null"},
      {"BadLogLevel", app + "log_level: verbose\n", "bad.yaml:6: log_level:",
       "'verbose' is not one of debug, info, warning, error"},
      {"ListenNotMap", app + "listen: \"127.0.0.1:1\"\n",
       "bad.yaml:6: listen:", "must be a map with the keys grpc"},
      {"ListenNoPort", app + "listen:\n  grpc: localhost\n",
       "bad.yaml:7: listen.grpc:", "a port is required"},
      {"ListenBadPort", app + "listen:\n  grpc: localhost:70000\n",
       "bad.yaml:7: listen.grpc:", "from 0 to 65535"},
      {"ListenBareV6", app + "listen:\n  grpc: \"::1:50051\"\n",
       "bad.yaml:7: listen.grpc:", "must be written in brackets"},
      {"ListenEmptyUnix", app + "listen:\n  grpc: \"unix:\"\n",
       "bad.yaml:7: listen.grpc:", "needs a socket path"},
      {"UnknownCacheKey", app + "cache:\n  min_tll: 5s\n",
       "bad.yaml:7: cache.min_tll:", "allowed keys here are: min_ttl"},
      {"DurationBareInteger", app + "cache:\n  min_ttl: 30\n",
       "bad.yaml:7: cache.min_ttl:", "'30' has no unit; add one, e.g. \"30s\""},
      {"DurationGarbage", app + "upstream:\n  connect_timeout: soon\n",
       "bad.yaml:7: upstream.connect_timeout:", "is not a duration"},
      {"DurationNegative", app + "cache:\n  backoff_base: -1s\n",
       "bad.yaml:7: cache.backoff_base:", "must be positive"},
      {"DurationZeroTimeout", app + "cache:\n  fetch_timeout: 0s\n",
       "bad.yaml:7: cache.fetch_timeout:", "must be positive"},
      {"DurationInfinite", app + "upstream:\n  request_timeout: inf\n",
       "bad.yaml:7: upstream.request_timeout:", "finite"},
      {"RefreshFractionOne", app + "cache:\n  refresh_fraction: 1\n",
       "bad.yaml:7: cache.refresh_fraction:", "between 0 and 1"},
      {"RefreshFractionText", app + "cache:\n  refresh_fraction: most\n",
       "bad.yaml:7: cache.refresh_fraction:", "must be a number"},
      {"RefreshJitterHalf", app + "cache:\n  refresh_jitter: 0.5\n",
       "bad.yaml:7: cache.refresh_jitter:", "less than 0.5"},
      {"MinTtlNotBelowMaxLifetime",
       app + "cache:\n  default_lifetime: 10m\n  max_lifetime: 10m\n"
             "  min_ttl: 10m\n",
       "bad.yaml:9: cache.min_ttl:", "must be less than cache.max_lifetime"},
      {"MinTtlNotBelowDefaultLifetime", app + "cache:\n  min_ttl: 2h\n",
       "bad.yaml:7: cache.min_ttl:",
       "must be less than cache.default_lifetime"},
      {"DefaultLifetimeAboveMax", app + "cache:\n  max_lifetime: 30m\n",
       "bad.yaml:7: cache.max_lifetime:",
       "cache.default_lifetime (1h) must not exceed cache.max_lifetime (30m)"},
      {"MinLifetimeAboveDefaultLifetime", app + "cache:\n  min_lifetime: 2h\n",
       "bad.yaml:7: cache.min_lifetime:",
       "cache.min_lifetime (2h) must not exceed cache.default_lifetime (1h)"},
      {"MinLifetimeZero", app + "cache:\n  min_lifetime: 0s\n",
       "bad.yaml:7: cache.min_lifetime:", "must be positive"},
      {"BackoffBaseAboveMax",
       app + "cache:\n  backoff_base: 10m\n  backoff_max: 1m\n",
       "bad.yaml:7: cache.backoff_base:", "must not exceed cache.backoff_max"},
      {"CaFileList", app + "upstream:\n  ca_file: [a]\n",
       "bad.yaml:7: upstream.ca_file:", "must be a string"},
      {"AllowInlineNotBool",
       app + "development:\n  allow_inline_secrets: please\n",
       "bad.yaml:7: development.allow_inline_secrets:",
       "must be true or false"},
      {"TwoDocuments", app + "---\n" + app,
       "bad.yaml:", "holds 2 YAML documents"},
  };
}

class ParseConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ParseConfigErrorTest, IsInvalidArgumentWithLineAndKeyPath) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<Config> config = ParseConfig(c.yaml, "bad.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(::testing::StartsWith(c.expected_prefix),
                                     HasSubstr(c.expected_text))));
}

INSTANTIATE_TEST_SUITE_P(All, ParseConfigErrorTest,
                         ::testing::ValuesIn(ErrorCases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

TEST(ParseConfigTest, SyntaxErrorNamesTheLine) {
  absl::StatusOr<Config> config =
      ParseConfig("apps:\n  - name: a\n    scopes: [a, b\n", "bad.yaml");
  EXPECT_THAT(config,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::ContainsRegex("^bad\\.yaml:[0-9]+: ")));
}

constexpr char kSecret[] = "hunter2-Sup3rS3cret";

// Documents with an inline secret, and the line of client_secret.
std::vector<std::string> InlineSecretDocuments() {
  const std::string head =
      "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n";
  return {
      head + "    client_secret: " + kSecret + "\n",
      head + "    client_secret: {value: " + kSecret + "}\n",
      head + "    client_secret:\n      value: \"" + kSecret + "\"\n",
  };
}

TEST(ParseConfigTest, InlineSecretRefusedByDefault) {
  for (const std::string& yaml : InlineSecretDocuments()) {
    SCOPED_TRACE(yaml);
    absl::StatusOr<Config> config = ParseConfig(yaml, "demo.yaml");
    EXPECT_THAT(
        config,
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("demo.yaml:5: apps[0].client_secret: inline "
                                 "secrets are refused; use {file: PATH} or "
                                 "{env: NAME} (or set "
                                 "development.allow_inline_secrets: true for "
                                 "local development)"),
                       Not(HasSubstr(kSecret)))));
  }
}

TEST(ParseConfigTest, InlineSecretAllowedWithDevelopmentFlag) {
  for (const std::string& doc : InlineSecretDocuments()) {
    // The flag may come after the apps: it is read first.
    std::string yaml = doc + "development:\n  allow_inline_secrets: true\n";
    SCOPED_TRACE(yaml);
    absl::StatusOr<Config> config = ParseConfig(yaml, "demo.yaml");
    ASSERT_THAT(config, IsOk());
    EXPECT_EQ(config->apps[0].client_secret.value, kSecret);
    EXPECT_THAT(config->apps[0].client_secret.file, IsEmpty());
    EXPECT_THAT(config->apps[0].client_secret.env, IsEmpty());
  }
}

TEST(ParseConfigTest, InlineClientIdIsNotASecret) {
  absl::StatusOr<Config> config = ParseConfig(kApp, "a.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->apps[0].client_id.value, "id");
}

// Whatever else is wrong in the document, an inline secret's value never
// appears in the message.
TEST(ParseConfigTest, InlineSecretNeverInAnyError) {
  const std::string secret_line =
      absl::StrCat("    client_secret: ", kSecret, "\n");
  const std::string allowed = "development: {allow_inline_secrets: true}\n";
  const std::string head =
      "apps:\n  - name: a\n    control_plane: us\n    client_id: i\n";
  const std::string secret = kSecret;
  const std::vector<std::string> documents = {
      head + secret_line,
      "apps:\n  - name: a\n    control_plane: us\n" + secret_line +
          "    client_id: [x]\n" + allowed,
      head + secret_line + "    bogus: 1\n" + allowed,
      head + secret_line + "  - name: a\n" + allowed,
      head + "    client_secret: {value: " + secret + ", env: X}\n" + allowed,
      head + "    client_secret: {value: [" + secret + "]}\n" + allowed,
      head + "    client_secret: [" + secret + "]\n",
      head + "    client_secret: {value: \"" + secret + "\n",
      "apps:\n  - name: a\n    base_url: https://u:" + secret + "@x.example\n",
  };
  for (const std::string& yaml : documents) {
    SCOPED_TRACE(yaml);
    absl::StatusOr<Config> config = ParseConfig(yaml, "s.yaml");
    EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                                 Not(HasSubstr(kSecret))));
  }
}

TEST(LoadConfigFileTest, MissingFileIsNotFoundAndNamesThePath) {
  std::string path = ::testing::TempDir() + "/no-such-config.yaml";
  EXPECT_THAT(LoadConfigFile(path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(LoadConfigFileTest, DirectoryIsInvalidArgument) {
  std::string path = ::testing::TempDir();
  EXPECT_THAT(LoadConfigFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)));
}

TEST(LoadConfigFileTest, ReadsFileAndSetsPath) {
  std::string path = ::testing::TempDir() + "/config_test_load.yaml";
  {
    std::ofstream out(path);
    out << kApp;
  }
  absl::StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->path, path);
  ASSERT_EQ(config->apps.size(), 1u);

  {
    std::ofstream out(path);
    out << kApp << "    scopes: 1\n";
  }
  EXPECT_THAT(LoadConfigFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat(path, ":6: apps[0].scopes:"))));
}

TEST(ExampleConfigsTest, BrokerExampleParses) {
  absl::StatusOr<Config> config = LoadConfigFile(
      absl::StrCat(TOKENBROKER_SOURCE_DIR, "/config/broker.example.yaml"));
  ASSERT_THAT(config, IsOk());
  EXPECT_FALSE(config->apps.empty());
}

TEST(ExampleConfigsTest, DemoParses) {
  absl::StatusOr<Config> config =
      LoadConfigFile(absl::StrCat(TOKENBROKER_SOURCE_DIR, "/config/demo.yaml"));
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen.grpc, "127.0.0.1:50051");
  ASSERT_EQ(config->apps.size(), 3u);
  const AppConfig* dc = config->FindApp("design-center");
  ASSERT_NE(dc, nullptr);
  EXPECT_EQ(dc->base_url, "http://127.0.0.1:8081");
  EXPECT_EQ(dc->client_id.value, "design-center-app");
  EXPECT_EQ(dc->client_secret.env, "DESIGN_CENTER_CLIENT_SECRET");
  EXPECT_THAT(dc->scopes, ElementsAre("read:exchange", "view:design_center",
                                      "view:environment"));
  const AppConfig* er = config->FindApp("exchange-reader");
  ASSERT_NE(er, nullptr);
  EXPECT_EQ(er->client_id.value, "exchange-reader");
  EXPECT_EQ(er->client_secret.env, "EXCHANGE_READER_CLIENT_SECRET");
  EXPECT_THAT(er->scopes, ElementsAre("read:exchange"));
}

}  // namespace
}  // namespace tokenbroker
