#include "service/grpc/server.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "service/common/log.h"
#include "service/metrics/grpc_interceptor.h"
#include "service/upstream/curl_http_client.h"

namespace tokenbroker {
namespace {

constexpr char kTokenBrokerService[] = "anypoint.tokenbroker.v1.TokenBroker";
constexpr char kBrokerAdminService[] = "anypoint.tokenbroker.v1.BrokerAdmin";
// Service names of the probe listener (listen.probe_grpc).
constexpr char kLivenessService[] = "liveness";
constexpr char kReadinessService[] = "readiness";

std::string AppHealthName(absl::string_view app) {
  return absl::StrCat("app:", app);
}

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    absl::string_view key) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in || content.str().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("listen.tls.", key, ": cannot read ", path,
                     ": check that the file exists and is readable"));
  }
  return content.str();
}

// TLS (with mTLS when a client CA is configured), or plaintext when the
// development flag allows it.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const Config& config) {
  const TlsConfig& tls = config.listen.tls;
  if (!tls.enabled()) {
    if (!config.development.insecure_plaintext) {
      return absl::FailedPreconditionError(
          "listen.tls is not configured: give cert_file and key_file (and "
          "client_ca_file for mTLS), or set development.insecure_plaintext: "
          "true to serve plaintext for local development");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions options(
      tls.client_ca_file.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert = ReadPem(tls.cert_file, "cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(tls.key_file, "key_file");
  if (!key.ok()) return key.status();
  pair.cert_chain = *std::move(cert);
  pair.private_key = *std::move(key);
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPem(tls.client_ca_file, "client_ca_file");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  return grpc::SslServerCredentials(options);
}

ProxyOptions ProxyOptionsFrom(const Config& config) {
  ProxyOptions options;
  options.max_response_body_bytes = config.upstream.max_response_bytes;
  options.request_timeout = config.upstream.request_timeout;
  options.min_ttl = config.cache.min_ttl;
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Create(
    Config config, BrokerServerDeps deps) {
  std::unique_ptr<BrokerServer> server(new BrokerServer());
  BrokerServer* self = server.get();
  if (deps.clock == nullptr) {
    server->owned_clock_ = std::make_unique<SystemClock>();
    deps.clock = server->owned_clock_.get();
  }
  server->clock_ = deps.clock;
  server->metrics_ = std::make_unique<BrokerMetrics>();
  HttpClient* token_http = deps.http;
  HttpClient* call_http = deps.http;
  if (deps.http == nullptr) {
    // Token fetches and proxied Calls each get their own client (event loop,
    // multi handle and connections), so that Calls to a slow endpoint can
    // never make a token fetch queue behind them.
    CurlHttpClientOptions http_options;
    http_options.ca_file = config.upstream.ca_file;
    http_options.connect_timeout = config.upstream.connect_timeout;
    for (auto* owned :
         {&server->owned_token_http_, &server->owned_call_http_}) {
      absl::StatusOr<std::unique_ptr<CurlHttpClient>> http =
          CurlHttpClient::Create(http_options);
      if (!http.ok()) return http.status();
      *owned = *std::move(http);
    }
    CurlHttpClient* token_curl = server->owned_token_http_.get();
    CurlHttpClient* call_curl = server->owned_call_http_.get();
    server->metrics_->SetUpstreamSource([token_curl, call_curl] {
      CurlHttpClientStats a = token_curl->stats();
      CurlHttpClientStats b = call_curl->stats();
      a.requests_started += b.requests_started;
      a.requests_completed += b.requests_completed;
      a.connections_opened += b.connections_opened;
      a.connections_reused += b.connections_reused;
      return a;
    });
    token_http = token_curl;
    call_http = call_curl;
  }
  server->token_http_ = std::make_unique<InstrumentedHttpClient>(
      *token_http, *server->metrics_,
      [](const HttpRequest&) { return std::string("token"); });
  server->call_http_ = std::make_unique<InstrumentedHttpClient>(
      *call_http, *server->metrics_,
      [](const HttpRequest&) { return std::string("call"); });

  OAuthTokenSourceOptions source_options;
  source_options.default_lifetime = config.cache.default_lifetime;
  source_options.min_lifetime = config.cache.min_lifetime;
  source_options.max_lifetime = config.cache.max_lifetime;
  source_options.fetch_timeout = config.cache.fetch_timeout;
  if (deps.audit == nullptr) {
    if (config.audit.path.empty()) {
      LogWarning("audit.path is not set: requests are not audited");
      server->owned_audit_ = std::make_unique<NullAuditSink>();
    } else {
      absl::StatusOr<std::unique_ptr<FileAuditSink>> audit =
          FileAuditSink::Open(config.audit.path,
                              /*synchronous=*/config.audit.fail_closed);
      if (!audit.ok()) return audit.status();
      server->owned_audit_ = *std::move(audit);
    }
    deps.audit = server->owned_audit_.get();
  }
  server->counting_audit_ =
      std::make_unique<CountingAuditSink>(*deps.audit, *server->metrics_);
  server->audit_ = server->counting_audit_.get();

  server->source_ = std::make_unique<OAuthTokenSource>(
      *server->token_http_, *server->clock_, source_options);
  server->source_->SetApps(config.apps);
  if (deps.start_refresher) {
    server->refresher_ = std::make_unique<Refresher>(*server->clock_);
  }
  // Every observer is in place before the cache exists: nothing is assigned
  // once RPC threads can read it.
  TokenCacheHooks hooks;
  hooks.on_fetch = [self](const TokenRequest& request,
                          const absl::Status& status) {
    self->OnFetch(request, status);
  };
  if (Refresher* refresher = server->refresher_.get()) {
    hooks.on_schedule = [refresher] { refresher->Kick(); };
  }
  server->cache_ =
      std::make_unique<TokenCache>(*server->source_, *server->clock_,
                                   config.cache, nullptr, std::move(hooks));
  server->metrics_->SetCacheSource(server->cache_.get(), server->clock_);
  server->metrics_->ConfigLoaded(true, server->clock_->Now());
  LimitsConfig limits = config.limits;
  server->config_ = std::make_unique<ConfigStore>(
      std::make_shared<const Config>(std::move(config)));
  server->timers_ = std::make_unique<TimerQueue>();
  server->proxy_ = std::make_unique<Proxy>(
      *server->cache_, *server->call_http_, *server->timers_, *server->clock_,
      ProxyOptionsFrom(*server->config_->Get()));
  server->active_ = std::make_unique<ActiveRpcs>(*server->timers_, limits);
  server->metrics_->SetRpcSource([self] {
    ActiveRpcStats stats = self->active_->stats();
    stats.tokens_scrubbed = self->proxy_->tokens_scrubbed();
    return stats;
  });
  server->token_service_ = std::make_unique<TokenBrokerService>(
      *server->config_, *server->cache_, *server->proxy_, *server->active_,
      *server->audit_, *server->clock_);
  server->admin_service_ = std::make_unique<BrokerAdminService>(
      *server->config_, *server->cache_, *server, *server->audit_,
      *server->clock_);
  return server;
}

BrokerServer::~BrokerServer() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
  metrics_->SetCacheSource(nullptr, nullptr);
  metrics_->SetUpstreamSource(nullptr);
  metrics_->SetRpcSource(nullptr);
  if (refresher_ != nullptr) refresher_->Stop();
  // The HTTP clients complete (cancel) every exchange still in flight while
  // the cache and proxy they report to are alive.
  owned_call_http_.reset();
  owned_token_http_.reset();
}

absl::Status BrokerServer::Start(const std::string& listen_address) {
  std::shared_ptr<const Config> config = config_->Get();
  std::string address =
      listen_address.empty() ? config->listen.grpc : listen_address;

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(*config);
  if (!credentials.ok()) return credentials.status();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *credentials, &port_);
  // Room for the largest Call body plus the rest of the message, so that
  // the broker's own limit answers with a clear message.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(config->upstream.max_request_bytes + (1 << 20)));
  builder.RegisterService(token_service_.get());
  builder.RegisterService(admin_service_.get());
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<MetricsInterceptorFactory>(*metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address,
                     ": check that the address is valid and the port free"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  {
    absl::MutexLock lock(&mu_);
    server_ = std::move(server);
    health_ = health;
  }
  if (refresher_ != nullptr) refresher_->Start(*cache_);

  health->SetServingStatus(true);
  health->SetServingStatus(kTokenBrokerService, true);
  health->SetServingStatus(kBrokerAdminService, true);
  for (const AppConfig& app : config->apps) {
    health->SetServingStatus(AppHealthName(app.name), true);
  }
  if (!config->listen.probe_grpc.empty()) {
    if (absl::Status s = StartProbeServer(config->listen.probe_grpc); !s.ok()) {
      return s;
    }
  }
  if (!config->listen.tls.enabled()) {
    LogWarning(
        "development.insecure_plaintext: serving plaintext gRPC; callers "
        "without credentials are the caller 'anonymous'. Never in production",
        {{"address", address}});
  }
  LogInfo("token broker listening",
          {{"address", address},
           {"port", port_},
           {"tls", config->listen.tls.enabled()},
           {"mtls", !config->listen.tls.client_ca_file.empty()},
           {"apps", static_cast<int>(config->apps.size())},
           {"callers", static_cast<int>(config->callers.size())}});
  return absl::OkStatus();
}

absl::Status BrokerServer::StartProbeServer(const std::string& address) {
  // A second server with nothing but the standard health service (it is
  // enabled process-wide), in plaintext: the kubelet's gRPC probes cannot
  // present client certificates.
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &probe_port_);
  probe_server_ = builder.BuildAndStart();
  if (probe_server_ == nullptr || probe_port_ == 0) {
    probe_server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on listen.probe_grpc ", address,
                     ": check that the address is valid and the port free"));
  }
  grpc::HealthCheckServiceInterface* health =
      probe_server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kLivenessService, true);
  health->SetServingStatus(kReadinessService, true);
  LogInfo("gRPC probe listener (health service only)",
          {{"address", address}, {"port", probe_port_}});
  return absl::OkStatus();
}

void BrokerServer::Revoke(const std::string& app,
                          absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  std::vector<TokenPtr> tokens = cache_->DropApp(app);
  int count = static_cast<int>(tokens.size());
  if (count == 0) {
    done(0);
    return;
  }
  // Completed by the last revocation to answer.
  struct Pending {
    absl::Mutex mu;
    int remaining ABSL_GUARDED_BY(mu);
    std::vector<std::string> failures ABSL_GUARDED_BY(mu);
    absl::AnyInvocable<void(absl::StatusOr<int>)> done;
  };
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->remaining = count;
  }
  pending->done = std::move(done);
  for (const TokenPtr& token : tokens) {
    std::string fingerprint = token->fingerprint;
    source_->Revoke(
        app, token->access_token,
        [pending, count, app, fingerprint](absl::Status status) {
          std::vector<std::string> failures;
          {
            absl::MutexLock lock(&pending->mu);
            if (!status.ok()) {
              pending->failures.push_back(
                  absl::StrCat(fingerprint, ": ", status.message()));
            }
            if (--pending->remaining > 0) return;
            failures = pending->failures;
          }
          LogInfo("tokens revoked", {{"app", app},
                                     {"dropped", count},
                                     {"unconfirmed", failures.size()}});
          if (failures.empty()) {
            pending->done(count);
          } else {
            pending->done(absl::UnavailableError(absl::StrCat(
                "dropped ", count, " token(s) of app ", app,
                " from the broker, but Anypoint did not confirm the "
                "revocation of ",
                failures.size(), " (", absl::StrJoin(failures, "; "),
                "); they stay usable upstream until they expire")));
          }
        });
  }
}

absl::StatusOr<ReloadSummary> BrokerServer::Reload() {
  absl::MutexLock reload_lock(&reload_mu_);
  std::shared_ptr<const Config> old = config_->Get();
  absl::StatusOr<Config> loaded = LoadConfigFile(old->path);
  if (!loaded.ok()) {
    metrics_->ConfigLoaded(false, clock_->Now());
    LogWarning("config reload rejected; the running config stays in force",
               {{"error", std::string(loaded.status().message())}});
    return absl::FailedPreconditionError(
        absl::StrCat("the config file is not valid, nothing changed: ",
                     loaded.status().message()));
  }
  auto fresh = std::make_shared<const Config>(*std::move(loaded));

  ReloadSummary summary;
  std::vector<std::string> unchanged;
  for (const AppConfig& app : fresh->apps) {
    const AppConfig* before = old->FindApp(app.name);
    if (before == nullptr) {
      summary.added.push_back(app.name);
    } else if (!SameApp(*before, app)) {
      summary.changed.push_back(app.name);
    } else {
      unchanged.push_back(app.name);
    }
  }
  for (const AppConfig& app : old->apps) {
    if (fresh->FindApp(app.name) == nullptr) {
      summary.removed.push_back(app.name);
    }
  }
  // Sections read only at start: say so when a reload changes them.
  const std::pair<const char*, bool> restart_only[] = {
      {"listen",
       fresh->listen.grpc != old->listen.grpc ||
           fresh->listen.admin_http != old->listen.admin_http ||
           fresh->listen.probe_grpc != old->listen.probe_grpc ||
           fresh->listen.tls.cert_file != old->listen.tls.cert_file ||
           fresh->listen.tls.key_file != old->listen.tls.key_file ||
           fresh->listen.tls.client_ca_file != old->listen.tls.client_ca_file ||
           fresh->development.insecure_plaintext !=
               old->development.insecure_plaintext},
      {"upstream",
       fresh->upstream.ca_file != old->upstream.ca_file ||
           fresh->upstream.connect_timeout != old->upstream.connect_timeout},
      {"audit", fresh->audit.path != old->audit.path ||
                    fresh->audit.fail_closed != old->audit.fail_closed},
  };
  for (const auto& [section, changed] : restart_only) {
    if (changed) {
      LogWarning(
          "config reload: this section changed but takes effect only "
          "after a restart",
          {{"section", section}});
    }
  }

  source_->SetApps(fresh->apps);
  cache_->SetPolicy(fresh->cache);
  proxy_->SetOptions(ProxyOptionsFrom(*fresh));
  config_->Set(fresh);
  if (LogLevel level; ParseLogLevel(fresh->log_level, &level)) {
    SetLogLevel(level);
  }
  for (const std::string& app : summary.changed) cache_->DropApp(app);
  for (const std::string& app : summary.removed) cache_->DropApp(app);
  // Apps whose credentials were rejected get a fresh try at once.
  for (const TokenEntryInfo& info : cache_->Snapshot()) {
    if (!info.valid && !info.last_error.ok()) cache_->DropApp(info.app);
  }
  // Streams whose caller lost its key or grant end now.
  active_->SetLimits(fresh->limits);
  active_->Recheck(fresh);
  grpc::HealthCheckServiceInterface* health;
  {
    absl::MutexLock lock(&mu_);
    health = health_;
  }
  if (health != nullptr) {
    for (const std::string& app : summary.added) {
      health->SetServingStatus(AppHealthName(app), true);
    }
    for (const std::string& app : summary.changed) {
      health->SetServingStatus(AppHealthName(app), true);
    }
    for (const std::string& app : summary.removed) {
      health->SetServingStatus(AppHealthName(app), false);
    }
  }
  metrics_->ConfigLoaded(true, clock_->Now());
  LogInfo("config reloaded", {{"added", summary.added},
                              {"changed", summary.changed},
                              {"removed", summary.removed},
                              {"callers", fresh->callers.size()}});
  return summary;
}

void BrokerServer::OnFetch(const TokenRequest& request,
                           const absl::Status& status) {
  metrics_->TokenFetched(request.app, status);
  grpc::HealthCheckServiceInterface* health;
  {
    absl::MutexLock lock(&mu_);
    health = health_;
  }
  if (health == nullptr) return;
  bool healthy = status.ok();
  if (!healthy) {
    // An app whose refresh fails but whose token is still valid still serves.
    for (const TokenEntryInfo& info : cache_->Snapshot()) {
      if (info.app == request.app && info.valid) healthy = true;
    }
  }
  health->SetServingStatus(AppHealthName(request.app), healthy);
}

void BrokerServer::Shutdown(absl::Duration drain_delay, absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_ || server_ == nullptr) return;
    shut_down_ = true;
  }
  LogInfo("shutting down: reporting NOT_SERVING, then draining",
          {{"drain_delay_ms", absl::ToInt64Milliseconds(drain_delay)},
           {"grace_ms", absl::ToInt64Milliseconds(grace)}});
  server_->GetHealthCheckService()->Shutdown();
  if (probe_server_ != nullptr) {
    // Not ready any more, but alive: the kubelet must not restart a pod
    // that is draining.
    grpc::HealthCheckServiceInterface* probes =
        probe_server_->GetHealthCheckService();
    // (SetServingStatus(bool) would change every name, "liveness" too.)
    probes->SetServingStatus("", false);
    probes->SetServingStatus(kReadinessService, false);
  }
  absl::SleepFor(drain_delay);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  if (probe_server_ != nullptr) probe_server_->Shutdown();
  LogInfo("token broker stopped");
}

bool BrokerServer::draining() const {
  absl::MutexLock lock(&mu_);
  return shut_down_;
}

void BrokerServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace tokenbroker
