#ifndef TOKENBROKER_SERVICE_REDIS_HIREDIS_REPLY_H_
#define TOKENBROKER_SERVICE_REDIS_HIREDIS_REPLY_H_

#include <hiredis/hiredis.h>

#include "absl/status/statusor.h"
#include "service/redis/redis_client.h"

namespace tokenbroker::internal {

// Copies a hiredis reply into a RedisReply. A Redis error reply (at the top
// level) becomes INTERNAL with Redis's text; an error nested in an array
// (EXEC, a script's table) becomes a kStatus element holding the text.
// Shared by the client and the test harness's blocking helper.
absl::StatusOr<RedisReply> FromHiredisReply(const redisReply& reply);

}  // namespace tokenbroker::internal

#endif  // TOKENBROKER_SERVICE_REDIS_HIREDIS_REPLY_H_
