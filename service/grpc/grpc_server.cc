#include "service/grpc/grpc_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "service/common/log.h"
#include "service/common/read_file.h"
#include "service/metrics/grpc_interceptor.h"

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
  absl::StatusOr<std::string> content = ReadFile(path);
  if (!content.ok() || content->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("listen.tls.", key, ": cannot read ", path,
                     ": check that the file exists and is readable"));
  }
  return content;
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

}  // namespace

GrpcServer::GrpcServer(TokenBrokerService& token_service,
                       BrokerAdminService& admin_service,
                       BrokerMetrics& metrics)
    : token_service_(token_service),
      admin_service_(admin_service),
      metrics_(metrics) {}

GrpcServer::~GrpcServer() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
}

absl::Status GrpcServer::Start(const Config& config,
                               const std::string& address) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(config);
  if (!credentials.ok()) return credentials.status();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *credentials, &port_);
  // Room for the largest Call body plus the rest of the message, so that
  // the broker's own limit answers with a clear message.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(config.upstream.max_request_bytes + (1 << 20)));
  builder.RegisterService(&token_service_);
  builder.RegisterService(&admin_service_);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<MetricsInterceptorFactory>(metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address,
                     ": check that the address is valid and the port free"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kTokenBrokerService, true);
  health->SetServingStatus(kBrokerAdminService, true);
  for (const AppConfig& app : config.apps) {
    health->SetServingStatus(AppHealthName(app.name), true);
  }
  {
    absl::MutexLock lock(&mu_);
    server_ = std::move(server);
    health_ = health;
  }
  if (!config.listen.probe_grpc.empty()) {
    if (absl::Status s = StartProbeServer(config.listen.probe_grpc); !s.ok()) {
      return s;
    }
  }
  if (!config.listen.tls.enabled()) {
    LogWarning(
        "development.insecure_plaintext: serving plaintext gRPC; callers "
        "without credentials are the caller 'anonymous'. Never in production",
        {{"address", address}});
  }
  LogInfo("token broker listening",
          {{"address", address},
           {"port", port_},
           {"tls", config.listen.tls.enabled()},
           {"mtls", !config.listen.tls.client_ca_file.empty()},
           {"apps", static_cast<int>(config.apps.size())},
           {"callers", static_cast<int>(config.callers.size())}});
  return absl::OkStatus();
}

absl::Status GrpcServer::StartProbeServer(const std::string& address) {
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

void GrpcServer::SetAppHealth(const std::string& app, bool serving) {
  grpc::HealthCheckServiceInterface* health;
  {
    absl::MutexLock lock(&mu_);
    health = health_;
  }
  if (health != nullptr) health->SetServingStatus(AppHealthName(app), serving);
}

void GrpcServer::SetSharedStateHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health;
  {
    absl::MutexLock lock(&mu_);
    health = health_;
  }
  if (health != nullptr) health->SetServingStatus("shared-state", serving);
}

void GrpcServer::Shutdown(absl::Duration drain_delay, absl::Duration grace) {
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

bool GrpcServer::draining() const {
  absl::MutexLock lock(&mu_);
  return shut_down_;
}

void GrpcServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace tokenbroker
