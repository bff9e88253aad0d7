#include "emulator/emulator.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/connections.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using internal::ClientCredentials;
using internal::ParamOr;
using internal::Params;
using internal::ParseBodyParams;
using internal::SetJson;
using internal::SetMessage;
using internal::SetOAuthError;

constexpr char kTokenPath[] = "/accounts/api/v2/oauth2/token";
constexpr char kAuthorizePath[] = "/accounts/api/v2/oauth2/authorize";
constexpr char kRevokePath[] = "/accounts/api/v2/oauth2/revoke";
constexpr char kUserinfoPath[] = "/accounts/api/v2/oauth2/userinfo";
constexpr char kDiscoveryPath[] =
    "/accounts/api/v2/oauth2/.well-known/openid-configuration";
// httplib serves a connection on one thread for as long as it is kept
// alive: enough for a broker's token and Call connection pools (16 per host
// each) to be busy at once, as on a real server.
constexpr int kThreads = 64;

// The server's accept loop hands each accepted socket to the task queue
// exactly once, so counting enqueue() calls counts TCP connections.
class CountingTaskQueue final : public httplib::TaskQueue {
 public:
  CountingTaskQueue(size_t threads, std::function<void()> on_accept)
      : pool_(threads), on_accept_(std::move(on_accept)) {}
  void enqueue(std::function<void()> fn) override {
    on_accept_();
    pool_.enqueue(std::move(fn));
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  std::function<void()> on_accept_;
};

}  // namespace

// ---------------------------------------------------------------------------
// Lifecycle

absl::Status Emulator::Impl::Start(const Options& options) {
  absl::MutexLock life(&life_mu_);
  if (server_ != nullptr) {
    return absl::FailedPreconditionError("the emulator is already started");
  }
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [this] {
    return new CountingTaskQueue(kThreads, [this] {
      absl::MutexLock lock(&mu_);
      ++counters_.connections;
    });
  };
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // emulator bind the same port and silently share its traffic.
  server->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->set_payload_max_length(internal::kMaxEchoBytes);
  server->set_keep_alive_timeout(5);
  // httplib closes a connection after 5 requests by default; Anypoint keeps
  // connections open, and tests of connection reuse rely on it.
  server->set_keep_alive_max_count(100000);
  // Without it, small answers wait for the client's delayed ACK (~40 ms).
  server->set_tcp_nodelay(true);
  server->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SetMessage(res, 500, "internal error in the emulator");
      });
  RegisterRoutes(*server);

  int port = options.port;
  if (port == 0) {
    port = server->bind_to_any_port(options.host);
    if (port <= 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot bind ", options.host, " on an ephemeral port"));
    }
  } else if (!server->bind_to_port(options.host, port)) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind ", options.host, ":", port,
                     ": is the port in use or the host not local?"));
  }
  {
    absl::MutexLock lock(&mu_);
    std::string host = options.host;
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    base_url_ = absl::StrCat("http://", host, ":", port);
    log_requests_ = options.log_requests;
  }
  port_ = port;
  httplib::Server* raw = server.get();
  thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // The socket already listens (connections queue up); wait for the accept
  // loop so that Stop() right after Start() cannot miss it.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!raw->is_running() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  server_ = std::move(server);
  if (!server_->is_running()) {
    server_->stop();
    thread_.join();
    server_.reset();
    return absl::InternalError("the emulator's accept loop did not start");
  }
  return absl::OkStatus();
}

void Emulator::Impl::Stop() {
  absl::MutexLock life(&life_mu_);
  if (server_ == nullptr) return;
  server_->stop();
  // Idle connections would otherwise hold Stop() for httplib's read timeout
  // (5 s): wake their workers up.
  internal::ForEachServerSocket(port_.load(),
                                [](int fd, const std::string&, int) {
                                  shutdown(fd, SHUT_RDWR);
                                  return false;
                                });
  if (thread_.joinable()) thread_.join();
  server_.reset();
  port_ = 0;
}

// ---------------------------------------------------------------------------
// Routing, faults, logging

void Emulator::Impl::Route(httplib::Server& server, const std::string& method,
                           const std::string& pattern, std::string counter,
                           std::string fault_endpoint, Handler handler) {
  Handler wrapped = [this, counter = std::move(counter),
                     fault_endpoint = std::move(fault_endpoint),
                     handler = std::move(handler)](const httplib::Request& req,
                                                   httplib::Response& res) {
    const absl::Time start = absl::Now();
    if (!counter.empty()) {
      std::string client_id;
      if (counter == "token") {
        auto params = ParseBodyParams(req);
        std::string secret;
        bool basic = false;
        ClientCredentials(req, params.ok() ? *params : Params(), &client_id,
                          &secret, &basic);
      }
      absl::MutexLock lock(&mu_);
      ++counters_.requests_by_endpoint[counter];
      if (counter == "token") ++counters_.token_requests_by_client[client_id];
    }
    std::optional<Fault> fault;
    if (!fault_endpoint.empty()) fault = TakeFault(fault_endpoint);
    if (!fault.has_value() || !ApplyFault(*fault, counter, req, res)) {
      handler(req, res);
    }
    if (!counter.empty())
      LogRequest(req, res, counter, absl::Now() - start, fault);
  };
  if (method == "GET") {
    server.Get(pattern, wrapped);
  } else if (method == "POST") {
    server.Post(pattern, wrapped);
  } else if (method == "PUT") {
    server.Put(pattern, wrapped);
  } else if (method == "PATCH") {
    server.Patch(pattern, wrapped);
  } else if (method == "DELETE") {
    server.Delete(pattern, wrapped);
  } else if (method == "OPTIONS") {
    server.Options(pattern, wrapped);
  }
}

void Emulator::Impl::LogRequest(const httplib::Request& req,
                                const httplib::Response& res,
                                const std::string& endpoint,
                                absl::Duration elapsed,
                                const std::optional<Fault>& fault) {
  {
    absl::MutexLock lock(&mu_);
    if (!log_requests_) return;
  }
  // Never the query string, headers or body: they carry codes, tokens and
  // secrets.
  json line = {{"ts", internal::FormatTimestamp(absl::Now())},
               {"level", "info"},
               {"msg", "request"},
               {"method", req.method},
               {"path", req.path},
               {"endpoint", endpoint},
               {"status", res.status},
               {"duration_ms", absl::ToInt64Milliseconds(elapsed)},
               {"remote", absl::StrCat(req.remote_addr, ":", req.remote_port)}};
  if (fault.has_value()) line["fault"] = FaultKindName(fault->kind);
  const std::string text = internal::Dump(line) + "\n";
  absl::MutexLock lock(&log_mu_);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void Emulator::Impl::RegisterRoutes(httplib::Server& server) {
  using std::placeholders::_1;
  using std::placeholders::_2;
  Route(server, "POST", kTokenPath, "token", "token",
        std::bind(&Impl::HandleToken, this, _1, _2));
  Route(server, "GET", kAuthorizePath, "authorize", "authorize",
        std::bind(&Impl::HandleAuthorize, this, _1, _2));
  Route(server, "POST", kRevokePath, "revoke", "revoke",
        std::bind(&Impl::HandleRevoke, this, _1, _2));
  Route(server, "GET", kUserinfoPath, "userinfo", "userinfo",
        std::bind(&Impl::HandleUserinfo, this, _1, _2));
  Route(server, "GET", kDiscoveryPath, "discovery", "discovery",
        std::bind(&Impl::HandleDiscovery, this, _1, _2));
  Route(server, "GET", "/accounts/api/me", "me", "resource",
        std::bind(&Impl::HandleMe, this, _1, _2));
  Route(server, "GET", "/accounts/api/organizations/([^/]+)/environments",
        "environments", "resource",
        std::bind(&Impl::HandleEnvironments, this, _1, _2));
  Route(server, "GET", "/designcenter/api-designer/projects",
        "designcenter_projects", "resource",
        std::bind(&Impl::HandleProjects, this, _1, _2));
  Route(server, "GET", "/exchange/api/v2/assets/search", "exchange_assets",
        "resource", std::bind(&Impl::HandleExchange, this, _1, _2));
  Route(server, "GET", "/cloudhub/api/applications", "cloudhub_applications",
        "resource", std::bind(&Impl::HandleCloudHub, this, _1, _2));

  // Control API: neither counted nor faulted.
  auto control = [this](std::string what) -> Handler {
    return [this, what](const httplib::Request& req, httplib::Response& res) {
      HandleControl(what, req, res);
    };
  };
  Route(server, "POST", "/_emulator/apps/([^/]+)/scopes", "", "",
        control("scopes"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/revoke", "", "",
        control("revoke"));
  Route(server, "POST", "/_emulator/apps/([^/]+)/secret", "", "",
        control("secret"));
  Route(server, "POST", "/_emulator/token-lifetime", "", "",
        control("token-lifetime"));
  Route(server, "POST", "/_emulator/faults", "", "", control("add-fault"));
  Route(server, "DELETE", "/_emulator/faults", "", "", control("clear-faults"));
  Route(server, "GET", "/_emulator/counters", "", "", control("counters"));
  Route(server, "POST", "/_emulator/counters/reset", "", "",
        control("reset-counters"));

  const std::vector<std::string> methods = {"GET",   "POST",   "PUT",
                                            "PATCH", "DELETE", "OPTIONS"};
  for (const std::string& method : methods) {
    Route(server, method, "/_emulator/echo(/.*)?", "echo", "echo",
          [this](const httplib::Request& req, httplib::Response& res) {
            HandleEcho(req, res, /*authed=*/false);
          });
    Route(server, method, "/_emulator/authed-echo(/.*)?", "authed_echo",
          "resource",
          [this](const httplib::Request& req, httplib::Response& res) {
            HandleEcho(req, res, /*authed=*/true);
          });
  }
  for (const std::string& method : methods) {
    Route(server, method, "/_emulator/.*", "", "",
          [](const httplib::Request& req, httplib::Response& res) {
            SetMessage(res, 404,
                       absl::StrCat("no control endpoint ", req.method, " ",
                                    req.path, " (see emulator/README.md)"));
          });
    Route(server, method, ".*", "not_found", "",
          [](const httplib::Request& req, httplib::Response& res) {
            SetMessage(res, 404,
                       absl::StrCat("the emulator does not serve ", req.method,
                                    " ", req.path));
          });
  }
}

// ---------------------------------------------------------------------------
// Emulator

Emulator::Emulator(Fixture fixture)
    : impl_(std::make_unique<Impl>(std::move(fixture))) {}
Emulator::~Emulator() { impl_->Stop(); }
absl::Status Emulator::Start(const Options& options) {
  return impl_->Start(options);
}
void Emulator::Stop() { impl_->Stop(); }
int Emulator::port() const { return impl_->port(); }
std::string Emulator::base_url() const { return impl_->base_url(); }
absl::Status Emulator::SetAppScopes(const std::string& client_id,
                                    std::vector<ScopeGrant> scopes) {
  return impl_->SetAppScopes(client_id, std::move(scopes));
}
absl::Status Emulator::RevokeApp(const std::string& client_id) {
  return impl_->RevokeApp(client_id);
}
absl::Status Emulator::SetClientSecret(const std::string& client_id,
                                       const std::string& secret) {
  return impl_->SetClientSecret(client_id, secret);
}
void Emulator::SetTokenLifetime(int seconds) {
  impl_->SetTokenLifetime(seconds);
}
void Emulator::AddFault(Fault fault) { impl_->AddFault(std::move(fault)); }
void Emulator::ClearFaults() { impl_->ClearFaults(); }
Counters Emulator::GetCounters() const { return impl_->GetCounters(); }
void Emulator::ResetCounters() { impl_->ResetCounters(); }

}  // namespace tokenbroker::emulator
