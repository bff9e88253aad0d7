#ifndef TOKENBROKER_BENCH_BASELINE_SERVICE_H_
#define TOKENBROKER_BENCH_BASELINE_SERVICE_H_

#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "baseline.grpc.pb.h"

namespace tokenbroker::bench {

// The baseline of the rpc scenario: an empty unary RPC (Ping) and one that
// carries GetToken's request and answer (PingToken), with the callback API.
class BaselineService final : public Baseline::CallbackService {
 public:
  // The answer of PingToken; set before the first PingToken call.
  void SetTokenAnswer(
      const ::anypoint::tokenbroker::v1::GetTokenResponse& answer) {
    token_answer_ = answer;
  }

 private:
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const Empty*, Empty*) override;
  grpc::ServerUnaryReactor* PingToken(
      grpc::CallbackServerContext* context,
      const ::anypoint::tokenbroker::v1::GetTokenRequest*,
      ::anypoint::tokenbroker::v1::GetTokenResponse* response) override;

  ::anypoint::tokenbroker::v1::GetTokenResponse token_answer_;
};

// The process's one BaselineService.
BaselineService& TheBaseline();

// Registers TheBaseline() in every gRPC server the process builds from now
// on (here: only the broker's), through a ServerBuilder plugin, so that it
// sits beside the broker's services without changing BrokerServer. Call
// once, before the broker starts.
void RegisterBaselineInEveryServer();

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_BASELINE_SERVICE_H_
