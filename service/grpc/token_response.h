#ifndef TOKENBROKER_SERVICE_GRPC_TOKEN_RESPONSE_H_
#define TOKENBROKER_SERVICE_GRPC_TOKEN_RESPONSE_H_

#include <string>

#include "anypoint/tokenbroker/v1/token_broker.pb.h"
#include "service/grpc/request_context.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

// Fills `response` from `token` (the token type is always "Bearer") and the
// user the request acts for, if any (`rpc`).
void FillTokenResponse(const Token& token, const std::string& app,
                       const RequestContext& rpc,
                       anypoint::tokenbroker::v1::GetTokenResponse* response);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_TOKEN_RESPONSE_H_
