#include "bench/round_report.h"

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <unordered_map>

namespace tokenbroker::bench {

using nlohmann::json;

json ToJson(const LoadResult& r) {
  return json{
      {"requests", r.requests},
      {"errors", r.errors},
      {"seconds", r.seconds},
      {"throughput", r.throughput()},
      {"p50_us", r.p50_us},
      {"p90_us", r.p90_us},
      {"p99_us", r.p99_us},
      {"max_us", r.max_us},
      {"cpu_us_per_request", r.cpu_us_per_request()},
      {"context_switches_per_request", r.context_switches_per_request()}};
}

json BestOfRounds(const std::vector<LoadResult>& rounds) {
  const LoadResult& best =
      *std::max_element(rounds.begin(), rounds.end(),
                        [](const LoadResult& a, const LoadResult& b) {
                          return a.throughput() < b.throughput();
                        });
  json result = ToJson(best);
  int64_t errors = 0;
  json each = json::array();
  for (const LoadResult& r : rounds) {
    errors += r.errors;
    each.push_back(ToJson(r));
  }
  result["rounds"] = rounds.size();
  result["errors"] = errors;  // Of every round, not only the best.
  result["each_round"] = each;
  return result;
}

json RunRounds(absl::string_view scenario, const RoundOptions& options,
               const std::vector<RoundKind>& kinds) {
  json rows = json::array();
  for (int concurrency : options.concurrency) {
    std::unordered_map<std::string, std::vector<LoadResult>> results;
    for (int round = 0; round < std::max(1, options.rounds); ++round) {
      for (const RoundKind& kind : kinds) {
        if (kind.before_run) kind.before_run();
        LoadResult result = RunClosedLoop(concurrency, options.warmup,
                                          options.duration, kind.start);
        if (kind.after_run) kind.after_run();
        std::cerr << scenario << " " << kind.name << " c=" << concurrency
                  << " round " << round + 1 << ": "
                  << static_cast<int64_t>(result.throughput()) << "/s p50 "
                  << result.p50_us << " us p99 " << result.p99_us << " us, "
                  << result.cpu_us_per_request() << " us CPU and "
                  << result.context_switches_per_request()
                  << " context switches per request\n";
        results[kind.name].push_back(result);
      }
    }
    json row{{"concurrency", concurrency}};
    for (const auto& [name, runs] : results) {
      row[name] = BestOfRounds(runs);
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace tokenbroker::bench
