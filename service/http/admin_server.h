#ifndef TOKENBROKER_SERVICE_HTTP_ADMIN_SERVER_H_
#define TOKENBROKER_SERVICE_HTTP_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace tokenbroker {

// What the admin endpoints report. Each function is called on a server
// thread per request and must be thread-safe and quick.
struct AdminHttpHandlers {
  // The body of GET /metrics (Prometheus text format 0.0.4).
  std::function<std::string()> metrics;
  // GET /readyz: 200 while true, 503 once false (shutdown began).
  std::function<bool()> ready;
};

// The broker's plain-HTTP admin listener, meant for the kubelet and
// Prometheus inside the pod network (it serves no secret and no token):
//   GET /metrics  200, text/plain; version=0.0.4
//   GET /healthz  200 while the process runs, draining included (liveness)
//   GET /readyz   200, or 503 once `ready` says false (readiness)
// Anything else: 404 (405 for another method on these paths).
//
// Thread-safe. Stop() (or the destructor) stops it and joins its threads.
class AdminHttpServer {
 public:
  // Binds `address` ("HOST:PORT" or "[IPV6]:PORT"; port 0 picks a free one)
  // and serves on background threads. Errors: INVALID_ARGUMENT for a
  // malformed address, UNAVAILABLE if it cannot bind.
  static absl::StatusOr<std::unique_ptr<AdminHttpServer>> Start(
      const std::string& address, AdminHttpHandlers handlers);
  ~AdminHttpServer();

  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  int port() const { return port_; }
  void Stop();

 private:
  AdminHttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  AdminHttpHandlers handlers_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_ADMIN_SERVER_H_
