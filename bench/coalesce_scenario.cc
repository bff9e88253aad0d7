// coalesce: N concurrent cold GetToken for one key (bench/scenarios.h).

#include <cstdint>
#include <cstdlib>
#include <iostream>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/scenarios.h"
#include "bench/unary_call.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;

json RunCoalesce(InProcessBroker& broker, int callers) {
  json rows = json::array();
  struct Variant {
    const char* app;
    int upstream_latency_ms;
  };
  for (Variant variant :
       {Variant{"coalesce-a", 0}, Variant{"coalesce-b", 100}}) {
    broker.emulator().ClearFaults();
    if (variant.upstream_latency_ms > 0) {
      emulator::Fault fault;
      fault.endpoint = "token";
      fault.kind = emulator::FaultKind::kLatency;
      fault.latency_ms = variant.upstream_latency_ms;
      broker.emulator().AddFault(fault);
    }
    int64_t before = broker.emulator()
                         .GetCounters()
                         .token_requests_by_client["exchange-reader"];
    pb::GetTokenRequest request;
    request.set_app(variant.app);
    absl::Mutex mu;
    int remaining = callers;
    int errors = 0;
    absl::Time start = absl::Now();
    absl::Time last_done;
    auto* stub = &broker.broker();
    for (int i = 0; i < callers; ++i) {
      StartGetToken(stub, request, [&](bool ok) {
        absl::MutexLock lock(&mu);
        if (!ok) ++errors;
        last_done = absl::Now();
        --remaining;
      });
    }
    {
      absl::MutexLock lock(&mu);
      auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return remaining == 0;
      };
      if (!mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Minutes(1))) {
        std::cerr << "coalesce: callers did not finish in a minute\n";
        std::exit(1);
      }
    }
    broker.emulator().ClearFaults();
    int64_t upstream = broker.emulator()
                           .GetCounters()
                           .token_requests_by_client["exchange-reader"] -
                       before;
    json row{{"callers", callers},
             {"upstream_latency_ms", variant.upstream_latency_ms},
             {"upstream_requests", upstream},
             {"errors", errors},
             {"time_ms", absl::ToDoubleMilliseconds(last_done - start)}};
    std::cerr << "coalesce " << row.dump() << "\n";
    rows.push_back(row);
  }
  return rows;
}

}  // namespace tokenbroker::bench
