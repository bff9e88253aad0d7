// The metrics of a real broker (in-process, with the emulator): the
// interceptor sees every RPC, the cache and upstream series follow.

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class BrokerServerMetricsTest : public testing::BrokerFixture {};

TEST_F(BrokerServerMetricsTest, CountsRpcsCacheAndUpstream) {
  anypoint::tokenbroker::v1::GetTokenResponse response;
  ASSERT_TRUE(GetToken("design-center", &response).ok());
  ASSERT_TRUE(GetToken("design-center", &response).ok());
  EXPECT_EQ(GetToken("no-such-app", &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetToken("wrong-secret", &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  std::string text = broker_->metrics().Serialize();
  const std::string get_token =
      "grpc_method=\"GetToken\",grpc_service=\"anypoint.tokenbroker.v1."
      "TokenBroker\"";
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"OK\"," +
                              get_token + "} 2"));
  EXPECT_THAT(text,
              HasSubstr("grpc_server_handled_total{grpc_code=\"PERMISSION_"
                        "DENIED\"," +
                        get_token + "} 1"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"FAILED_"
                              "PRECONDITION\"," +
                              get_token + "} 1"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_count{" +
                              get_token + "} 4"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_cache_hits_total 1"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_tokens_valid{app=\"design-center\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_tokens_valid{app=\"wrong-secret\"} 0"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_token_fetches_total{app=\"design-"
                              "center\",code=\"OK\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_token_fetches_total{app=\"wrong-"
                              "secret\",code=\"FAILED_PRECONDITION\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_responses_total{kind="
                              "\"token\",outcome=\"200\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_responses_total{kind="
                              "\"token\",outcome=\"401\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_requests_started_total 2"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_config_loads_total{result=\"ok\"} 1"));

  // Never a token or a secret.
  EXPECT_THAT(text, Not(HasSubstr(response.access_token())));
  for (const char* secret : {"dc-secret-please-rotate",
                             "exchange-reader-fake-secret", "not-the-secret"}) {
    EXPECT_THAT(text, Not(HasSubstr(secret)));
  }
}

TEST_F(BrokerServerMetricsTest, CountsReloads) {
  grpc::ClientContext context;
  anypoint::tokenbroker::v1::ReloadConfigResponse reloaded;
  ASSERT_TRUE(admin_->ReloadConfig(&context, {}, &reloaded).ok());
  WriteConfigFile("apps: [not valid");
  grpc::ClientContext again;
  EXPECT_FALSE(admin_->ReloadConfig(&again, {}, &reloaded).ok());

  std::string text = broker_->metrics().Serialize();
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_config_loads_total{result=\"ok\"} 2"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_config_loads_total{result=\"error\"} 1"));
}

}  // namespace
}  // namespace tokenbroker
