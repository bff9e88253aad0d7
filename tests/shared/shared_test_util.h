#ifndef TOKENBROKER_TESTS_SHARED_SHARED_TEST_UTIL_H_
#define TOKENBROKER_TESTS_SHARED_SHARED_TEST_UTIL_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/redis/redis_client.h"
#include "service/store/sealed_box.h"
#include "service/upstream/token_source.h"
#include "tests/testing/redis_server.h"

namespace tokenbroker::testing {

// A key ring of fixed test keys: each (id, fill byte) is a key of that byte.
std::shared_ptr<const KeyRing> TestRing(
    const std::vector<std::pair<std::string, char>>& ids_and_fill = {
        {"k1", 'a'}});

// A client for `server` with short reconnect delays.
std::unique_ptr<RedisClient> StartTestClient(
    const RedisServerProcess& server,
    absl::Duration command_timeout = absl::Seconds(2));

// Every key in the server (SCAN), and for each its whole content as text
// (GET for strings, HGETALL for hashes joined): what `redis-cli --scan` and
// GET would show an operator.
std::map<std::string, std::string> DumpRedis(const RedisServerProcess& server);

// Records the results of callbacks, each of which must run exactly once.
// Thread-safe.
class Results {
 public:
  // A callback for result `i` (grows the table as needed).
  TokenCallback Callback(int i);

  int calls(int i) const;
  // Results that came so far (first answer of each).
  int answered() const;
  // True if some callback ran more than once.
  bool any_twice() const;
  absl::StatusOr<Token> result(int i) const;

 private:
  mutable absl::Mutex mu_;
  std::map<int, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<int, absl::StatusOr<Token>> results_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_SHARED_SHARED_TEST_UTIL_H_
