#ifndef TOKENBROKER_SERVICE_GRPC_TOKEN_BROKER_SERVICE_H_
#define TOKENBROKER_SERVICE_GRPC_TOKEN_BROKER_SERVICE_H_

#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "service/auth/audit.h"
#include "service/cache/token_cache.h"
#include "service/common/clock.h"
#include "service/config/config_store.h"
#include "service/grpc/active_rpcs.h"
#include "service/grpc/request_context.h"
#include "service/proxy/proxy.h"
#include "service/users/user_grants.h"

namespace tokenbroker {

// The TokenBroker gRPC service: authenticates the caller, checks its grant,
// turns requests into cache lookups and tokens into responses, and audits
// each decision and use. A cache hit is answered inline on the gRPC thread; a
// miss parks the RPC until the key's single upstream fetch completes, so no
// gRPC thread ever blocks on the network. Thread-safe.
class TokenBrokerService final
    : public anypoint::tokenbroker::v1::TokenBroker::CallbackService {
 public:
  // `grants`: the user grants of user apps; nullptr without a grant store.
  TokenBrokerService(const ConfigStore& config, TokenCache& cache, Proxy& proxy,
                     ActiveRpcs& active, AuditSink& audit, const Clock& clock,
                     const UserGrants* grants = nullptr);

  grpc::ServerUnaryReactor* GetToken(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::GetTokenRequest* request,
      anypoint::tokenbroker::v1::GetTokenResponse* response) override;

  grpc::ServerWriteReactor<anypoint::tokenbroker::v1::GetTokenResponse>*
  WatchToken(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::WatchTokenRequest* request) override;

  grpc::ServerWriteReactor<anypoint::tokenbroker::v1::CallStreamResponse>*
  CallStream(grpc::CallbackServerContext* context,
             const anypoint::tokenbroker::v1::CallRequest* request) override;

  grpc::ServerUnaryReactor* Call(
      grpc::CallbackServerContext* context,
      const anypoint::tokenbroker::v1::CallRequest* request,
      anypoint::tokenbroker::v1::CallResponse* response) override;

 private:
  // Authenticates, validates, authorizes and audits the decision of a Call
  // or CallStream, and builds the request to forward. Denials are audited.
  absl::StatusOr<ProxyRequest> PrepareCall(
      RequestContext& rpc, const grpc::CallbackServerContext& context,
      const anypoint::tokenbroker::v1::CallRequest& request);

  const ConfigStore& config_;
  TokenCache& cache_;
  Proxy& proxy_;
  ActiveRpcs& active_;
  AuditSink& audit_;
  const Clock& clock_;
  const UserGrants* const grants_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_TOKEN_BROKER_SERVICE_H_
