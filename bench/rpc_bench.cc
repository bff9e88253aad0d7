// The broker's end-to-end benchmarks (issue 7), run by scripts/bench: parses
// the flags, runs the scenarios asked for and writes one JSON object (--out)
// that bench/report.py turns into a table. The scenarios (bench/scenarios.h,
// one file each):
//   rpc       GetToken cache hits vs an empty unary RPC registered in the same
//             server (callback API) and vs grpc.health.v1.Health/Check; one
//             client channel; 1, 8 and 64 concurrent callers.
//   call      Call through the broker vs the same request sent directly to
//             the emulator with libcurl.
//   coalesce  1000 concurrent cold GetToken for one key: upstream requests
//             and time to serve all.
//   refresh   10 minutes of simulated time (fake clock, TokenCache and a
//             token source answering after a simulated delay) with 60 s
//             tokens and steady load: callers that waited after warm-up.
//   user_refresh  apps acting on behalf of users (refresh_token grant, real
//             sign-ins, rotation on) beside client-credentials apps, in one
//             broker: cold coalescing, then tokens of 3 s under steady
//             load: upstream requests per key per cycle, callers that
//             waited, latency.
//   replicas  1, 3 and 10 token-broker processes over one redis-server,
//             shared state on and off: upstream requests per key per cycle;
//             the hit path on and off, and Redis commands during hits.
//   scale     the token-broker binary in its own process with 10,000 cached
//             keys and 1,000 client connections: RSS and GetToken p99.
// rpc, call and coalesce share one in-process broker; user_refresh has its
// own (bench/
// broker_harness.h); the per-round report is bench/round_report.h.
// Everything is on loopback; every loop is bounded by time or count.

#include <curl/curl.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/baseline_service.h"
#include "bench/broker_harness.h"
#include "bench/round_report.h"
#include "bench/scenarios.h"
#include "nlohmann/json.hpp"
#include "service/common/log.h"

ABSL_FLAG(std::string, scenarios,
          "rpc,call,coalesce,refresh,user_refresh,replicas,scale",
          "Comma-separated scenarios to run.");
ABSL_FLAG(std::string, out, "", "Write the results (JSON) here.");
ABSL_FLAG(double, seconds, 2, "Measured seconds per rpc/call run.");
ABSL_FLAG(double, warmup_seconds, 0.5, "Warm-up seconds per run.");
ABSL_FLAG(std::string, concurrency, "1,8,64", "Concurrent callers.");
ABSL_FLAG(int, coalesce_callers, 1000, "Concurrent cold GetToken calls.");
ABSL_FLAG(int, user_grants, 4,
          "user_refresh: user grants (and client-credentials apps).");
ABSL_FLAG(int, user_callers, 8, "user_refresh: callers per key.");
ABSL_FLAG(int, user_cold_callers, 250,
          "user_refresh: concurrent cold GetToken per key.");
ABSL_FLAG(int, user_token_lifetime, 3,
          "user_refresh: access token lifetime (s) at the emulator.");
ABSL_FLAG(double, user_seconds, 20,
          "user_refresh: measured seconds of each path.");
ABSL_FLAG(std::string, replicas_counts, "1,3,10",
          "replicas: how many replicas in each run.");
ABSL_FLAG(double, replicas_seconds, 12,
          "replicas: measured seconds of each cycles run.");
ABSL_FLAG(int, scale_keys, 10000, "Cached keys in the scale scenario.");
ABSL_FLAG(int, scale_connections, 1000, "Client connections (scale).");
ABSL_FLAG(double, scale_seconds, 5, "Measured seconds of the scale load.");
ABSL_FLAG(std::string, rpc_kinds, "baseline,baseline_token,get_token,health",
          "Which RPCs the rpc scenario measures (for profiling one).");
ABSL_FLAG(std::string, call_paths, "direct,broker",
          "Which paths the call scenario measures (for profiling one).");
ABSL_FLAG(int, call_rounds, 3,
          "Rounds of the call scenario (each path once per round; each "
          "reports its fastest round).");
ABSL_FLAG(int, rounds, 5,
          "Rounds of the rpc scenario: each round runs every RPC kind once, "
          "in turn; each kind reports its fastest round.");
ABSL_FLAG(bool, audit, true,
          "Audit to a file, as in production (false: no audit sink).");

namespace tokenbroker::bench {
namespace {

using nlohmann::json;

std::vector<int> ConcurrencyLevels() {
  std::vector<int> levels;
  for (absl::string_view part :
       absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int n = 0;
    if (absl::SimpleAtoi(part, &n) && n > 0) levels.push_back(n);
  }
  return levels;
}

absl::Duration Seconds(double s) { return absl::Milliseconds(s * 1000); }

// The rpc and call scenarios' rounds: `rounds` of each.
RoundOptions Rounds(int rounds) {
  RoundOptions options;
  options.concurrency = ConcurrencyLevels();
  options.rounds = rounds;
  options.warmup = Seconds(absl::GetFlag(FLAGS_warmup_seconds));
  options.duration = Seconds(absl::GetFlag(FLAGS_seconds));
  return options;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string line;
  std::getline(in, line);
  return line;
}

int Main() {
  SetLogLevel(LogLevel::kWarning);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  RegisterBaselineInEveryServer();
  std::vector<std::string> scenarios =
      absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',', absl::SkipEmpty());
  auto wants = [&](absl::string_view name) {
    return std::find(scenarios.begin(), scenarios.end(), name) !=
           scenarios.end();
  };
  json out{{"loadavg_before", LoadAverage()},
           {"audit", absl::GetFlag(FLAGS_audit)},
           {"seconds_per_run", absl::GetFlag(FLAGS_seconds)},
           {"nproc", std::thread::hardware_concurrency()}};
  if (wants("rpc") || wants("call") || wants("coalesce")) {
    InProcessBroker broker(absl::GetFlag(FLAGS_audit));
    if (wants("rpc")) {
      std::vector<std::string> kinds =
          absl::StrSplit(absl::GetFlag(FLAGS_rpc_kinds), ',');
      out["rpc"] = RunRpc(broker, Rounds(absl::GetFlag(FLAGS_rounds)), kinds);
    }
    if (wants("call")) {
      out["call"] = RunCall(broker, Rounds(absl::GetFlag(FLAGS_call_rounds)),
                            absl::GetFlag(FLAGS_call_paths));
    }
    if (wants("coalesce")) {
      out["coalesce"] =
          RunCoalesce(broker, absl::GetFlag(FLAGS_coalesce_callers));
    }
  }
  if (wants("refresh")) out["refresh"] = RunRefresh();
  if (wants("user_refresh")) {
    UserRefreshOptions options;
    options.grants = absl::GetFlag(FLAGS_user_grants);
    options.callers_per_key = absl::GetFlag(FLAGS_user_callers);
    options.cold_callers_per_key = absl::GetFlag(FLAGS_user_cold_callers);
    options.token_lifetime_s = absl::GetFlag(FLAGS_user_token_lifetime);
    options.duration = Seconds(absl::GetFlag(FLAGS_user_seconds));
    options.audit = absl::GetFlag(FLAGS_audit);
    out["user_refresh"] = RunUserRefresh(options);
  }
  if (wants("replicas")) {
    ReplicasOptions options;
    options.replicas.clear();
    for (absl::string_view n :
         absl::StrSplit(absl::GetFlag(FLAGS_replicas_counts), ',')) {
      if (int count = 0; absl::SimpleAtoi(n, &count) && count > 0) {
        options.replicas.push_back(count);
      }
    }
    options.duration = Seconds(absl::GetFlag(FLAGS_replicas_seconds));
    options.hit_duration = Seconds(absl::GetFlag(FLAGS_seconds));
    out["replicas"] = RunReplicas(options);
  }
  if (wants("scale")) {
    out["scale"] = RunScale(absl::GetFlag(FLAGS_scale_keys),
                            absl::GetFlag(FLAGS_scale_connections),
                            Seconds(absl::GetFlag(FLAGS_scale_seconds)));
  }
  out["loadavg_after"] = LoadAverage();
  std::string text = out.dump(2);
  if (std::string path = absl::GetFlag(FLAGS_out); !path.empty()) {
    WriteFile(path, text + "\n");
  } else {
    std::cout << text << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace tokenbroker::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tokenbroker::bench::Main();
}
