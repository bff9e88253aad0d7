#include "emulator/emulator.h"

#include <sys/socket.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/connections.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"

// The public facade: Emulator forwards to Impl (emulator_impl.h, whose
// handlers live one topic per file); Impl's Start and Stop, which own the
// httplib server and its threads, are here.

namespace tokenbroker::emulator {
namespace {

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
        internal::SetMessage(res, 500, "internal error in the emulator");
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
    issuer_ = options.issuer.empty()
                  ? absl::StrCat(base_url_, "/accounts/api/v2/oauth2")
                  : options.issuer;
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
absl::Status Emulator::AddRedirectUri(const std::string& client_id,
                                      const std::string& uri) {
  return impl_->AddRedirectUri(client_id, uri);
}

absl::Status Emulator::SetClientSecret(const std::string& client_id,
                                       const std::string& secret) {
  return impl_->SetClientSecret(client_id, secret);
}
void Emulator::SetTokenLifetime(int seconds) {
  impl_->SetTokenLifetime(seconds);
}
absl::Status Emulator::SetRotateRefreshTokens(const std::string& client_id,
                                              bool rotate) {
  return impl_->SetRotateRefreshTokens(client_id, rotate);
}
absl::Status Emulator::SetRefreshTokenLifetime(const std::string& client_id,
                                               int64_t seconds) {
  return impl_->SetRefreshTokenLifetime(client_id, seconds);
}
absl::Status Emulator::SetUserPassword(const std::string& user,
                                       const std::string& password) {
  return impl_->SetUserPassword(user, password);
}
absl::Status Emulator::RevokeGrant(const std::string& grant_id) {
  return impl_->RevokeGrant(grant_id);
}
std::vector<GrantInfo> Emulator::ListGrants() const {
  return impl_->ListGrants();
}
absl::Status Emulator::AdvanceTime(absl::Duration by) {
  return impl_->AdvanceTime(by);
}
void Emulator::AddFault(Fault fault) { impl_->AddFault(std::move(fault)); }
void Emulator::ClearFaults() { impl_->ClearFaults(); }
Counters Emulator::GetCounters() const { return impl_->GetCounters(); }
void Emulator::ResetCounters() { impl_->ResetCounters(); }

}  // namespace tokenbroker::emulator
