#ifndef TOKENBROKER_SERVICE_GRPC_CALL_REACTORS_H_
#define TOKENBROKER_SERVICE_GRPC_CALL_REACTORS_H_

#include <memory>

#include "anypoint/tokenbroker/v1/token_broker.pb.h"
#include "grpcpp/support/server_callback.h"
#include "service/grpc/active_rpcs.h"
#include "service/grpc/request_context.h"
#include "service/proxy/proxy.h"

namespace tokenbroker {

// Forwards one Call: finished exactly once, by the upstream answer or by the
// RPC's cancellation (which cancels the upstream transfer, or withdraws the
// wait for a token). Follows the pattern in reactors.h. Returns a finished
// reactor (RESOURCE_EXHAUSTED, audited) when a Calls limit is reached.
grpc::ServerUnaryReactor* StartCallReactor(
    grpc::CallbackServerContext* context, Proxy& proxy, ActiveRpcs& active,
    ProxyRequest request, std::unique_ptr<RequestContext> rpc,
    anypoint::tokenbroker::v1::CallResponse* response);

// Streams one Call's answer (CallStream). Pieces of the body are queued and
// written one message at a time; above a high-water mark the upstream
// transfer is paused until the caller has taken enough, so memory stays
// bounded whatever the size of the answer, and all streams together hold at
// most limits.max_stream_buffer_bytes (a stream over it ends with
// RESOURCE_EXHAUSTED). Registered with ActiveRpcs, which may end it (a
// reload took the caller's key or route away; its maximum lifetime).
grpc::ServerWriteReactor<anypoint::tokenbroker::v1::CallStreamResponse>*
StartCallStreamReactor(Proxy& proxy, ActiveRpcs& active, ProxyRequest request,
                       std::unique_ptr<RequestContext> rpc);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_CALL_REACTORS_H_
