#include "tests/store/redis_store_test_util.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker::testing {

std::unique_ptr<RedisClient> StartConnectedClient(
    const RedisServerProcess& server) {
  RedisOptions options;
  options.address = server.redis_address();
  options.password = server.password();
  options.connect_timeout = absl::Seconds(2);
  options.command_timeout = absl::Seconds(2);
  options.reconnect_min = absl::Milliseconds(20);
  options.reconnect_max = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<RedisClient>> client =
      StartRedisClient(std::move(options));
  if (!client.ok()) {
    ADD_FAILURE() << client.status();
    return nullptr;
  }
  RedisClient* started = client->get();
  if (!PollUntil([started] { return started->stats().connected; })) {
    ADD_FAILURE() << "the Redis client did not connect";
    return nullptr;
  }
  return *std::move(client);
}

std::vector<std::string> KeysAndValues(const RedisServerProcess& server) {
  std::vector<std::string> out;
  std::string cursor = "0";
  do {
    absl::StatusOr<RedisReply> scan =
        server.Cli({"SCAN", cursor, "COUNT", "1000"});
    if (!scan.ok() || scan->elements.size() != 2) {
      ADD_FAILURE() << "SCAN failed: " << scan.status();
      return out;
    }
    cursor = scan->elements[0].str;
    for (const RedisReply& key : scan->elements[1].elements) {
      out.push_back(key.str);
      absl::StatusOr<RedisReply> type = server.Cli({"TYPE", key.str});
      if (type.ok() && type->str == "string") {
        absl::StatusOr<RedisReply> value = server.Cli({"GET", key.str});
        if (value.ok()) out.push_back(value->str);
      }
    }
  } while (cursor != "0");
  return out;
}

}  // namespace tokenbroker::testing
