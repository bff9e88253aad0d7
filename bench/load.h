#ifndef TOKENBROKER_BENCH_LOAD_H_
#define TOKENBROKER_BENCH_LOAD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tokenbroker::bench {

// Latency percentiles and throughput of one measured run.
struct LoadResult {
  int64_t requests = 0;  // Completed inside the measured window.
  int64_t errors = 0;    // Of those, not OK.
  double seconds = 0;    // Length of the measured window.
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;
  // CPU time (user + system) of the whole process during the measured
  // window: client, server and anything else this process runs.
  double cpu_seconds = 0;
  int64_t context_switches = 0;  // Of the process, in the window.
  double throughput() const { return seconds > 0 ? requests / seconds : 0; }
  double cpu_us_per_request() const {
    return requests > 0 ? cpu_seconds * 1e6 / requests : 0;
  }
  double context_switches_per_request() const {
    return requests > 0 ? static_cast<double>(context_switches) / requests : 0;
  }
};

// Percentiles of `latencies_ns` (sorted in place).
void Summarize(std::vector<int64_t>& latencies_ns, LoadResult& result);

// Starts one request and calls `done(ok)` exactly once when it completes,
// on any thread; must not block.
using StartFn = std::function<void(int caller, std::function<void(bool)> done)>;

// A closed loop: `concurrency` callers, each sending its next request as
// soon as the previous one answers, for `warmup` (not measured) and then
// `duration`. Every caller's latency counts. Bounded by time: returns after
// warmup + duration + the last answers.
LoadResult RunClosedLoop(int concurrency, absl::Duration warmup,
                         absl::Duration duration, const StartFn& start);

// A burst: `count` requests started at once (request i by start(i, done)).
struct BurstResult {
  int64_t errors = 0;      // Answered not OK.
  int64_t unanswered = 0;  // Not answered within a minute.
  double seconds = 0;      // From the first start to the last answer.
};

// Starts the burst and waits for every answer, at most a minute.
BurstResult RunBurst(int count, const StartFn& start);

// VmRSS, VmHWM (KiB) and Threads of a process from /proc/PID/status
// (pid 0: this process). -1 if unreadable.
struct ProcStatus {
  int64_t rss_kib = -1;
  int64_t hwm_kib = -1;
  int64_t threads = -1;
};
ProcStatus ReadProcStatus(int pid = 0);

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_LOAD_H_
