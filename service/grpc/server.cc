#include "service/grpc/server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "service/common/log.h"
#include "service/upstream/curl_http_client.h"

namespace tokenbroker {
namespace {

constexpr char kTokenBrokerService[] = "anypoint.tokenbroker.v1.TokenBroker";
constexpr char kBrokerAdminService[] = "anypoint.tokenbroker.v1.BrokerAdmin";

std::string AppHealthName(absl::string_view app) {
  return absl::StrCat("app:", app);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Create(
    Config config, BrokerServerDeps deps) {
  std::unique_ptr<BrokerServer> server(new BrokerServer());
  if (deps.clock == nullptr) {
    server->owned_clock_ = std::make_unique<SystemClock>();
    deps.clock = server->owned_clock_.get();
  }
  server->clock_ = deps.clock;
  if (deps.http == nullptr) {
    CurlHttpClientOptions http_options;
    http_options.ca_file = config.upstream.ca_file;
    http_options.connect_timeout = config.upstream.connect_timeout;
    absl::StatusOr<std::unique_ptr<CurlHttpClient>> http =
        CurlHttpClient::Create(http_options);
    if (!http.ok()) return http.status();
    server->owned_http_ = *std::move(http);
    deps.http = server->owned_http_.get();
  }
  server->http_ = deps.http;
  server->start_refresher_ = deps.start_refresher;

  OAuthTokenSourceOptions source_options;
  source_options.default_lifetime = config.cache.default_lifetime;
  source_options.max_lifetime = config.cache.max_lifetime;
  source_options.fetch_timeout = config.cache.fetch_timeout;
  server->source_ = std::make_unique<OAuthTokenSource>(
      *server->http_, *server->clock_, source_options);
  server->source_->SetApps(config.apps);
  server->cache_ = std::make_unique<TokenCache>(*server->source_,
                                                *server->clock_, config.cache);
  server->config_ = std::make_unique<ConfigStore>(
      std::make_shared<const Config>(std::move(config)));
  server->token_service_ =
      std::make_unique<TokenBrokerService>(*server->config_, *server->cache_);
  server->admin_service_ =
      std::make_unique<BrokerAdminService>(*server->config_, *server->cache_);
  return server;
}

BrokerServer::~BrokerServer() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
  if (refresher_ != nullptr) refresher_->Stop();
  // The HTTP client completes (cancels) every fetch still in flight while
  // the cache it reports to is alive.
  owned_http_.reset();
}

absl::Status BrokerServer::Start(const std::string& listen_address) {
  std::shared_ptr<const Config> config = config_->Get();
  std::string address =
      listen_address.empty() ? config->listen.grpc : listen_address;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Caller authentication (mTLS or bearer keys) is not configured yet.
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(token_service_.get());
  builder.RegisterService(admin_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address,
                     ": check that the address is valid and the port free"));
  }

  cache_->SetFetchObserver(
      [this](const TokenRequest& request, const absl::Status& status) {
        OnFetch(request, status);
      });
  if (start_refresher_) {
    refresher_ = std::make_unique<Refresher>(*cache_, *clock_);
    refresher_->Start();
  }

  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kTokenBrokerService, true);
  health->SetServingStatus(kBrokerAdminService, true);
  for (const AppConfig& app : config->apps) {
    health->SetServingStatus(AppHealthName(app.name), true);
  }
  LogWarning(
      "serving plaintext gRPC without caller authentication; run it only "
      "where every caller is trusted",
      {{"address", address}});
  LogInfo("token broker listening",
          {{"address", address},
           {"port", port_},
           {"apps", static_cast<int>(config->apps.size())}});
  return absl::OkStatus();
}

void BrokerServer::OnFetch(const TokenRequest& request,
                           const absl::Status& status) {
  if (server_ == nullptr) return;
  bool healthy = status.ok();
  if (!healthy) {
    // An app whose refresh fails but whose token is still valid still serves.
    for (const TokenEntryInfo& info : cache_->Snapshot()) {
      if (info.app == request.app && info.valid) healthy = true;
    }
  }
  server_->GetHealthCheckService()->SetServingStatus(AppHealthName(request.app),
                                                     healthy);
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
  absl::SleepFor(drain_delay);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  LogInfo("token broker stopped");
}

void BrokerServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace tokenbroker
