// The config of apps acting on behalf of users: their keys, the oauth and
// grant_store sections, callers' users, and what a user app requires.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr char kStore[] = R"yaml(grant_store:
  directory: /var/lib/grants
  keys: [{id: k1, file: /etc/k1}]
)yaml";

std::string UserApp(const std::string& extra = "") {
  return absl::StrCat(R"yaml(apps:
  - name: viewer
    base_url: http://127.0.0.1:8081
    grant_type: authorization_code
    client_id: viewer-id
    client_secret: {env: VIEWER_SECRET}
    scopes: [view:environment]
)yaml",
                      extra);
}

TEST(UserAppConfigTest, LoopbackListenerNeedsNoPublicUrl) {
  absl::StatusOr<Config> config = ParseConfig(UserApp() + kStore, "u.yaml");
  ASSERT_THAT(config, IsOk());
  const AppConfig& app = config->apps[0];
  EXPECT_TRUE(app.pkce);
  EXPECT_TRUE(app.redirect_uri.empty());
  EXPECT_EQ(RedirectUri(app, "http://127.0.0.1:9090"),
            "http://127.0.0.1:9090/oauth/callback");
  EXPECT_EQ(IssuerOf(app), "http://127.0.0.1:8081/accounts/api/v2/oauth2");
}

TEST(UserAppConfigTest, CallerGrantNamesUsers) {
  absl::StatusOr<Config> config =
      ParseConfig(UserApp() + kStore + R"yaml(callers:
  - name: svc
    bearer_key_sha256: [0000000000000000000000000000000000000000000000000000000000000000]
    grants:
      - app: viewer
        users: [bob, alice, bob]
  - name: ops
    bearer_key_sha256: [1111111111111111111111111111111111111111111111111111111111111111]
    grants:
      - app: viewer
        users: ["*"]
)yaml",
                  "u.yaml");
  ASSERT_THAT(config, IsOk());
  const AppGrant& svc = config->callers[0].grants[0];
  EXPECT_THAT(svc.users, ElementsAre("alice", "bob"));
  EXPECT_FALSE(svc.all_users);
  EXPECT_TRUE(config->callers[1].grants[0].all_users);
  EXPECT_TRUE(config->callers[1].grants[0].users.empty());
}

struct BadCase {
  std::string name;
  std::string yaml;
  std::string message;
};

class UserAppConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(UserAppConfigErrorTest, IsRefusedWithReason) {
  absl::StatusOr<Config> config = ParseConfig(GetParam().yaml, "bad.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr(GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, UserAppConfigErrorTest,
    ::testing::Values(
        BadCase{"NoGrantStore", UserApp(),
                "grant_store: is required: app viewer acts on behalf of "
                "users"},
        BadCase{"NoListener",
                UserApp() + kStore + "listen:\n  admin_http: \"\"\n",
                "listen.oauth_http: is required"},
        BadCase{"PublicListenerWithoutPublicUrl",
                UserApp() + kStore + "listen:\n  admin_http: 0.0.0.0:9090\n",
                "oauth.public_url: is required"},
        BadCase{"RedirectUriNotCallback",
                UserApp("    redirect_uri: https://b.example/cb\n") + kStore,
                "must be the broker's callback"},
        BadCase{"RedirectUriPlainHttp",
                UserApp("    redirect_uri: http://b.example/oauth/callback\n") +
                    kStore,
                "must use https://"},
        BadCase{"RedirectUriQuery",
                UserApp("    redirect_uri: "
                        "https://b.example/oauth/callback?x=1\n") +
                    kStore,
                "must be the broker's callback"},
        BadCase{"ReservedAuthorizeParam",
                UserApp("    authorize_params: {state: x}\n") + kStore,
                "is set by the broker itself"},
        BadCase{"AuthorizeParamsNotMap",
                UserApp("    authorize_params: [a]\n") + kStore,
                "must be a map of parameter names"},
        BadCase{"UserKeyOnClientCredentialsApp",
                "apps:\n  - name: a\n    control_plane: us\n"
                "    client_id: i\n    client_secret: {env: S}\n"
                "    pkce: false\n",
                "applies only to apps acting on behalf of users"},
        BadCase{"UsersOnClientCredentialsApp",
                "apps:\n  - name: a\n    control_plane: us\n"
                "    client_id: i\n    client_secret: {env: S}\n"
                "callers:\n  - name: c\n    bearer_key_sha256: "
                "[0000000000000000000000000000000000000000000000000000000000"
                "000000]\n    grants:\n      - app: a\n        users: [x]\n",
                "applies only to apps acting on behalf of users"},
        BadCase{"StarUserNotAlone",
                UserApp() + kStore +
                    "callers:\n  - name: c\n    bearer_key_sha256: "
                    "[0000000000000000000000000000000000000000000000000000000"
                    "000000000]\n    grants:\n      - app: viewer\n"
                    "        users: [\"*\", x]\n",
                "'*' (every connected user) stands alone"},
        BadCase{"StoreWithoutKeys",
                UserApp() + "grant_store:\n  directory: /g\n",
                "keys is required"},
        BadCase{"StoreDuplicateKeyId",
                UserApp() +
                    "grant_store:\n  directory: /g\n  keys: [{id: a, file: "
                    "/a}, {id: a, file: /b}]\n",
                "duplicate key id 'a'"},
        BadCase{"StoreBadKeyId",
                UserApp() +
                    "grant_store:\n  directory: /g\n  keys: [{id: \"a b\", "
                    "file: /a}]\n",
                "must not contain whitespace"},
        BadCase{"PublicUrlPlainHttp",
                UserApp() + kStore + "oauth:\n  public_url: http://b.example\n",
                "must use https://"},
        BadCase{"StateTtlTooLong",
                UserApp() + kStore + "oauth:\n  state_ttl: 2h\n",
                "state_ttl is at most 1h"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace tokenbroker
