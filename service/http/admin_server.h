#ifndef TOKENBROKER_SERVICE_HTTP_ADMIN_SERVER_H_
#define TOKENBROKER_SERVICE_HTTP_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "service/http/oauth_pages.h"

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
  // The OAuth browser pages (OAuthFlow): every request under /oauth/ goes
  // to it. Null: not served. Must outlive the server.
  OAuthPageHandler* oauth = nullptr;
};

// Which routes a listener serves.
enum class AdminHttpRole {
  // listen.admin_http: /metrics, /healthz, /readyz, and /oauth/... when
  // AdminHttpHandlers::oauth is set (listen.oauth_http empty).
  kAdmin,
  // listen.oauth_http, the one to expose to browsers (e.g. through an
  // Ingress): /oauth/... and /healthz only. Never /metrics or /readyz.
  kOAuth,
};

// The broker's plain-HTTP listeners. The admin one is meant for the kubelet
// and Prometheus inside the pod network (it serves no secret and no token):
//   GET /metrics  200, text/plain; version=0.0.4
//   GET /healthz  200 while the process runs, draining included (liveness)
//   GET /readyz   200, or 503 once `ready` says false (readiness)
//   /oauth/...    AdminHttpHandlers::oauth, if set (any method: it answers
//                 405 itself; HEAD is not turned into GET)
// Anything else: 404 (405 for another method on these paths). The OAuth
// role serves only /oauth/... and /healthz.
//
// OAuth requests may hold a server thread while the authorization server
// answers, so a listener with OAuth pages runs more threads than the two
// probes and scrapes need.
//
// Thread-safe. Stop() (or the destructor) stops it and joins its threads.
class AdminHttpServer {
 public:
  // Binds `address` ("HOST:PORT" or "[IPV6]:PORT"; port 0 picks a free one)
  // and serves on background threads. Errors: INVALID_ARGUMENT for a
  // malformed address (or kOAuth without handlers.oauth), UNAVAILABLE if it
  // cannot bind. Messages name listen.admin_http or listen.oauth_http.
  static absl::StatusOr<std::unique_ptr<AdminHttpServer>> Start(
      const std::string& address, AdminHttpHandlers handlers,
      AdminHttpRole role = AdminHttpRole::kAdmin);
  ~AdminHttpServer();

  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  int port() const { return port_; }
  // "http://HOST:PORT" with the bound port (IPv6 hosts in brackets): the
  // OAuth public URL when oauth.public_url is empty
  // (OAuthFlow::SetListenerUrl; the config allows that only for loopback).
  std::string url() const;
  void Stop();

 private:
  AdminHttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  AdminHttpHandlers handlers_;
  std::string host_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_ADMIN_SERVER_H_
