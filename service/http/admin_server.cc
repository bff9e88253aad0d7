#include "service/http/admin_server.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
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
constexpr size_t kProbeThreads = 2;
// Probes and scrapes, plus OAuthFlowOptions::max_concurrent_callbacks
// (4) callbacks waiting on an authorization server and a browser's
// keep-alive connections.
constexpr size_t kOAuthThreads = 10;
constexpr size_t kMaxPayloadBytes = 64 << 10;

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

// Hands a request under /oauth/ to the OAuth pages and writes their answer.
void ServeOAuthPage(OAuthPageHandler& handler, const httplib::Request& req,
                    httplib::Response& res) {
  PageRequest request;
  request.method = req.method;
  request.path = req.path;
  if (size_t query = req.target.find('?'); query != std::string::npos) {
    request.query = req.target.substr(query + 1);
  }
  auto cookies = req.headers.equal_range("Cookie");
  for (auto it = cookies.first; it != cookies.second; ++it) {
    request.cookie_headers.push_back(it->second);
  }
  request.peer = req.remote_addr;
  PageResponse page = handler.Handle(request);
  res.status = page.status;
  std::string content_type = "text/plain";
  for (auto& [name, value] : page.headers) {
    if (absl::EqualsIgnoreCase(name, "Content-Type")) {
      content_type = std::move(value);
    } else {
      res.set_header(name.c_str(), value);
    }
  }
  res.set_content(std::move(page.body), content_type.c_str());
}

void NotAllowed(const httplib::Request&, httplib::Response& res) {
  res.status = 405;
  res.set_header("Allow", "GET, HEAD");
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminHttpServer>> AdminHttpServer::Start(
    const std::string& address, AdminHttpHandlers handlers,
    AdminHttpRole role) {
  const bool admin_role = role == AdminHttpRole::kAdmin;
  const char* const setting =
      admin_role ? "listen.admin_http" : "listen.oauth_http";
  std::string host;
  int port = 0;
  if (!SplitHostPort(address, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        setting, ": '", address, "' is not HOST:PORT or [IPV6]:PORT"));
  }
  if (!admin_role && handlers.oauth == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, ": the OAuth listener needs the OAuth pages"));
  }
  std::unique_ptr<AdminHttpServer> admin(new AdminHttpServer());
  admin->handlers_ = std::move(handlers);
  admin->host_ = host;
  admin->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *admin->server_;
  OAuthPageHandler* const oauth = admin->handlers_.oauth;
  // Probes and scrapes are few and quick: two threads are plenty. An OAuth
  // callback may hold a thread while the authorization server answers.
  const size_t threads = oauth != nullptr ? kOAuthThreads : kProbeThreads;
  server.new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // process share the port silently; a busy port must be an error.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Nothing here takes a request body.
  server.set_payload_max_length(kMaxPayloadBytes);
  AdminHttpServer* self = admin.get();
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  std::vector<const char*> fixed_paths = {"/healthz"};
  if (admin_role) {
    server.Get("/readyz",
               [self](const httplib::Request&, httplib::Response& res) {
                 if (!self->handlers_.ready || self->handlers_.ready()) {
                   res.set_content("ready\n", "text/plain");
                 } else {
                   res.status = 503;
                   res.set_content("shutting down\n", "text/plain");
                 }
               });
    server.Get("/metrics",
               [self](const httplib::Request&, httplib::Response& res) {
                 std::string body =
                     self->handlers_.metrics ? self->handlers_.metrics() : "";
                 res.set_content(std::move(body), kMetricsContentType);
               });
    fixed_paths.push_back("/readyz");
    fixed_paths.push_back("/metrics");
  }
  for (const char* path : fixed_paths) {
    server.Post(path, NotAllowed);
    server.Put(path, NotAllowed);
    server.Patch(path, NotAllowed);
    server.Delete(path, NotAllowed);
  }
  if (oauth != nullptr) {
    auto serve = [oauth](const httplib::Request& req, httplib::Response& res) {
      ServeOAuthPage(*oauth, req, res);
    };
    constexpr char kOAuthPaths[] = "/oauth/.*";
    server.Get(kOAuthPaths, serve);  // HEAD too: the handler refuses it.
    server.Post(kOAuthPaths, serve);
    server.Put(kOAuthPaths, serve);
    server.Patch(kOAuthPaths, serve);
    server.Delete(kOAuthPaths, serve);
    server.Options(kOAuthPaths, serve);
  }

  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat(setting, ": cannot listen on ", address,
                     ": check that the address is valid and the port free"));
  }
  admin->port_ = port;
  admin->thread_ = std::thread([self, admin_role] {
    SetCurrentThreadName(admin_role ? "tb-admin-http" : "tb-oauth-http");
    self->server_->listen_after_bind();
  });
  // httplib's stop() does nothing before the accept loop runs; wait for it
  // so that Stop() always ends the loop. (The socket already listens.)
  for (int i = 0; i < 10000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  LogInfo(admin_role ? "admin HTTP listening" : "OAuth pages listening",
          {{"address", address},
           {"port", port},
           {"paths", !admin_role        ? "/oauth/, /healthz"
                     : oauth != nullptr ? "/metrics, /healthz, /readyz, /oauth/"
                                        : "/metrics, /healthz, /readyz"}});
  return admin;
}

std::string AdminHttpServer::url() const {
  const bool v6 = host_.find(':') != std::string::npos;
  return absl::StrCat("http://", v6 ? "[" : "", host_, v6 ? "]" : "", ":",
                      port_);
}

AdminHttpServer::~AdminHttpServer() { Stop(); }

void AdminHttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tokenbroker
