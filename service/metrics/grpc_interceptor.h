#ifndef TOKENBROKER_SERVICE_METRICS_GRPC_INTERCEPTOR_H_
#define TOKENBROKER_SERVICE_METRICS_GRPC_INTERCEPTOR_H_

#include "grpcpp/support/server_interceptor.h"
#include "service/metrics/broker_metrics.h"

namespace tokenbroker {

// A gRPC server interceptor factory that counts every RPC by method
// (grpc_server_started_total) and by method and status code
// (grpc_server_handled_total), with the time from its start to its status
// (grpc_server_handling_seconds). An RPC that ends without a status (the
// client went away) counts as CANCELLED.
//
// Give it to ServerBuilder::experimental().SetInterceptorCreators().
// `metrics` must outlive the server. Thread-safe.
class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(BrokerMetrics& metrics)
      : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  BrokerMetrics& metrics_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_METRICS_GRPC_INTERCEPTOR_H_
