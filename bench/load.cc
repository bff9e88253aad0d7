#include "bench/load.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

namespace tokenbroker::bench {
namespace {

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

// CPU seconds (user + system) and context switches of this process so far.
struct ProcessUsage {
  double cpu_seconds;
  int64_t context_switches;

  static ProcessUsage Now() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return {seconds(usage.ru_utime) + seconds(usage.ru_stime),
            usage.ru_nvcsw + usage.ru_nivcsw};
  }
};

// State of one closed-loop run, shared by the callers' completions.
struct Loop {
  const StartFn* start;
  int64_t measure_from_ns;
  int64_t stop_at_ns;
  // One slot per caller: its completions are sequential, so the vectors
  // need no lock; `mu` publishes them to the collecting thread.
  std::vector<std::vector<int64_t>> latencies;
  std::vector<int64_t> errors;
  absl::Mutex mu;
  int running ABSL_GUARDED_BY(mu) = 0;

  void Send(int caller) {
    int64_t sent = NowNs();
    (*start)(caller, [this, caller, sent](bool ok) {
      int64_t now = NowNs();
      if (sent >= measure_from_ns && now <= stop_at_ns) {
        latencies[caller].push_back(now - sent);
        if (!ok) ++errors[caller];
      }
      if (now < stop_at_ns) {
        Send(caller);
        return;
      }
      absl::MutexLock lock(&mu);
      --running;
    });
  }
};

}  // namespace

void Summarize(std::vector<int64_t>& latencies_ns, LoadResult& result) {
  if (latencies_ns.empty()) return;
  std::sort(latencies_ns.begin(), latencies_ns.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * (latencies_ns.size() - 1) + 0.5);
    return latencies_ns[std::min(i, latencies_ns.size() - 1)] / 1000.0;
  };
  result.p50_us = at(0.50);
  result.p90_us = at(0.90);
  result.p99_us = at(0.99);
  result.max_us = latencies_ns.back() / 1000.0;
}

LoadResult RunClosedLoop(int concurrency, absl::Duration warmup,
                         absl::Duration duration, const StartFn& start) {
  auto loop = std::make_unique<Loop>();
  loop->start = &start;
  int64_t now = NowNs();
  loop->measure_from_ns = now + absl::ToInt64Nanoseconds(warmup);
  loop->stop_at_ns = loop->measure_from_ns + absl::ToInt64Nanoseconds(duration);
  loop->latencies.resize(concurrency);
  loop->errors.assign(concurrency, 0);
  {
    absl::MutexLock lock(&loop->mu);
    loop->running = concurrency;
  }
  for (int caller = 0; caller < concurrency; ++caller) loop->Send(caller);
  // What the process spends inside the measured window.
  absl::SleepFor(absl::FromUnixNanos(loop->measure_from_ns) - absl::Now());
  ProcessUsage from = ProcessUsage::Now();
  absl::SleepFor(absl::FromUnixNanos(loop->stop_at_ns) - absl::Now());
  ProcessUsage to = ProcessUsage::Now();
  {
    absl::MutexLock lock(&loop->mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop->mu) {
      return loop->running == 0;
    };
    // Callers stuck past the window by more than a minute are a failure of
    // the system under test; give up on them rather than hang.
    loop->mu.AwaitWithTimeout(absl::Condition(&done),
                              warmup + duration + absl::Minutes(1));
    if (loop->running != 0) {
      // Leak the loop: late completions still reference it.
      Loop* leaked = loop.release();
      LoadResult result;
      result.errors = leaked->running;
      return result;
    }
  }
  LoadResult result;
  result.seconds = absl::ToDoubleSeconds(duration);
  result.cpu_seconds = to.cpu_seconds - from.cpu_seconds;
  result.context_switches = to.context_switches - from.context_switches;
  std::vector<int64_t> all;
  for (int caller = 0; caller < concurrency; ++caller) {
    all.insert(all.end(), loop->latencies[caller].begin(),
               loop->latencies[caller].end());
    result.errors += loop->errors[caller];
  }
  result.requests = static_cast<int64_t>(all.size());
  Summarize(all, result);
  return result;
}

BurstResult RunBurst(int count, const StartFn& start) {
  // Shared with the completions, which may outlive this call (a minute).
  struct Burst {
    absl::Mutex mu;
    int remaining ABSL_GUARDED_BY(mu) = 0;
    int64_t errors ABSL_GUARDED_BY(mu) = 0;
    int64_t last_done_ns ABSL_GUARDED_BY(mu) = 0;
  };
  auto burst = std::make_shared<Burst>();
  {
    absl::MutexLock lock(&burst->mu);
    burst->remaining = count;
  }
  int64_t started_ns = NowNs();
  for (int i = 0; i < count; ++i) {
    start(i, [burst](bool ok) {
      absl::MutexLock lock(&burst->mu);
      if (!ok) ++burst->errors;
      burst->last_done_ns = NowNs();
      --burst->remaining;
    });
  }
  absl::MutexLock lock(&burst->mu);
  auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(burst->mu) {
    return burst->remaining == 0;
  };
  burst->mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Minutes(1));
  BurstResult result;
  result.errors = burst->errors;
  result.unanswered = burst->remaining;
  if (burst->last_done_ns != 0) {
    result.seconds = (burst->last_done_ns - started_ns) / 1e9;
  }
  return result;
}

ProcStatus ReadProcStatus(int pid) {
  ProcStatus status;
  std::ifstream in(pid == 0 ? std::string("/proc/self/status")
                            : absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view view(line);
    auto field = [&](absl::string_view name, int64_t& out) {
      if (!absl::ConsumePrefix(&view, name)) return;
      view = absl::StripAsciiWhitespace(view);
      absl::ConsumeSuffix(&view, "kB");
      view = absl::StripAsciiWhitespace(view);
      int64_t value = 0;
      if (absl::SimpleAtoi(view, &value)) out = value;
    };
    field("VmRSS:", status.rss_kib);
    field("VmHWM:", status.hwm_kib);
    field("Threads:", status.threads);
  }
  return status;
}

}  // namespace tokenbroker::bench
