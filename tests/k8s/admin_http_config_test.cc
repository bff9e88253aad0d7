// listen.admin_http: the admin HTTP listener's address.

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Config> WithListen(const std::string& listen) {
  return ParseConfig(absl::StrCat("listen:\n", listen,
                                  "apps:\n"
                                  "  - name: a\n"
                                  "    control_plane: us\n"
                                  "    client_id: id\n"
                                  "    client_secret: {env: A_SECRET}\n"),
                     "broker.yaml");
}

TEST(AdminHttpConfigTest, DefaultsToLoopback9090) {
  absl::StatusOr<Config> config = WithListen("  grpc: 127.0.0.1:50051\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen.admin_http, "127.0.0.1:9090");
}

TEST(AdminHttpConfigTest, TakesAnAddressOrEmptyToDisable) {
  absl::StatusOr<Config> any = WithListen("  admin_http: 0.0.0.0:9090\n");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->listen.admin_http, "0.0.0.0:9090");
  absl::StatusOr<Config> v6 = WithListen("  admin_http: \"[::]:9090\"\n");
  ASSERT_TRUE(v6.ok()) << v6.status();
  absl::StatusOr<Config> off = WithListen("  admin_http: \"\"\n");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->listen.admin_http, "");
}

TEST(AdminHttpConfigTest, RejectsAnAddressWithoutPort) {
  absl::StatusOr<Config> config = WithListen("  admin_http: localhost\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("listen.admin_http"));
}

}  // namespace
}  // namespace tokenbroker
