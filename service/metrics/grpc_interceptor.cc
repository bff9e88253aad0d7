#include "service/metrics/grpc_interceptor.h"

#include <chrono>
#include <string>

#include "absl/time/time.h"

namespace tokenbroker {
namespace {

using grpc::experimental::InterceptionHookPoints;

// One per RPC; gRPC deletes it when the call is done.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(BrokerMetrics& metrics, const char* method)
      : metrics_(metrics),
        series_(metrics.RpcStarted(method == nullptr ? "" : method)),
        start_(std::chrono::steady_clock::now()) {}

  ~MetricsInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    // Recorded before the status is sent, so that a client that has its
    // answer can already see it counted.
    if (!recorded_ && methods->QueryInterceptionHookPoint(
                          InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    // A steady clock: latency must not jump with wall-clock adjustments.
    absl::Duration latency =
        absl::FromChrono(std::chrono::steady_clock::now() - start_);
    metrics_.RpcHandled(series_, static_cast<int>(code), latency);
  }

  BrokerMetrics& metrics_;
  BrokerMetrics::RpcSeries& series_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;  // Hooks of one RPC never run concurrently.
};

}  // namespace

grpc::experimental::Interceptor*
MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(metrics_, info->method());
}

}  // namespace tokenbroker
