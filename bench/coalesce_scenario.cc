// coalesce: N concurrent cold GetToken for one key (bench/scenarios.h).

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <utility>

#include "bench/load.h"
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
    auto* stub = &broker.broker();
    BurstResult burst =
        RunBurst(callers, [&](int, std::function<void(bool)> done) {
          StartGetToken(stub, request, std::move(done));
        });
    if (burst.unanswered > 0) {
      std::cerr << "coalesce: callers did not finish in a minute\n";
      std::exit(1);
    }
    broker.emulator().ClearFaults();
    int64_t upstream = broker.emulator()
                           .GetCounters()
                           .token_requests_by_client["exchange-reader"] -
                       before;
    json row{{"callers", callers},
             {"upstream_latency_ms", variant.upstream_latency_ms},
             {"upstream_requests", upstream},
             {"errors", burst.errors},
             {"time_ms", burst.seconds * 1000}};
    std::cerr << "coalesce " << row.dump() << "\n";
    rows.push_back(row);
  }
  return rows;
}

}  // namespace tokenbroker::bench
