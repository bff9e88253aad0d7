#ifndef TOKENBROKER_TESTS_STORE_REDIS_STORE_TEST_UTIL_H_
#define TOKENBROKER_TESTS_STORE_REDIS_STORE_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "service/redis/redis_client.h"
#include "tests/testing/redis_server.h"

namespace tokenbroker::testing {

// A client of `server` (short reconnect delays, generous command timeout),
// connected when it returns; fails the test (and returns null) otherwise.
std::unique_ptr<RedisClient> StartConnectedClient(
    const RedisServerProcess& server);

// Every key of `server` (SCAN) and, for the string keys, their values: what
// `redis-cli --scan` and GET would show an operator.
std::vector<std::string> KeysAndValues(const RedisServerProcess& server);

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_STORE_REDIS_STORE_TEST_UTIL_H_
