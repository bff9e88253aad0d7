#ifndef TOKENBROKER_SERVICE_GRPC_WATCH_REACTOR_H_
#define TOKENBROKER_SERVICE_GRPC_WATCH_REACTOR_H_

#include <memory>
#include <string>

#include "anypoint/tokenbroker/v1/token_broker.pb.h"
#include "grpcpp/support/server_callback.h"
#include "service/cache/token_cache.h"
#include "service/grpc/active_rpcs.h"
#include "service/grpc/request_context.h"

namespace tokenbroker {

// Streams the tokens of one cache key (WatchToken): the current one, then
// each new one. Registered with ActiveRpcs, which may end it (a reload took
// the caller's key or grant away; its maximum lifetime). Follows the pattern
// in reactors.h; the cache's listener and the registry hold only the shared
// state.
//
// Returns a reactor already finished with RESOURCE_EXHAUSTED (audited) when
// the caller has too many watches open.
grpc::ServerWriteReactor<anypoint::tokenbroker::v1::GetTokenResponse>*
StartWatchReactor(TokenCache& cache, ActiveRpcs& active,
                  const TokenRequest& request, std::string app,
                  std::unique_ptr<RequestContext> rpc);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_WATCH_REACTOR_H_
