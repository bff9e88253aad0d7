#ifndef TOKENBROKER_SERVICE_GRPC_STATUS_H_
#define TOKENBROKER_SERVICE_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace tokenbroker {

// The one conversion from the broker's error currency to gRPC's. Codes map
// one to one; the message is kept (it never holds a secret).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_STATUS_H_
