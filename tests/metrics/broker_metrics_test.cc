#include "service/metrics/broker_metrics.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cache/token_cache.h"
#include "service/upstream/curl_http_client.h"  // CurlHttpClientStats
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_token_source.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(BrokerMetricsTest, CountsRpcsByMethodAndCodeWithLatencyHistogram) {
  BrokerMetrics metrics;
  const char kMethod[] = "/anypoint.tokenbroker.v1.TokenBroker/GetToken";
  metrics.RpcHandled(metrics.RpcStarted(kMethod), 0, absl::Milliseconds(3));
  metrics.RpcHandled(metrics.RpcStarted(kMethod), 5, absl::Milliseconds(40));
  metrics.RpcHandled(metrics.RpcStarted(kMethod), 0, absl::Milliseconds(1));

  std::string text = metrics.Serialize();
  const std::string labels =
      "grpc_method=\"GetToken\",grpc_service=\"anypoint.tokenbroker.v1."
      "TokenBroker\"";
  EXPECT_THAT(text, HasSubstr("# TYPE grpc_server_handled_total counter"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("grpc_server_started_total{", labels,
                                           "} 3")));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"OK\"," +
                              labels + "} 2"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"NOT_"
                              "FOUND\"," +
                              labels + "} 1"));
  EXPECT_THAT(text, HasSubstr("# TYPE grpc_server_handling_seconds histogram"));
  EXPECT_THAT(
      text, HasSubstr("grpc_server_handling_seconds_count{" + labels + "} 3"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket{" + labels +
                              ",le=\"0.005\"} 2"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_build_info{version=\""));
}

TEST(BrokerMetricsTest, CapsTheNumberOfMethods) {
  BrokerMetrics metrics;
  for (int i = 0; i < BrokerMetrics::kMaxRpcMethods + 10; ++i) {
    std::string method = absl::StrCat("/svc.S/M", i);
    metrics.RpcHandled(metrics.RpcStarted(method), 12, absl::Milliseconds(1));
  }
  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("grpc_method=\"M0\""));
  EXPECT_THAT(
      text, Not(HasSubstr(absl::StrCat(
                "grpc_method=\"M", BrokerMetrics::kMaxRpcMethods + 1, "\""))));
  EXPECT_THAT(text, HasSubstr("grpc_server_started_total{grpc_method=\"other\","
                              "grpc_service=\"other\"} 10"));
}

TEST(BrokerMetricsTest, ReadsCacheStateAtScrapeTimeAndNeverTheToken) {
  testing::FakeClock clock;
  testing::FakeTokenSource source(clock);
  TokenCache cache(source, clock, CachePolicy{});
  BrokerMetrics metrics;
  metrics.SetCacheSource(&cache, &clock);

  std::string token;
  cache.Get(TokenRequest{"design-center", {}}, absl::Seconds(30),
            [](absl::StatusOr<TokenPtr>) {});
  token = source.Succeed(absl::Seconds(3600));
  cache.Get(TokenRequest{"design-center", {}}, absl::Seconds(30),
            [](absl::StatusOr<TokenPtr>) {});  // A hit.
  cache.Get(TokenRequest{"exchange", {}}, absl::Seconds(30),
            [](absl::StatusOr<TokenPtr>) {});
  source.Fail(absl::UnavailableError("upstream down"));
  clock.Advance(absl::Seconds(600));

  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("tokenbroker_cache_hits_total 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_cache_waits_total 2"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_cache_fetches_total 2"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_cache_fetch_failures_total 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_cache_keys 2"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_tokens_valid{app=\"design-center\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_tokens_valid{app=\"exchange\"} 0"));
  EXPECT_THAT(
      text,
      HasSubstr("tokenbroker_token_seconds_to_expiry{app=\"design-center\"} "
                "3000"));
  EXPECT_THAT(
      text,
      HasSubstr("tokenbroker_token_seconds_to_expiry{app=\"exchange\"} 0"));
  EXPECT_THAT(text, Not(HasSubstr(token)));

  metrics.SetCacheSource(nullptr, nullptr);
  EXPECT_THAT(metrics.Serialize(), Not(HasSubstr("tokenbroker_cache_keys")));
}

TEST(BrokerMetricsTest, SharedStateOnlyWhenConfigured) {
  BrokerMetrics metrics;
  EXPECT_THAT(metrics.Serialize(),
              Not(HasSubstr("tokenbroker_shared_state_up")));
  SharedStateStats stats;
  stats.up = false;
  stats.subscribed = true;
  stats.fetches = {{"adopted", 4}, {"degraded", 2}};
  stats.redis_errors = 3;
  stats.catch_ups = 1;
  metrics.SetSharedStateSource([&stats] { return stats; });
  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("tokenbroker_shared_state_up 0"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_shared_state_subscribed 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_shared_state_errors_total 3"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_shared_state_catch_ups_total 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_shared_fetches_total{outcome="
                              "\"adopted\"} 4"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_shared_fetches_total{outcome="
                              "\"degraded\"} 2"));
  stats.up = true;
  EXPECT_THAT(metrics.Serialize(), HasSubstr("tokenbroker_shared_state_up 1"));
  metrics.SetSharedStateSource(nullptr);
}

TEST(BrokerMetricsTest, UserGrantsByStateAndUnsavedRotations) {
  BrokerMetrics metrics;
  UserGrantStats stats;
  stats.apps["env-viewer"].connected = 2;
  stats.apps["env-viewer"].needs_reauthorization = 1;
  stats.unreadable_records = 1;
  stats.unsaved = 3;
  metrics.SetUserGrantSource([&stats] { return stats; });
  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("tokenbroker_user_grants{app=\"env-viewer\","
                              "state=\"connected\"} 2"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_user_grants{app=\"env-viewer\","
                              "state=\"needs_reauthorization\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_grant_store_unreadable_records 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_user_grants_unsaved 3"));
  metrics.SetUserGrantSource(nullptr);
}

TEST(BrokerMetricsTest, EventsAndUpstreamStats) {
  BrokerMetrics metrics;
  metrics.TokenFetched("design-center", absl::OkStatus());
  metrics.TokenFetched("design-center",
                       absl::FailedPreconditionError("invalid_client"));
  metrics.UpstreamExchange("token", "200", absl::Milliseconds(20));
  metrics.UpstreamExchange("call", "UNAVAILABLE", absl::Milliseconds(20));
  metrics.ConfigLoaded(true, absl::FromUnixSeconds(1800000000));
  metrics.ConfigLoaded(false, absl::FromUnixSeconds(1800000100));
  metrics.AuditWriteFailed();
  CurlHttpClientStats stats;
  stats.requests_started = 7;
  stats.connections_opened = 2;
  stats.connections_reused = 5;
  metrics.SetUpstreamSource([stats] { return stats; });

  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("tokenbroker_token_fetches_total{app=\"design-"
                              "center\",code=\"OK\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_token_fetches_total{app=\"design-"
                              "center\",code=\"FAILED_PRECONDITION\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_responses_total{kind="
                              "\"token\",outcome=\"200\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_responses_total{kind="
                              "\"call\",outcome=\"UNAVAILABLE\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_request_duration_seconds_"
                              "count{kind=\"token\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_config_loads_total{result=\"ok\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_config_loads_total{result=\"error\"} 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_config_last_reload_success_"
                              "timestamp_seconds 1800000000"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_audit_write_failures_total 1"));
  EXPECT_THAT(text, HasSubstr("tokenbroker_upstream_requests_started_total 7"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_upstream_connections_opened_total 2"));
  EXPECT_THAT(text,
              HasSubstr("tokenbroker_upstream_connections_reused_total 5"));
}

}  // namespace
}  // namespace tokenbroker
