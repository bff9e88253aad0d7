#include "service/grpc/token_response.h"

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace tokenbroker {

void FillTokenResponse(const Token& token, const std::string& app,
                       const RequestContext& rpc,
                       anypoint::tokenbroker::v1::GetTokenResponse* response) {
  response->set_access_token(token.access_token);
  response->set_token_type("Bearer");
  // Set in place (TimeUtil would build a Timestamp and copy it): whole
  // seconds and non-negative nanoseconds.
  constexpr int64_t kNanosPerSecond = 1000000000;
  int64_t unix_nanos = absl::ToUnixNanos(token.expires_at);
  int64_t seconds = unix_nanos / kNanosPerSecond;
  int64_t nanos = unix_nanos % kNanosPerSecond;
  if (nanos < 0) {
    --seconds;
    nanos += kNanosPerSecond;
  }
  google::protobuf::Timestamp* expires_at = response->mutable_expires_at();
  expires_at->set_seconds(seconds);
  expires_at->set_nanos(static_cast<int32_t>(nanos));
  for (const std::string& scope : token.scopes) response->add_scopes(scope);
  response->set_app(app);
  if (!rpc.user_id().empty()) {
    response->set_user_id(rpc.user_id());
    response->set_username(rpc.username());
  }
}

}  // namespace tokenbroker
