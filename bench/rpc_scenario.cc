// rpc: GetToken hits vs baseline vs health (bench/scenarios.h).

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "bench/baseline_service.h"
#include "bench/scenarios.h"
#include "bench/unary_call.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;

json RunRpc(InProcessBroker& broker, const RoundOptions& options,
            const std::vector<std::string>& wanted) {
  // Warm the key so that every measured GetToken is a hit.
  pb::GetTokenRequest get_token;
  get_token.set_app("design-center");
  {
    grpc::ClientContext context;
    pb::GetTokenResponse response;
    grpc::Status status =
        broker.broker().GetToken(&context, get_token, &response);
    if (!status.ok()) {
      std::cerr << "GetToken: " << status.error_message() << "\n";
      std::exit(1);
    }
    TheBaseline().SetTokenAnswer(response);
  }
  Empty empty;
  grpc::health::v1::HealthCheckRequest health;
  auto* stub = &broker.broker();
  auto* baseline = &broker.baseline();
  auto* health_stub = &broker.health();

  std::vector<RoundKind> kinds = {
      {"baseline",
       [&](int, std::function<void(bool)> done) {
         Unary<Empty, Empty>(
             [baseline](auto... args) { baseline->async()->Ping(args...); },
             empty, [](const grpc::Status& s, const Empty&) { return s.ok(); },
             std::move(done));
       }},
      {"baseline_token",
       [&](int, std::function<void(bool)> done) {
         Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
             [baseline](auto... args) {
               baseline->async()->PingToken(args...);
             },
             get_token,
             [](const grpc::Status& s, const pb::GetTokenResponse& r) {
               return s.ok() && !r.access_token().empty();
             },
             std::move(done));
       }},
      {"get_token",
       [&](int, std::function<void(bool)> done) {
         StartGetToken(stub, get_token, std::move(done));
       }},
      {"health",
       [&](int, std::function<void(bool)> done) {
         Unary<grpc::health::v1::HealthCheckRequest,
               grpc::health::v1::HealthCheckResponse>(
             [health_stub](auto... args) {
               health_stub->async()->Check(args...);
             },
             health,
             [](const grpc::Status& s,
                const grpc::health::v1::HealthCheckResponse& r) {
               return s.ok() &&
                      r.status() ==
                          grpc::health::v1::HealthCheckResponse::SERVING;
             },
             std::move(done));
       }},
  };
  kinds.erase(std::remove_if(kinds.begin(), kinds.end(),
                             [&](const RoundKind& kind) {
                               return std::find(wanted.begin(), wanted.end(),
                                                kind.name) == wanted.end();
                             }),
              kinds.end());
  return RunRounds("rpc", options, kinds);
}

}  // namespace tokenbroker::bench
