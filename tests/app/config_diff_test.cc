#include "service/app/config_diff.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

AppConfig App(const std::string& name, const std::string& client_id) {
  AppConfig app;
  app.name = name;
  app.base_url = "https://anypoint.mulesoft.com";
  app.client_id.value = client_id;
  return app;
}

CallerConfig Caller(const std::string& name) {
  CallerConfig caller;
  caller.name = name;
  caller.bearer_key_sha256 = {std::string(64, 'a')};
  AppGrant grant;
  grant.app = "a";
  grant.all_scopes = true;
  caller.grants.push_back(grant);
  return caller;
}

TEST(DiffConfigsTest, IdenticalConfigsDifferInNothing) {
  Config config;
  config.apps = {App("a", "id-a")};
  config.callers = {Caller("c")};
  ConfigDiff diff = DiffConfigs(config, config);
  EXPECT_THAT(diff.added_apps, IsEmpty());
  EXPECT_THAT(diff.changed_apps, IsEmpty());
  EXPECT_THAT(diff.removed_apps, IsEmpty());
  EXPECT_THAT(diff.added_callers, IsEmpty());
  EXPECT_THAT(diff.changed_callers, IsEmpty());
  EXPECT_THAT(diff.removed_callers, IsEmpty());
  EXPECT_THAT(diff.restart_only, IsEmpty());
}

TEST(DiffConfigsTest, AppsAddedChangedAndRemovedBySortedName) {
  Config before;
  before.apps = {App("a", "id-a"), App("b", "id-b"), App("c", "id-c")};
  Config after;
  after.apps = {App("a", "id-a"), App("c", "id-other"), App("e", "id-e"),
                App("d", "id-d")};
  ConfigDiff diff = DiffConfigs(before, after);
  EXPECT_THAT(diff.added_apps, ElementsAre("d", "e"));
  EXPECT_THAT(diff.changed_apps, ElementsAre("c"));
  EXPECT_THAT(diff.removed_apps, ElementsAre("b"));
}

TEST(DiffConfigsTest, CallersChangeWithKeysRolesAndGrants) {
  Config before;
  before.callers = {Caller("keys"),   Caller("role"), Caller("grant"),
                    Caller("routes"), Caller("same"), Caller("gone")};
  Config after = before;
  after.callers.pop_back();
  after.callers[0].bearer_key_sha256 = {std::string(64, 'b')};
  after.callers[1].admin = true;
  after.callers[2].grants[0].get_token = false;
  RouteRule rule;
  rule.method = "GET";
  rule.text = "GET /x";
  after.callers[3].grants[0].routes.push_back(rule);
  after.callers.push_back(Caller("new"));
  ConfigDiff diff = DiffConfigs(before, after);
  EXPECT_THAT(diff.added_callers, ElementsAre("new"));
  EXPECT_THAT(diff.changed_callers,
              ElementsAre("grant", "keys", "role", "routes"));
  EXPECT_THAT(diff.removed_callers, ElementsAre("gone"));
}

TEST(DiffConfigsTest, SectionsReadOnlyAtStartAreNamed) {
  Config before;
  Config after;
  after.listen.tls.cert_file = "/etc/tls/new.crt";
  after.audit.fail_closed = true;
  EXPECT_THAT(DiffConfigs(before, after).restart_only,
              ElementsAre("listen", "audit"));
  Config upstream;
  upstream.upstream.connect_timeout = absl::Seconds(9);
  EXPECT_THAT(DiffConfigs(before, upstream).restart_only,
              ElementsAre("upstream"));
  // Sections a reload applies are not restart-only.
  Config cache;
  cache.cache.min_ttl = absl::Seconds(5);
  cache.limits.max_calls_per_caller = 7;
  EXPECT_THAT(DiffConfigs(before, cache).restart_only, IsEmpty());
}

}  // namespace
}  // namespace tokenbroker
