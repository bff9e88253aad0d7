#ifndef TOKENBROKER_BENCH_UNARY_CALL_H_
#define TOKENBROKER_BENCH_UNARY_CALL_H_

#include <chrono>
#include <functional>
#include <utility>

#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tokenbroker::bench {

// One unary call with the callback API, with a 30 s deadline: `method`
// starts it (a stub's async() method), `ok` decides success, `done(success)`
// runs once on a gRPC thread.
template <typename Request, typename Response, typename Method>
void Unary(Method method, const Request& request,
           std::function<bool(const grpc::Status&, const Response&)> ok,
           std::function<void(bool)> done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto* call = new Call;
  call->request = request;
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
  method(&call->context, &call->request, &call->response,
         [call, ok = std::move(ok), done = std::move(done)](grpc::Status s) {
           bool success = ok(s, call->response);
           delete call;
           done(success);
         });
}

// A GetToken through `stub` that succeeds when it answers a token.
inline void StartGetToken(
    ::anypoint::tokenbroker::v1::TokenBroker::Stub* stub,
    const ::anypoint::tokenbroker::v1::GetTokenRequest& request,
    std::function<void(bool)> done) {
  namespace pb = ::anypoint::tokenbroker::v1;
  Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
      [stub](auto... args) { stub->async()->GetToken(args...); }, request,
      [](const grpc::Status& s, const pb::GetTokenResponse& r) {
        return s.ok() && !r.access_token().empty();
      },
      std::move(done));
}

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_UNARY_CALL_H_
