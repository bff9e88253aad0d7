// The shared_state section (Redis shared by every replica).

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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

constexpr char kApps[] = R"yaml(apps:
  - name: billing
    base_url: http://127.0.0.1:8081
    client_id: billing-id
    client_secret: {env: BILLING_SECRET}
)yaml";

constexpr char kUserApp[] = R"yaml(  - name: viewer
    base_url: http://127.0.0.1:8081
    grant_type: authorization_code
    client_id: viewer-id
    client_secret: {env: VIEWER_SECRET}
    scopes: [view:environment]
)yaml";

std::string Redis(const std::string& body) {
  return absl::StrCat(kApps, "shared_state:\n  redis:\n", body);
}

TEST(SharedStateConfigTest, AbsentMeansEachReplicaAlone) {
  absl::StatusOr<Config> config = ParseConfig(kApps, "s.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_FALSE(config->shared_state.enabled());
}

TEST(SharedStateConfigTest, AddressWithDefaults) {
  absl::StatusOr<Config> config = ParseConfig(
      Redis("    address: redis:6379\n"
            "    keys: [{id: k2, file: /k/k2}, {id: k1, file: /k/k1}]\n"),
      "s.yaml");
  ASSERT_THAT(config, IsOk());
  const SharedStateConfig& redis = config->shared_state;
  EXPECT_TRUE(redis.enabled());
  EXPECT_EQ(redis.address, "redis:6379");
  EXPECT_EQ(redis.key_prefix, "tokenbroker:");
  EXPECT_EQ(redis.lease_ttl, absl::Seconds(10));
  EXPECT_EQ(redis.command_timeout, absl::Milliseconds(500));
  EXPECT_EQ(redis.sync_interval, absl::Seconds(1));
  ASSERT_EQ(redis.keys.size(), 2u);
  EXPECT_EQ(redis.keys[0].id, "k2");
}

TEST(SharedStateConfigTest, SentinelAndEverySetting) {
  absl::StatusOr<Config> config =
      ParseConfig(Redis("    sentinel:\n"
                        "      addresses: [s0:26379, s1:26379]\n"
                        "      master: broker\n"
                        "    username: broker\n"
                        "    password_file: /run/secrets/redis/password\n"
                        "    key_prefix: \"tb:{prod}:\"\n"
                        "    connect_timeout: 2s\n"
                        "    command_timeout: 250ms\n"
                        "    lease_ttl: 20s\n"
                        "    sync_interval: 500ms\n"
                        "    keys: [{id: k1, file: /k/k1}]\n"),
                  "s.yaml");
  ASSERT_THAT(config, IsOk());
  const SharedStateConfig& redis = config->shared_state;
  EXPECT_TRUE(redis.enabled());
  EXPECT_TRUE(redis.address.empty());
  EXPECT_THAT(redis.sentinels, ElementsAre("s0:26379", "s1:26379"));
  EXPECT_EQ(redis.sentinel_master, "broker");
  EXPECT_EQ(redis.username, "broker");
  EXPECT_EQ(redis.password_file, "/run/secrets/redis/password");
  EXPECT_EQ(redis.key_prefix, "tb:{prod}:");
  EXPECT_EQ(redis.connect_timeout, absl::Seconds(2));
  EXPECT_EQ(redis.command_timeout, absl::Milliseconds(250));
  EXPECT_EQ(redis.lease_ttl, absl::Seconds(20));
  EXPECT_EQ(redis.sync_interval, absl::Milliseconds(500));
}

TEST(SharedStateConfigTest, UserAppsNeedNoGrantStoreWithRedis) {
  absl::StatusOr<Config> config =
      ParseConfig(absl::StrCat(kApps, kUserApp,
                               "shared_state:\n  redis:\n"
                               "    address: unix:/run/redis.sock\n"
                               "    keys: [{id: k1, file: /k/k1}]\n"),
                  "s.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_FALSE(config->grant_store.enabled());
  EXPECT_EQ(config->shared_state.address, "unix:/run/redis.sock");
}

struct BadCase {
  std::string name;
  std::string yaml;
  std::string message;
};

class SharedStateConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SharedStateConfigErrorTest, IsRefusedWithReason) {
  absl::StatusOr<Config> config = ParseConfig(GetParam().yaml, "bad.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr(GetParam().message)));
}

constexpr char kKey[] = "    keys: [{id: k1, file: /k/k1}]\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, SharedStateConfigErrorTest,
    ::testing::Values(
        BadCase{"NoAddress", Redis(kKey), "needs exactly one of address"},
        BadCase{"Both",
                Redis(absl::StrCat("    address: r:6379\n"
                                   "    sentinel: {addresses: [s:26379], "
                                   "master: m}\n",
                                   kKey)),
                "needs exactly one of address"},
        BadCase{"NoPort", Redis(absl::StrCat("    address: redis\n", kKey)),
                "e.g. redis:6379"},
        BadCase{"RelativeSocket",
                Redis(absl::StrCat("    address: unix:redis.sock\n", kKey)),
                "unix:/absolute/path"},
        BadCase{"NoKeys", Redis("    address: r:6379\n"), "keys is required"},
        BadCase{"EmptyKeys", Redis("    address: r:6379\n    keys: []\n"),
                "at least one key is required"},
        BadCase{"DuplicateKeyIds",
                Redis("    address: r:6379\n    keys: [{id: a, file: /a}, "
                      "{id: a, file: /b}]\n"),
                "duplicate key id 'a'"},
        BadCase{
            "SentinelWithoutMaster",
            Redis(absl::StrCat("    sentinel: {addresses: [s:26379]}\n", kKey)),
            "needs addresses and master"},
        BadCase{"SentinelNoAddresses",
                Redis(absl::StrCat("    sentinel: {addresses: [], master: m}\n",
                                   kKey)),
                "at least one Sentinel"},
        BadCase{"ShortLease",
                Redis(absl::StrCat("    address: r:6379\n    lease_ttl: "
                                   "100ms\n",
                                   kKey)),
                "lease_ttl is 1s to 5m"},
        BadCase{"SlowCommands",
                Redis(absl::StrCat("    address: r:6379\n    "
                                   "command_timeout: 1m\n",
                                   kKey)),
                "command_timeout is at most 10s"},
        BadCase{"BadPrefix",
                Redis(absl::StrCat("    address: r:6379\n    key_prefix: "
                                   "\"a*b\"\n",
                                   kKey)),
                "a key prefix is 1 to 64"},
        BadCase{
            "UnknownKey",
            Redis(absl::StrCat("    address: r:6379\n    pasword: x\n", kKey)),
            "pasword"},
        BadCase{"GrantStoreToo",
                absl::StrCat(Redis(absl::StrCat("    address: r:6379\n", kKey)),
                             "grant_store:\n  directory: /g\n  keys: [{id: "
                             "k1, file: /k}]\n"),
                "must not be set with shared_state.redis"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace tokenbroker
