#include "service/redis/hiredis_reply.h"

#include <string>

#include "absl/status/status.h"

namespace tokenbroker::internal {
namespace {

RedisReply Copy(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) {
        out.elements.push_back(Copy(*r.element[i]));
      }
      break;
    default:  // REDIS_REPLY_NIL
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

absl::StatusOr<RedisReply> FromHiredisReply(const redisReply& reply) {
  if (reply.type == REDIS_REPLY_ERROR) {
    return absl::InternalError(std::string(reply.str, reply.len));
  }
  return Copy(reply);
}

}  // namespace tokenbroker::internal
