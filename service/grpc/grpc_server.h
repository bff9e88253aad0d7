#ifndef TOKENBROKER_SERVICE_GRPC_GRPC_SERVER_H_
#define TOKENBROKER_SERVICE_GRPC_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "service/config/config.h"
#include "service/grpc/broker_admin_service.h"
#include "service/grpc/token_broker_service.h"
#include "service/metrics/broker_metrics.h"

namespace tokenbroker {

// Serves the broker's gRPC services: TokenBroker and BrokerAdmin, the
// standard health service (overall, per service, and per app as
// "app:NAME"), reflection and the metrics interceptor, over TLS (mTLS with
// listen.tls.client_ca_file) or, only with development.insecure_plaintext,
// plaintext; and the plaintext probe listener (listen.probe_grpc) with the
// services "liveness" and "readiness". It only serves: what the services do
// is wired by the application (service/app).
//
// Thread-safe. SetAppHealth() may be called before Start() (it does nothing
// then) and after Shutdown().
class GrpcServer {
 public:
  GrpcServer(TokenBrokerService& token_service,
             BrokerAdminService& admin_service, BrokerMetrics& metrics);
  ~GrpcServer();

  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds `address` (port 0 picks a free one) and starts serving, with every
  // app of `config` healthy. Errors: UNAVAILABLE if it cannot bind;
  // FAILED_PRECONDITION if TLS files cannot be read or neither TLS nor
  // development.insecure_plaintext is configured.
  absl::Status Start(const Config& config, const std::string& address);

  int port() const { return port_; }
  int probe_port() const { return probe_port_; }

  // Sets the health of "app:NAME".
  void SetAppHealth(const std::string& app, bool serving);
  // Sets the health of "shared-state": NOT_SERVING while the shared state
  // (Redis) is degraded and each replica fetches on its own. The broker
  // still serves then; the overall status does not change.
  void SetSharedStateHealth(bool serving);

  // Reports NOT_SERVING (readiness too; liveness stays SERVING), waits
  // `drain_delay`, then stops accepting RPCs and gives in-flight ones until
  // `grace` to finish before cancelling them. Once; later calls return.
  void Shutdown(absl::Duration drain_delay, absl::Duration grace);
  bool draining() const;

  // Blocks until the server has shut down.
  void Wait();

 private:
  absl::Status StartProbeServer(const std::string& address);

  TokenBrokerService& token_service_;
  BrokerAdminService& admin_service_;
  BrokerMetrics& metrics_;
  // Set by Start() before anything can read them, once.
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> probe_server_;
  int probe_port_ = 0;

  mutable absl::Mutex mu_;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_GRPC_SERVER_H_
