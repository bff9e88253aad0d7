#ifndef TOKENBROKER_BENCH_ROUND_REPORT_H_
#define TOKENBROKER_BENCH_ROUND_REPORT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::bench {

// The figures of one run, as the output JSON holds them (bench/report.py
// reads these names).
nlohmann::json ToJson(const LoadResult& r);

// One kind's rounds as one result: the figures of its fastest round (the
// one least disturbed by whatever else the machine did; on a shared
// two-core machine a round now and then runs at half speed), with every
// round kept under "each_round".
nlohmann::json BestOfRounds(const std::vector<LoadResult>& rounds);

// How the rpc and call scenarios measure: at each concurrency level,
// `rounds` rounds (at least one) in which every kind runs once, in turn, so
// that a change in the machine's load during the run hits them alike.
struct RoundOptions {
  std::vector<int> concurrency;
  int rounds = 1;
  absl::Duration warmup;    // Of each run, not measured.
  absl::Duration duration;  // Measured, of each run.
};

// One kind of request that the rounds measure.
struct RoundKind {
  std::string name;
  StartFn start;
  std::function<void()> before_run = nullptr;  // Optional: each run's set-up.
  std::function<void()> after_run = nullptr;   // Optional: clean-up.
};

// Runs the rounds, reports each run on stderr as
//   "<scenario> <kind> c=<n> round <r>: <rate>/s p50 ... per request"
// and returns one row per concurrency level:
//   {"concurrency": n, "<kind>": BestOfRounds(its runs), ...}.
nlohmann::json RunRounds(absl::string_view scenario,
                         const RoundOptions& options,
                         const std::vector<RoundKind>& kinds);

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_ROUND_REPORT_H_
