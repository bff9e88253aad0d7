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
constexpr absl::Duration kCodeLifetime = absl::Minutes(10);
constexpr absl::Duration kRefreshTokenLifetime = absl::Hours(24 * 90);
// httplib serves a connection on one thread for as long as it is kept
// alive: enough for a broker's token and Call connection pools (16 per host
// each) to be busy at once, as on a real server.
constexpr int kThreads = 64;

// Scopes any app may request at authorize time and that need no assignment.
const std::set<std::string>& ImplicitScopes() {
  static const auto* scopes =
      new std::set<std::string>{"profile", "openid", "email", "offline_access"};
  return *scopes;
}

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
// OAuth

std::optional<Emulator::Impl::AppState> Emulator::Impl::AuthenticateClient(
    const httplib::Request& req, const Params& params, httplib::Response& res) {
  std::string client_id, secret;
  bool basic = false;
  ClientCredentials(req, params, &client_id, &secret, &basic);
  if (client_id.empty()) {
    SetOAuthError(res, 400, "invalid_request",
                  "client_id is required (in the body, or HTTP Basic)");
    return std::nullopt;
  }
  if (secret.empty()) {
    SetOAuthError(res, 400, "invalid_request", "client_secret is required");
    return std::nullopt;
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end() ||
      !internal::SecretsEqual(it->second.app.client_secret, secret)) {
    if (basic) res.set_header("WWW-Authenticate", "Basic realm=\"anypoint\"");
    SetOAuthError(res, 401, "invalid_client",
                  "client authentication failed: unknown client_id or wrong "
                  "client_secret");
    return std::nullopt;
  }
  return it->second;
}

std::string Emulator::Impl::IssueToken(TokenKind kind, const AppState& app,
                                       const std::string& user_id,
                                       const std::vector<std::string>& scopes,
                                       absl::Duration lifetime) {
  const absl::Time now = absl::Now();
  if (tokens_.size() > 100000) PurgeExpired(now);
  std::string token = internal::RandomToken(32);
  TokenRecord record;
  record.kind = kind;
  record.client_id = app.app.client_id;
  record.user_id = user_id;
  record.scopes = scopes;
  record.generation = app.generation;
  record.expires = now + lifetime;
  tokens_[token] = std::move(record);
  ++counters_.tokens_issued;
  return token;
}

void Emulator::Impl::PurgeExpired(absl::Time now) {
  absl::erase_if(tokens_, [now](const auto& entry) {
    return entry.second.expires <= now || entry.second.revoked;
  });
  absl::erase_if(codes_, [now](const auto& entry) {
    return entry.second.expires <= now || entry.second.used;
  });
}

void Emulator::Impl::HandleToken(const httplib::Request& req,
                                 httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("Pragma", "no-cache");
  absl::StatusOr<Params> params = ParseBodyParams(req);
  if (!params.ok()) {
    SetOAuthError(res, 400, "invalid_request", params.status().message());
    return;
  }
  const std::string grant_type = ParamOr(*params, "grant_type");
  if (grant_type.empty()) {
    SetOAuthError(res, 400, "invalid_request", "grant_type is required");
    return;
  }
  std::optional<AppState> app = AuthenticateClient(req, *params, res);
  if (!app.has_value()) return;
  if (grant_type != "client_credentials" &&
      grant_type != "authorization_code" && grant_type != "refresh_token") {
    SetOAuthError(res, 400, "unsupported_grant_type",
                  absl::StrCat("grant_type ", grant_type,
                               " is not supported (use client_credentials, "
                               "authorization_code or refresh_token)"));
    return;
  }
  const auto& grants = app->app.grant_types;
  if (std::find(grants.begin(), grants.end(), grant_type) == grants.end()) {
    SetOAuthError(
        res, 400, "unauthorized_client",
        absl::StrCat("the app is not allowed the ", grant_type, " grant type"));
    return;
  }

  json answer;
  absl::MutexLock lock(&mu_);
  const int lifetime = token_lifetime_seconds_;
  // Re-read the app: it may have changed since AuthenticateClient.
  auto app_it = apps_.find(app->app.client_id);
  if (app_it == apps_.end()) return;
  const AppState& current = app_it->second;
  const absl::Time now = absl::Now();
  std::string user_id;
  std::vector<std::string> scopes;
  bool with_refresh = false;
  if (grant_type == "authorization_code") {
    const std::string code = ParamOr(*params, "code");
    const std::string redirect_uri = ParamOr(*params, "redirect_uri");
    if (code.empty() || redirect_uri.empty()) {
      SetOAuthError(res, 400, "invalid_request",
                    "code and redirect_uri are required");
      return;
    }
    auto it = codes_.find(code);
    if (it == codes_.end() || it->second.client_id != current.app.client_id) {
      SetOAuthError(res, 400, "invalid_grant", "unknown authorization code");
      return;
    }
    CodeRecord& record = it->second;
    if (record.used) {
      SetOAuthError(res, 400, "invalid_grant",
                    "the authorization code was already used");
      return;
    }
    if (record.expires <= now || record.generation != current.generation) {
      SetOAuthError(res, 400, "invalid_grant",
                    "the authorization code expired or was revoked");
      return;
    }
    if (record.redirect_uri != redirect_uri) {
      SetOAuthError(res, 400, "invalid_grant",
                    "redirect_uri differs from the one sent to authorize");
      return;
    }
    record.used = true;
    user_id = record.user_id;
    scopes = record.scopes;
    with_refresh = std::find(scopes.begin(), scopes.end(), "offline_access") !=
                   scopes.end();
  } else if (grant_type == "refresh_token") {
    const std::string refresh = ParamOr(*params, "refresh_token");
    if (refresh.empty()) {
      SetOAuthError(res, 400, "invalid_request", "refresh_token is required");
      return;
    }
    auto it = tokens_.find(refresh);
    if (it == tokens_.end() || it->second.kind != TokenKind::kRefresh ||
        it->second.client_id != current.app.client_id) {
      SetOAuthError(res, 400, "invalid_grant", "unknown refresh token");
      return;
    }
    TokenRecord& record = it->second;
    if (record.revoked || record.generation != current.generation) {
      SetOAuthError(res, 400, "invalid_grant",
                    "the refresh token was revoked or already used");
      return;
    }
    if (record.expires <= now) {
      SetOAuthError(res, 400, "invalid_grant", "the refresh token expired");
      return;
    }
    user_id = record.user_id;
    scopes = record.scopes;
    with_refresh = fixture_.rotate_refresh_tokens;
    if (with_refresh) record.revoked = true;
  }
  answer["access_token"] = IssueToken(TokenKind::kAccess, current, user_id,
                                      scopes, absl::Seconds(lifetime));
  answer["token_type"] = "bearer";
  answer["expires_in"] = lifetime;
  if (with_refresh) {
    answer["refresh_token"] = IssueToken(TokenKind::kRefresh, current, user_id,
                                         scopes, kRefreshTokenLifetime);
  }
  SetJson(res, 200, answer);
}

void Emulator::Impl::HandleAuthorize(const httplib::Request& req,
                                     httplib::Response& res) {
  auto fail = [&res](absl::string_view message) {
    res.status = 400;
    res.set_content(absl::StrCat("authorize request rejected: ", message, "\n"),
                    "text/plain");
  };
  const std::string client_id = req.get_param_value("client_id");
  const std::string response_type = req.get_param_value("response_type");
  std::string redirect_uri = req.get_param_value("redirect_uri");
  const std::string state = req.get_param_value("state");
  const std::string login_hint = req.get_param_value("login_hint");
  if (client_id.empty()) return fail("client_id is required");
  if (response_type != "code") {
    return fail("response_type must be \"code\"");
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) return fail("unknown client_id " + client_id);
  const AppState& app = it->second;
  const auto& grants = app.app.grant_types;
  if (std::find(grants.begin(), grants.end(), "authorization_code") ==
      grants.end()) {
    return fail("the app " + client_id +
                " is not allowed the authorization_code grant");
  }
  const auto& uris = app.app.redirect_uris;
  if (redirect_uri.empty()) {
    if (uris.size() != 1) {
      return fail("redirect_uri is required (the app has " +
                  std::to_string(uris.size()) + " registered)");
    }
    redirect_uri = uris[0];
  } else if (std::find(uris.begin(), uris.end(), redirect_uri) == uris.end()) {
    return fail("redirect_uri " + redirect_uri +
                " is not registered for the app " + client_id);
  }
  std::vector<std::string> scopes =
      absl::StrSplit(req.get_param_value("scope"), ' ', absl::SkipEmpty());
  for (const std::string& scope : scopes) {
    if (scope == "offline_access" &&
        std::find(grants.begin(), grants.end(), "refresh_token") ==
            grants.end()) {
      return fail("offline_access needs the refresh_token grant on the app");
    }
    if (ImplicitScopes().count(scope) != 0) continue;
    bool assigned = false;
    for (const ScopeGrant& grant : app.app.scopes) {
      assigned = assigned || grant.scope == scope;
    }
    if (!assigned) {
      return fail("scope " + scope + " is not assigned to the app " +
                  client_id);
    }
  }
  const UserFixture* user = nullptr;
  for (const UserFixture& u : fixture_.users) {
    if (login_hint.empty() || u.username == login_hint || u.id == login_hint) {
      user = &u;
      break;
    }
  }
  if (user == nullptr) {
    return fail(login_hint.empty() ? "the fixture has no users"
                                   : "no user named " + login_hint);
  }
  const std::string code = internal::RandomToken(16);
  codes_[code] = CodeRecord{client_id,      user->id,
                            redirect_uri,   std::move(scopes),
                            app.generation, absl::Now() + kCodeLifetime,
                            false};
  std::string location = redirect_uri;
  location += redirect_uri.find('?') == std::string::npos ? '?' : '&';
  location += "code=" + code;
  if (!state.empty()) {
    location += "&state=" + httplib::detail::encode_query_param(state);
  }
  res.set_redirect(location, 302);
}

void Emulator::Impl::HandleRevoke(const httplib::Request& req,
                                  httplib::Response& res) {
  absl::StatusOr<Params> params = ParseBodyParams(req);
  if (!params.ok()) {
    SetOAuthError(res, 400, "invalid_request", params.status().message());
    return;
  }
  std::optional<AppState> app = AuthenticateClient(req, *params, res);
  if (!app.has_value()) return;
  const std::string token = ParamOr(*params, "token");
  if (token.empty()) {
    SetOAuthError(res, 400, "invalid_request", "token is required");
    return;
  }
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(token);
  // RFC 7009: unknown tokens and other clients' tokens are answered 200 too.
  if (it != tokens_.end() && it->second.client_id == app->app.client_id) {
    it->second.revoked = true;
  }
  res.status = 200;
}

std::optional<Emulator::Impl::Grant> Emulator::Impl::Authenticate(
    const httplib::Request& req, httplib::Response& res) {
  auto unauthorized = [&res](absl::string_view message) {
    res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    SetMessage(res, 401, message);
    return std::nullopt;
  };
  const std::optional<std::string> token = internal::BearerToken(req);
  if (!token.has_value()) {
    return unauthorized(
        "Unauthorized: send Authorization: Bearer <access token>");
  }
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(*token);
  if (it == tokens_.end() || it->second.kind != TokenKind::kAccess) {
    return unauthorized("Unauthorized: unknown access token");
  }
  const TokenRecord& record = it->second;
  if (record.revoked) {
    return unauthorized("Unauthorized: the access token was revoked");
  }
  if (record.expires <= absl::Now()) {
    return unauthorized("Unauthorized: the access token expired");
  }
  auto app = apps_.find(record.client_id);
  if (app == apps_.end() || app->second.generation != record.generation) {
    return unauthorized(
        "Unauthorized: the access token was invalidated (the app's scopes "
        "changed or the app was revoked); get a new token");
  }
  Grant grant;
  grant.client_id = record.client_id;
  grant.user_id = record.user_id;
  grant.app_name = app->second.app.name;
  grant.app_org = app->second.app.org_id;
  for (const ScopeGrant& scope : app->second.app.scopes) {
    // User tokens hold only the assigned scopes that were requested.
    if (record.user_id.empty() ||
        std::find(record.scopes.begin(), record.scopes.end(), scope.scope) !=
            record.scopes.end()) {
      grant.scopes.push_back(scope);
    }
  }
  return grant;
}

void Emulator::Impl::HandleUserinfo(const httplib::Request& req,
                                    httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;
  if (grant->user_id.empty()) {
    SetMessage(res, 403,
               "Forbidden: userinfo needs a user token (authorization_code "
               "grant); this token was issued to the app itself");
    return;
  }
  for (const UserFixture& user : fixture_.users) {
    if (user.id != grant->user_id) continue;
    SetJson(res, 200,
            json{{"sub", user.id},
                 {"username", user.username},
                 {"preferred_username", user.username},
                 {"organization_id", user.org_id}});
    return;
  }
  SetMessage(res, 404, "the token's user is not in the fixture");
}

void Emulator::Impl::HandleDiscovery(const httplib::Request& req,
                                     httplib::Response& res) {
  std::string base = base_url();
  const std::string host = req.get_header_value("Host");
  if (!host.empty()) base = "http://" + host;
  const std::string oauth = base + "/accounts/api/v2/oauth2";
  SetJson(res, 200,
          json{{"issuer", oauth},
               {"authorization_endpoint", oauth + "/authorize"},
               {"token_endpoint", oauth + "/token"},
               {"userinfo_endpoint", oauth + "/userinfo"},
               {"revocation_endpoint", oauth + "/revoke"},
               {"jwks_uri", oauth + "/certs"},
               {"response_types_supported", {"code"}},
               {"grant_types_supported",
                {"authorization_code", "refresh_token", "client_credentials"}},
               {"subject_types_supported", {"public"}},
               {"id_token_signing_alg_values_supported", {"RS256"}},
               {"scopes_supported",
                {"openid", "profile", "email", "offline_access"}},
               {"token_endpoint_auth_methods_supported",
                {"client_secret_post", "client_secret_basic"}}});
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
