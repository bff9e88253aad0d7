#ifndef TOKENBROKER_SERVICE_METRICS_BROKER_METRICS_H_
#define TOKENBROKER_SERVICE_METRICS_BROKER_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/cache/token_cache.h"
#include "service/common/clock.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {

// What the gRPC layer reports at scrape time about the RPCs it holds
// (ActiveRpcs) and the Calls it forwarded.
struct ActiveRpcStats {
  int64_t calls_in_flight = 0;
  int64_t watches_open = 0;
  int64_t call_streams_open = 0;
  int64_t stream_buffer_bytes = 0;
  int64_t stream_pauses = 0;  // CallStream transfers paused for a slow reader.
  // Refusals per limit name (e.g. "max_calls_per_caller").
  std::map<std::string, int64_t> refused;
  // Streams ended by the broker: "grant_removed", "max_lifetime".
  std::map<std::string, int64_t> streams_ended;
  // Copies of the injected token removed from Call answers.
  int64_t tokens_scrubbed = 0;
};

// What the user apps report at scrape time: their grants and the outcomes
// of the browser sign-in flow.
struct UserGrantStats {
  struct AppGrants {
    int64_t connected = 0;
    int64_t needs_reauthorization = 0;
  };
  std::map<std::string, AppGrants> apps;  // By configured app name.
  // Grant store records that could not be read at start.
  int64_t unreadable_records = 0;
  // Rotated refresh tokens held in memory only: the shared store could not
  // be written (written back when it can).
  int64_t unsaved = 0;
  // Sign-ins through the OAuth pages by outcome (a fixed set of words such
  // as "connected", "denied", "bad_state").
  std::map<std::string, int64_t> connects;
};

// Shared state on Redis (service/shared), read at scrape time.
struct SharedStateStats {
  bool up = false;          // Commands to Redis work (not degraded).
  bool subscribed = false;  // Revocations and reloads arrive by pub/sub.
  // Outcomes of token fetches that went through the shared state:
  // "adopted" (another replica's token), "leader" (this replica fetched
  // under the lease), "waited", "takeover" (a holder's lease expired),
  // "degraded" (Redis unusable: fetched alone), "fenced" (a write refused:
  // a newer lease holder wrote first).
  std::map<std::string, int64_t> fetches;
  int64_t redis_errors = 0;     // Commands that failed or timed out.
  int64_t reconnects = 0;       // Connections re-made.
  int64_t events_received = 0;  // Revocations and reloads from others.
  int64_t catch_ups = 0;        // Generations learnt by re-reading Redis.
};

// The broker's Prometheus metrics, in the text exposition format 0.0.4.
//
// Two kinds of series:
// - events, recorded as they happen by the gRPC interceptor
//   (MetricsInterceptorFactory), the fetch observer, the instrumented HTTP
//   client and audit sink, and config reloads;
// - state, read at scrape time from the token cache (stats() and
//   Snapshot()) and the upstream HTTP clients (UpstreamStats).
//
// Label values are only configured app names, gRPC method names, status
// code names and HTTP status codes: never a token, secret, caller key or
// anything else a caller chose. The number of distinct gRPC methods is
// capped (kMaxRpcMethods); later ones are counted as method "other".
//
// Thread-safe. The sources given to SetCacheSource() and
// SetUpstreamSource() must outlive every Serialize() call, or be cleared
// first.
class BrokerMetrics {
 public:
  static constexpr int kMaxRpcMethods = 64;

  BrokerMetrics();
  ~BrokerMetrics();
  BrokerMetrics(const BrokerMetrics&) = delete;
  BrokerMetrics& operator=(const BrokerMetrics&) = delete;

  // Scrape-time sources; nullptr clears. `clock` gives "now" for the
  // seconds-to-expiry gauge.
  void SetCacheSource(const TokenCache* cache, const Clock* clock);
  void SetUpstreamSource(std::function<UpstreamStats()> stats);
  void SetRpcSource(std::function<ActiveRpcStats()> stats);
  void SetUserGrantSource(std::function<UserGrantStats()> stats);
  void SetSharedStateSource(std::function<SharedStateStats()> stats);

  // The series of one gRPC method; lives as long as this object.
  struct RpcSeries;

  // One RPC of `full_method` (gRPC's "/package.Service/Method") started.
  // Returns its method's series, for RpcHandled() when it finishes (so that
  // the method is looked up once per RPC).
  RpcSeries& RpcStarted(absl::string_view full_method);
  void RpcHandled(RpcSeries& series, int grpc_code, absl::Duration latency);

  // One upstream token fetch of `app` finished with `status`.
  void TokenFetched(absl::string_view app, const absl::Status& status);

  // One upstream HTTP exchange finished. `kind` is "token" (token and
  // revoke endpoints) or "call"; `outcome` is the HTTP status ("200") or,
  // for a transport failure, the status code name ("UNAVAILABLE").
  void UpstreamExchange(absl::string_view kind, absl::string_view outcome,
                        absl::Duration latency);

  // The config was loaded (at start, or reloaded: `ok`) or a reload was
  // rejected, at `when`.
  void ConfigLoaded(bool ok, absl::Time when);

  // An audit record could not be written.
  void AuditWriteFailed();

  // Every series, in the Prometheus text format 0.0.4.
  std::string Serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The Content-Type of Serialize()'s output.
inline constexpr char kPrometheusTextContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_METRICS_BROKER_METRICS_H_
