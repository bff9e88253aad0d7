#ifndef TOKENBROKER_BENCH_SCENARIOS_H_
#define TOKENBROKER_BENCH_SCENARIOS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "bench/broker_harness.h"
#include "bench/round_report.h"
#include "nlohmann/json.hpp"

// The end-to-end scenarios of tokenbroker_bench (bench/rpc_bench.cc runs
// them); each returns its part of the output JSON, which bench/report.py
// reads, and reports progress on stderr. Each exits the process when it
// cannot set itself up. Everything is on loopback; every loop is bounded by
// time or count.
namespace tokenbroker::bench {

// rpc: GetToken cache hits vs an empty unary RPC registered in the same
// server (callback API) and vs grpc.health.v1.Health/Check, over one
// channel. `kinds`: which of baseline, baseline_token, get_token and health
// to measure. Needs RegisterBaselineInEveryServer() before the broker.
nlohmann::json RunRpc(InProcessBroker& broker, const RoundOptions& options,
                      const std::vector<std::string>& kinds);

// call: Call through the broker vs the same request sent directly to the
// emulator with libcurl. `paths` names the paths to measure ("direct",
// "broker"; any text that contains the name).
nlohmann::json RunCall(InProcessBroker& broker, const RoundOptions& options,
                       const std::string& paths);

// coalesce: `callers` concurrent cold GetToken for one key, with and
// without upstream latency: upstream requests and time to serve all.
nlohmann::json RunCoalesce(InProcessBroker& broker, int callers);

// refresh: 10 minutes of simulated time (fake clock, TokenCache and a token
// source answering after a simulated delay) with 60 s tokens and steady
// load: callers that waited after warm-up. No network.
nlohmann::json RunRefresh();

// scale: the token-broker binary in its own process with `keys` cached
// keys and `connections` client connections: RSS and GetToken latency
// under a closed loop of `load` (after a second of warm-up).
nlohmann::json RunScale(int keys, int connections, absl::Duration load);

// user_refresh: apps acting on behalf of users (refresh_token grant) beside
// apps acting on their own behalf (client_credentials), in one run of one
// in-process broker with its own emulator. `grants` users sign in to the
// emulator's env-viewer-app for real (sign-in and consent through the
// scripted browser, code exchange); their refresh tokens are sealed into the
// broker's grant store before it starts; every refresh rotates the refresh
// token (so each one also writes the store). Against them, as many
// client-credentials apps. For each path: `cold_callers_per_key` concurrent
// cold GetToken per key (upstream requests; one per key when they
// coalesce), then `callers_per_key` closed-loop callers per key for
// `warmup` and `duration` with tokens of `token_lifetime_s`: upstream
// requests per key per refresh cycle, callers that waited after warm-up,
// GetToken latency.
struct UserRefreshOptions {
  int grants = 4;
  int callers_per_key = 8;
  int cold_callers_per_key = 250;
  int token_lifetime_s = 3;
  absl::Duration warmup = absl::Seconds(2);
  absl::Duration duration = absl::Seconds(20);
  bool audit = true;
};
nlohmann::json RunUserRefresh(const UserRefreshOptions& options);

// replicas: shared state on Redis (issue 13). One redis-server and the
// emulator; token-broker processes with and without `shared_state.redis`.
// Cycles: for each count in `replicas`, that many replicas, `keys` keys,
// `callers_per_replica` closed-loop callers on each (one key each) for
// `duration` with tokens of `token_lifetime_s`: cold upstream requests per
// key and upstream requests per key per refresh cycle, shared state on and
// off. Hit path: GetToken hits on one replica with shared state and one
// without, in alternating rounds, and Redis's INFO commandstats over the
// shared runs against an idle window as long (a hit sends no command).
// Skipped (a note in the JSON) when redis-server is not installed.
struct ReplicasOptions {
  std::vector<int> replicas = {1, 3, 10};
  int keys = 4;
  int callers_per_replica = 4;
  int token_lifetime_s = 3;
  absl::Duration duration = absl::Seconds(12);
  std::vector<int> hit_concurrency = {1, 16};
  int hit_rounds = 3;
  absl::Duration hit_duration = absl::Seconds(2);
};
nlohmann::json RunReplicas(const ReplicasOptions& options);

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_SCENARIOS_H_
