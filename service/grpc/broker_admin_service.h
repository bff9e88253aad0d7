#ifndef TOKENBROKER_SERVICE_GRPC_BROKER_ADMIN_SERVICE_H_
#define TOKENBROKER_SERVICE_GRPC_BROKER_ADMIN_SERVICE_H_

#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "service/auth/audit.h"
#include "service/cache/token_cache.h"
#include "service/common/clock.h"
#include "service/config/config_store.h"
#include "service/grpc/broker_control.h"
#include "service/users/user_grants.h"

namespace tokenbroker {

// The BrokerAdmin gRPC service; every RPC needs a caller with the admin role
// and is audited. ListApps reports each configured app and the state of its
// cached tokens, never a secret or a token. Thread-safe.
class BrokerAdminService final
    : public anypoint::tokenbroker::v1::BrokerAdmin::CallbackService {
 public:
  // `grants`: the user grants of user apps; nullptr without a grant store.
  BrokerAdminService(const ConfigStore& config, TokenCache& cache,
                     BrokerControl& control, AuditSink& audit,
                     const Clock& clock, const UserGrants* grants = nullptr);

  grpc::ServerUnaryReactor* ListApps(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::ListAppsRequest* request,
      anypoint::tokenbroker::v1::ListAppsResponse* response) override;

  grpc::ServerUnaryReactor* RefreshToken(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::RefreshTokenRequest* request,
      anypoint::tokenbroker::v1::RefreshTokenResponse* response) override;

  grpc::ServerUnaryReactor* RevokeToken(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::RevokeTokenRequest* request,
      anypoint::tokenbroker::v1::RevokeTokenResponse* response) override;

  grpc::ServerUnaryReactor* CreateConnectLink(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::CreateConnectLinkRequest* request,
      anypoint::tokenbroker::v1::CreateConnectLinkResponse* response) override;

  grpc::ServerUnaryReactor* ReloadConfig(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::ReloadConfigRequest* request,
      anypoint::tokenbroker::v1::ReloadConfigResponse* response) override;

 private:
  const ConfigStore& config_;
  TokenCache& cache_;
  BrokerControl& control_;
  AuditSink& audit_;
  const Clock& clock_;
  const UserGrants* const grants_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_BROKER_ADMIN_SERVICE_H_
