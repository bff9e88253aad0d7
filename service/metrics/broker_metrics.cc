#include "service/metrics/broker_metrics.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/client_metric.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace tokenbroker {
namespace {

constexpr int kGrpcCodes = 17;  // OK .. UNAUTHENTICATED.

constexpr std::array<const char*, kGrpcCodes> kGrpcCodeNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED"};

// Latencies from a cache hit (well under a millisecond) to a slow upstream.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1,      2.5,   5,    10,    30};
}

// "/pkg.Service/Method" -> {"pkg.Service", "Method"}.
std::pair<std::string, std::string> SplitMethod(absl::string_view full) {
  if (!full.empty() && full.front() == '/') full.remove_prefix(1);
  size_t slash = full.rfind('/');
  if (slash == absl::string_view::npos) return {"unknown", std::string(full)};
  return {std::string(full.substr(0, slash)),
          std::string(full.substr(slash + 1))};
}

prometheus::MetricFamily Family(const std::string& name,
                                const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

void AddSample(prometheus::MetricFamily& family, double value,
               std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (family.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
}

// One unlabelled series read at scrape time.
struct Scalar {
  const char* name;
  const char* help;
  double value;
};

// Appends a family of `type` per scalar.
void AppendScalars(std::vector<prometheus::MetricFamily>& families,
                   prometheus::MetricType type,
                   std::initializer_list<Scalar> scalars) {
  for (const Scalar& scalar : scalars) {
    prometheus::MetricFamily family = Family(scalar.name, scalar.help, type);
    AddSample(family, scalar.value);
    families.push_back(std::move(family));
  }
}

}  // namespace

// Created on a method's first RPC.
struct BrokerMetrics::RpcSeries {
  prometheus::Counter* started = nullptr;
  prometheus::Histogram* latency = nullptr;
  // Created on first use of each code.
  std::array<std::atomic<prometheus::Counter*>, kGrpcCodes> handled{};
  std::string service;
  std::string method;
};

struct BrokerMetrics::Impl {
  Impl()
      : registry(std::make_shared<prometheus::Registry>()),
        rpc_started(prometheus::BuildCounter()
                        .Name("grpc_server_started_total")
                        .Help("RPCs started on the server.")
                        .Register(*registry)),
        rpc_handled(prometheus::BuildCounter()
                        .Name("grpc_server_handled_total")
                        .Help("RPCs completed on the server, by status code.")
                        .Register(*registry)),
        rpc_latency(prometheus::BuildHistogram()
                        .Name("grpc_server_handling_seconds")
                        .Help("Time from the start of an RPC to its status.")
                        .Register(*registry)),
        token_fetches(prometheus::BuildCounter()
                          .Name("tokenbroker_token_fetches_total")
                          .Help("Upstream token fetches (first fetches and "
                                "refreshes) per app, by outcome: OK or the "
                                "error code (FAILED_PRECONDITION: the "
                                "credentials were rejected).")
                          .Register(*registry)),
        upstream_latency(
            prometheus::BuildHistogram()
                .Name("tokenbroker_upstream_request_duration_seconds")
                .Help("Duration of upstream HTTP exchanges; kind=token for "
                      "the token and revoke endpoints, call for proxied "
                      "Calls.")
                .Register(*registry)),
        upstream_responses(prometheus::BuildCounter()
                               .Name("tokenbroker_upstream_responses_total")
                               .Help("Upstream HTTP exchanges by kind and "
                                     "outcome: the HTTP status, or the error "
                                     "code of a transport failure.")
                               .Register(*registry)),
        reloads(prometheus::BuildCounter()
                    .Name("tokenbroker_config_loads_total")
                    .Help("Config loads: at start and on reload (file "
                          "change, SIGHUP or ReloadConfig), by result.")
                    .Register(*registry)),
        last_reload(
            prometheus::BuildGauge()
                .Name("tokenbroker_config_last_reload_success_timestamp_"
                      "seconds")
                .Help("When the config was last loaded successfully.")
                .Register(*registry)
                .Add({})),
        audit_failures(prometheus::BuildCounter()
                           .Name("tokenbroker_audit_write_failures_total")
                           .Help("Audit records that could not be written.")
                           .Register(*registry)
                           .Add({})),
        build_info(prometheus::BuildGauge()
                       .Name("tokenbroker_build_info")
                       .Help("Always 1; the version is a label.")
                       .Register(*registry)) {
    build_info.Add({{"version", TOKENBROKER_VERSION}}).Set(1);
    reloads.Add({{"result", "ok"}});
    reloads.Add({{"result", "error"}});
    audit_failures.Increment(0);
  }

  RpcSeries& Series(absl::string_view full_method) {
    {
      absl::ReaderMutexLock lock(&mu);
      auto it = methods.find(full_method);
      if (it != methods.end()) return *it->second;
    }
    absl::MutexLock lock(&mu);
    auto it = methods.find(full_method);
    if (it != methods.end()) return *it->second;
    std::string key(full_method);
    if (methods.size() >= kMaxRpcMethods) {
      key = "/other/other";
      it = methods.find(key);
      if (it != methods.end()) return *it->second;
    }
    auto series = std::make_unique<RpcSeries>();
    std::tie(series->service, series->method) = SplitMethod(key);
    prometheus::Labels labels = {{"grpc_service", series->service},
                                 {"grpc_method", series->method}};
    series->started = &rpc_started.Add(labels);
    series->latency = &rpc_latency.Add(labels, LatencyBuckets());
    RpcSeries& result = *series;
    methods.emplace(std::move(key), std::move(series));
    return result;
  }

  prometheus::Counter& Handled(RpcSeries& series, int code) {
    if (code < 0 || code >= kGrpcCodes) code = 2;  // UNKNOWN
    prometheus::Counter* counter =
        series.handled[code].load(std::memory_order_acquire);
    if (counter != nullptr) return *counter;
    // Family::Add returns the existing series for equal labels, so a race
    // between two first uses stores the same pointer twice.
    counter = &rpc_handled.Add({{"grpc_service", series.service},
                                {"grpc_method", series.method},
                                {"grpc_code", kGrpcCodeNames[code]}});
    series.handled[code].store(counter, std::memory_order_release);
    return *counter;
  }

  std::vector<prometheus::MetricFamily> CollectState() const;

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& rpc_started;
  prometheus::Family<prometheus::Counter>& rpc_handled;
  prometheus::Family<prometheus::Histogram>& rpc_latency;
  prometheus::Family<prometheus::Counter>& token_fetches;
  prometheus::Family<prometheus::Histogram>& upstream_latency;
  prometheus::Family<prometheus::Counter>& upstream_responses;
  prometheus::Family<prometheus::Counter>& reloads;
  prometheus::Gauge& last_reload;
  prometheus::Counter& audit_failures;
  prometheus::Family<prometheus::Gauge>& build_info;

  mutable absl::Mutex mu;
  absl::flat_hash_map<std::string, std::unique_ptr<RpcSeries>> methods
      ABSL_GUARDED_BY(mu);
  const TokenCache* cache ABSL_GUARDED_BY(mu) = nullptr;
  const Clock* clock ABSL_GUARDED_BY(mu) = nullptr;
  std::function<UpstreamStats()> upstream_stats ABSL_GUARDED_BY(mu);
  std::function<ActiveRpcStats()> rpc_stats ABSL_GUARDED_BY(mu);
  std::function<UserGrantStats()> user_grant_stats ABSL_GUARDED_BY(mu);
  std::function<SharedStateStats()> shared_state_stats ABSL_GUARDED_BY(mu);
};

std::vector<prometheus::MetricFamily> BrokerMetrics::Impl::CollectState()
    const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  absl::ReaderMutexLock lock(&mu);
  if (cache != nullptr) {
    TokenCacheStats stats = cache->stats();
    AppendScalars(
        families, MetricType::Counter,
        {{"tokenbroker_cache_hits_total",
          "GetToken answers served from the cache without waiting.",
          static_cast<double>(stats.hits)},
         {"tokenbroker_cache_waits_total",
          "Callers that waited on an upstream token fetch.",
          static_cast<double>(stats.waits)},
         {"tokenbroker_cache_fetches_total", "Upstream token fetches started.",
          static_cast<double>(stats.fetches)},
         {"tokenbroker_cache_fetch_failures_total",
          "Upstream token fetches that failed.",
          static_cast<double>(stats.fetch_failures)},
         {"tokenbroker_cache_stale_served_total",
          "Tokens served with less than min_ttl left because refreshing "
          "failed.",
          static_cast<double>(stats.stale_served)},
         {"tokenbroker_cache_evictions_total", "Idle cache entries evicted.",
          static_cast<double>(stats.evictions)},
         {"tokenbroker_cache_withdrawn_total",
          "Waiting callers that went away (cancel, deadline) before their "
          "token came.",
          static_cast<double>(stats.withdrawn)}});

    std::vector<TokenEntryInfo> entries = cache->Snapshot();
    absl::Time now = clock != nullptr ? clock->Now() : absl::Now();
    // Per app: how many keys hold a valid token, and the least time left of
    // any of its keys (the one that will run out first).
    std::map<std::string, std::pair<int, double>> apps;
    for (const TokenEntryInfo& entry : entries) {
      double left =
          entry.valid
              ? std::max(0.0, absl::ToDoubleSeconds(entry.valid_until - now))
              : 0.0;
      auto [it, inserted] = apps.try_emplace(entry.app, 0, left);
      if (entry.valid) ++it->second.first;
      if (!inserted) it->second.second = std::min(it->second.second, left);
    }
    prometheus::MetricFamily keys =
        Family("tokenbroker_cache_keys",
               "Cache entries (one per app and scope set).", MetricType::Gauge);
    AddSample(keys, static_cast<double>(entries.size()));
    families.push_back(std::move(keys));
    prometheus::MetricFamily valid =
        Family("tokenbroker_tokens_valid",
               "Cache entries of the app that hold an unexpired token.",
               MetricType::Gauge);
    prometheus::MetricFamily expiry = Family(
        "tokenbroker_token_seconds_to_expiry",
        "Seconds until the app's soonest-expiring cached token expires (0 "
        "when one has no valid token).",
        MetricType::Gauge);
    for (const auto& [app, state] : apps) {
      AddSample(valid, state.first, {{"app", app}});
      AddSample(expiry, state.second, {{"app", app}});
    }
    families.push_back(std::move(valid));
    families.push_back(std::move(expiry));
  }
  std::map<std::string, int64_t> refused;
  if (cache != nullptr) {
    refused["max_waiters_per_key"] = cache->stats().waiters_refused;
  }
  if (rpc_stats) {
    ActiveRpcStats stats = rpc_stats();
    AppendScalars(
        families, MetricType::Gauge,
        {{"tokenbroker_calls_in_flight", "Call and CallStream RPCs in flight.",
          static_cast<double>(stats.calls_in_flight)},
         {"tokenbroker_watches_open", "WatchToken streams open.",
          static_cast<double>(stats.watches_open)},
         {"tokenbroker_call_streams_open", "CallStream streams open.",
          static_cast<double>(stats.call_streams_open)},
         {"tokenbroker_call_stream_buffer_bytes",
          "Body bytes queued for slow CallStream readers.",
          static_cast<double>(stats.stream_buffer_bytes)}});
    AppendScalars(families, MetricType::Counter,
                  {{"tokenbroker_call_stream_pauses_total",
                    "CallStream upstream transfers paused for a slow reader.",
                    static_cast<double>(stats.stream_pauses)},
                   {"tokenbroker_call_tokens_scrubbed_total",
                    "Copies of the injected token removed from Call answers.",
                    static_cast<double>(stats.tokens_scrubbed)}});
    prometheus::MetricFamily ended =
        Family("tokenbroker_streams_ended_total",
               "Streams the broker ended: grant_removed (a reload took the "
               "caller's key or grant away), max_lifetime.",
               MetricType::Counter);
    for (const char* reason : {"grant_removed", "max_lifetime"}) {
      auto it = stats.streams_ended.find(reason);
      AddSample(ended,
                it == stats.streams_ended.end()
                    ? 0.0
                    : static_cast<double>(it->second),
                {{"reason", reason}});
    }
    families.push_back(std::move(ended));
    for (const auto& [limit, count] : stats.refused) refused[limit] += count;
  }
  if (!refused.empty()) {
    prometheus::MetricFamily family =
        Family("tokenbroker_limit_rejections_total",
               "RPCs refused with RESOURCE_EXHAUSTED, by the limit reached.",
               MetricType::Counter);
    for (const auto& [limit, count] : refused) {
      AddSample(family, static_cast<double>(count), {{"limit", limit}});
    }
    families.push_back(std::move(family));
  }
  if (user_grant_stats) {
    UserGrantStats stats = user_grant_stats();
    prometheus::MetricFamily grants =
        Family("tokenbroker_user_grants",
               "User grants of user apps by state: connected, or "
               "needs_reauthorization (the user must connect again).",
               MetricType::Gauge);
    for (const auto& [app, counts] : stats.apps) {
      AddSample(grants, static_cast<double>(counts.connected),
                {{"app", app}, {"state", "connected"}});
      AddSample(grants, static_cast<double>(counts.needs_reauthorization),
                {{"app", app}, {"state", "needs_reauthorization"}});
    }
    families.push_back(std::move(grants));
    AppendScalars(families, MetricType::Gauge,
                  {{"tokenbroker_grant_store_unreadable_records",
                    "Grant store records that could not be read at start "
                    "(corrupt, or sealed with a key the broker lacks).",
                    static_cast<double>(stats.unreadable_records)},
                   {"tokenbroker_user_grants_unsaved",
                    "Rotated refresh tokens held in memory only, waiting for "
                    "the grant store (Redis) to be written back.",
                    static_cast<double>(stats.unsaved)}});
    prometheus::MetricFamily connects =
        Family("tokenbroker_oauth_connects_total",
               "Sign-ins through the broker's OAuth pages, by outcome.",
               MetricType::Counter);
    for (const auto& [outcome, count] : stats.connects) {
      AddSample(connects, static_cast<double>(count), {{"outcome", outcome}});
    }
    families.push_back(std::move(connects));
  }
  if (shared_state_stats) {
    SharedStateStats stats = shared_state_stats();
    AppendScalars(
        families, MetricType::Gauge,
        {{"tokenbroker_shared_state_up",
          "1 when commands to the shared state (Redis) work; 0: degraded, "
          "each replica fetches on its own.",
          stats.up ? 1.0 : 0.0},
         {"tokenbroker_shared_state_subscribed",
          "1 when revocations and reloads of other replicas arrive by "
          "pub/sub.",
          stats.subscribed ? 1.0 : 0.0}});
    AppendScalars(families, MetricType::Counter,
                  {{"tokenbroker_shared_state_errors_total",
                    "Redis commands that failed or timed out.",
                    static_cast<double>(stats.redis_errors)},
                   {"tokenbroker_shared_state_reconnects_total",
                    "Connections to Redis re-made.",
                    static_cast<double>(stats.reconnects)},
                   {"tokenbroker_shared_state_events_total",
                    "Revocations, reloads and grant changes received from "
                    "other replicas.",
                    static_cast<double>(stats.events_received)},
                   {"tokenbroker_shared_state_catch_ups_total",
                    "Revocations or reloads learnt by re-reading Redis "
                    "rather than by pub/sub.",
                    static_cast<double>(stats.catch_ups)}});
    prometheus::MetricFamily fetches =
        Family("tokenbroker_shared_fetches_total",
               "Token fetches through the shared state, by outcome: adopted, "
               "leader, waited, takeover, degraded, fenced.",
               MetricType::Counter);
    for (const auto& [outcome, count] : stats.fetches) {
      AddSample(fetches, static_cast<double>(count), {{"outcome", outcome}});
    }
    families.push_back(std::move(fetches));
  }
  if (upstream_stats) {
    UpstreamStats stats = upstream_stats();
    AppendScalars(families, MetricType::Counter,
                  {{"tokenbroker_upstream_requests_started_total",
                    "Upstream HTTP requests started.",
                    static_cast<double>(stats.requests_started)},
                   {"tokenbroker_upstream_requests_completed_total",
                    "Upstream HTTP requests completed, with any outcome.",
                    static_cast<double>(stats.requests_completed)},
                   {"tokenbroker_upstream_connections_opened_total",
                    "New upstream connections.",
                    static_cast<double>(stats.connections_opened)},
                   {"tokenbroker_upstream_connections_reused_total",
                    "Upstream requests that reused a connection.",
                    static_cast<double>(stats.connections_reused)}});
  }
  return families;
}

BrokerMetrics::BrokerMetrics() : impl_(std::make_unique<Impl>()) {}
BrokerMetrics::~BrokerMetrics() = default;

void BrokerMetrics::SetCacheSource(const TokenCache* cache,
                                   const Clock* clock) {
  absl::MutexLock lock(&impl_->mu);
  impl_->cache = cache;
  impl_->clock = clock;
}

void BrokerMetrics::SetUpstreamSource(std::function<UpstreamStats()> stats) {
  absl::MutexLock lock(&impl_->mu);
  impl_->upstream_stats = std::move(stats);
}

void BrokerMetrics::SetUserGrantSource(std::function<UserGrantStats()> stats) {
  absl::MutexLock lock(&impl_->mu);
  impl_->user_grant_stats = std::move(stats);
}

void BrokerMetrics::SetSharedStateSource(
    std::function<SharedStateStats()> stats) {
  absl::MutexLock lock(&impl_->mu);
  impl_->shared_state_stats = std::move(stats);
}

void BrokerMetrics::SetRpcSource(std::function<ActiveRpcStats()> stats) {
  absl::MutexLock lock(&impl_->mu);
  impl_->rpc_stats = std::move(stats);
}

BrokerMetrics::RpcSeries& BrokerMetrics::RpcStarted(
    absl::string_view full_method) {
  RpcSeries& series = impl_->Series(full_method);
  series.started->Increment();
  return series;
}

void BrokerMetrics::RpcHandled(RpcSeries& series, int grpc_code,
                               absl::Duration latency) {
  impl_->Handled(series, grpc_code).Increment();
  series.latency->Observe(absl::ToDoubleSeconds(latency));
}

void BrokerMetrics::TokenFetched(absl::string_view app,
                                 const absl::Status& status) {
  impl_->token_fetches
      .Add({{"app", std::string(app)},
            {"code", absl::StatusCodeToString(status.code())}})
      .Increment();
}

void BrokerMetrics::UpstreamExchange(absl::string_view kind,
                                     absl::string_view outcome,
                                     absl::Duration latency) {
  std::string kind_label(kind);
  impl_->upstream_latency.Add({{"kind", kind_label}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
  impl_->upstream_responses
      .Add({{"kind", kind_label}, {"outcome", std::string(outcome)}})
      .Increment();
}

void BrokerMetrics::ConfigLoaded(bool ok, absl::Time when) {
  impl_->reloads.Add({{"result", ok ? "ok" : "error"}}).Increment();
  if (ok)
    impl_->last_reload.Set(absl::ToDoubleSeconds(when - absl::UnixEpoch()));
}

void BrokerMetrics::AuditWriteFailed() { impl_->audit_failures.Increment(); }

std::string BrokerMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = impl_->registry->Collect();
  std::vector<prometheus::MetricFamily> state = impl_->CollectState();
  families.insert(families.end(), std::make_move_iterator(state.begin()),
                  std::make_move_iterator(state.end()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace tokenbroker
