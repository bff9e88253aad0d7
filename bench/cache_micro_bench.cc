// Micro-benchmarks of the cache hit path (Google Benchmark): what GetToken
// does per hit besides gRPC itself. Run by scripts/bench.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "service/auth/audit.h"
#include "service/cache/token_cache.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_token_source.h"

namespace tokenbroker {
namespace {

// A cache holding `keys` valid tokens (app "app-N", one scope each).
struct WarmCache {
  explicit WarmCache(int keys) : source(clock), cache(source, clock, {}) {
    for (int i = 0; i < keys; ++i) {
      TokenRequest request{absl::StrCat("app-", i), {"read:exchange"}};
      cache.Get(request, absl::Seconds(30), [](absl::StatusOr<TokenPtr>) {});
      source.Succeed(absl::Hours(1));
      cache_keys.push_back(CacheKey(request));
    }
  }
  testing::FakeClock clock;
  testing::FakeTokenSource source;
  TokenCache cache;
  std::vector<std::string> cache_keys;
};

WarmCache& Shared(int keys) {
  static auto* one = new WarmCache(1);
  static auto* many = new WarmCache(10000);
  return keys == 1 ? *one : *many;
}

// TokenCache::Lookup of a valid token: a reader lock, a hash lookup and a
// shared_ptr copy. Threads contend on the reader lock.
void BM_LookupHit(benchmark::State& state) {
  WarmCache& warm = Shared(static_cast<int>(state.range(0)));
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    const std::string& key = warm.cache_keys[i++ % warm.cache_keys.size()];
    TokenPtr token = warm.cache.Lookup(key, absl::Seconds(30));
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_LookupHit)->Arg(1)->Arg(10000)->Threads(1)->Threads(2)->Threads(8);

// CacheKey(): computed for every GetToken before the lookup.
void BM_CacheKey(benchmark::State& state) {
  TokenRequest request{
      "design-center",
      {"read:exchange", "view:design_center", "view:environment"}};
  for (auto _ : state) {
    std::string key = CacheKey(request);
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_CacheKey);

// TokenFingerprint(): the audit record of every hit names the token by it.
void BM_TokenFingerprint(benchmark::State& state) {
  std::string token(36, 'x');
  for (auto _ : state) {
    std::string fingerprint = TokenFingerprint(token);
    benchmark::DoNotOptimize(fingerprint);
  }
}
BENCHMARK(BM_TokenFingerprint);

// The whole cache side of a hit as GetToken runs it: key, lookup,
// fingerprint.
void BM_HitPath(benchmark::State& state) {
  WarmCache& warm = Shared(1);
  TokenRequest request{"app-0", {"read:exchange"}};
  for (auto _ : state) {
    TokenPtr token = warm.cache.Lookup(CacheKey(request), absl::Seconds(30));
    std::string fingerprint = TokenFingerprint(token->access_token);
    benchmark::DoNotOptimize(fingerprint);
  }
}
BENCHMARK(BM_HitPath)->Threads(1)->Threads(2);

// AuditRecordToJson(): every GetToken, hit or not, writes one audit record
// (RequestContext::Use). A typical hit's record.
void BM_AuditRecordToJson(benchmark::State& state) {
  AuditRecord record;
  record.time = absl::FromUnixSeconds(1800000000);
  record.event = "use";
  record.caller = "orders-service";
  record.auth = "mtls";
  record.principal = "spiffe://example.org/ns/shop/sa/orders";
  record.peer = "ipv4:10.0.0.12:53412";
  record.rpc = "TokenBroker.GetToken";
  record.app = "design-center";
  record.decision = "allow";
  record.reason = "granted";
  record.grpc_status = "OK";
  record.latency = absl::Microseconds(12);
  record.token_fingerprint = "0123456789ab";
  for (auto _ : state) {
    std::string line = AuditRecordToJson(record);
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_AuditRecordToJson);

}  // namespace
}  // namespace tokenbroker

BENCHMARK_MAIN();
