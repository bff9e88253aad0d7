#include "service/http/admin_server.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "httplib.h"
#include "service/common/log.h"
#include "service/common/thread_name.h"

namespace tokenbroker {
namespace {

constexpr char kMetricsContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

// "host:port" or "[v6]:port" -> host and port.
bool SplitHostPort(absl::string_view address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  absl::string_view host_part = address.substr(0, colon);
  if (host_part.front() == '[') {
    if (host_part.size() < 3 || host_part.back() != ']') return false;
    host_part = host_part.substr(1, host_part.size() - 2);
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return false;
  }
  *host = std::string(host_part);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminHttpServer>> AdminHttpServer::Start(
    const std::string& address, AdminHttpHandlers handlers) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(address, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen.admin_http: '", address, "' is not HOST:PORT or [IPV6]:PORT"));
  }
  std::unique_ptr<AdminHttpServer> admin(new AdminHttpServer());
  admin->handlers_ = std::move(handlers);
  admin->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *admin->server_;
  // Probes and scrapes are few and quick: two threads are plenty.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // process share the port silently; a busy port must be an error.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  AdminHttpServer* self = admin.get();
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server.Get("/readyz",
             [self](const httplib::Request&, httplib::Response& res) {
               if (!self->handlers_.ready || self->handlers_.ready()) {
                 res.set_content("ready\n", "text/plain");
               } else {
                 res.status = 503;
                 res.set_content("shutting down\n", "text/plain");
               }
             });
  server.Get("/metrics", [self](const httplib::Request&,
                                httplib::Response& res) {
    std::string body = self->handlers_.metrics ? self->handlers_.metrics() : "";
    res.set_content(std::move(body), kMetricsContentType);
  });
  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
    };
    server.Post(path, not_allowed);
    server.Put(path, not_allowed);
    server.Patch(path, not_allowed);
    server.Delete(path, not_allowed);
  }

  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("listen.admin_http: cannot listen on ", address,
                     ": check that the address is valid and the port free"));
  }
  admin->port_ = port;
  admin->thread_ = std::thread([self] {
    SetCurrentThreadName("tb-admin-http");
    self->server_->listen_after_bind();
  });
  // httplib's stop() does nothing before the accept loop runs; wait for it
  // so that Stop() always ends the loop. (The socket already listens.)
  for (int i = 0; i < 10000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  LogInfo("admin HTTP listening (/metrics, /healthz, /readyz)",
          {{"address", address}, {"port", port}});
  return admin;
}

AdminHttpServer::~AdminHttpServer() { Stop(); }

void AdminHttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tokenbroker
