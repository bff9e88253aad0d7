#include "tests/shared/shared_test_util.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::testing {

std::shared_ptr<const KeyRing> TestRing(
    const std::vector<std::pair<std::string, char>>& ids_and_fill) {
  std::vector<SealKey> keys;
  for (const auto& [id, fill] : ids_and_fill) {
    keys.push_back(*MakeSealKey(id, std::string(kSealKeyBytes, fill)));
  }
  return *KeyRing::Create(std::move(keys));
}

std::unique_ptr<RedisClient> StartTestClient(const RedisServerProcess& server,
                                             absl::Duration command_timeout) {
  RedisOptions options;
  options.address = server.redis_address();
  options.password = server.password();
  options.connect_timeout = absl::Seconds(2);
  options.command_timeout = command_timeout;
  options.reconnect_min = absl::Milliseconds(20);
  options.reconnect_max = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<RedisClient>> client =
      StartRedisClient(std::move(options));
  EXPECT_THAT(client, IsOk());
  return client.ok() ? std::move(*client) : nullptr;
}

std::map<std::string, std::string> DumpRedis(const RedisServerProcess& server) {
  std::map<std::string, std::string> dump;
  std::string cursor = "0";
  do {
    absl::StatusOr<RedisReply> page =
        server.Cli({"SCAN", cursor, "COUNT", "1000"});
    EXPECT_THAT(page, IsOk());
    if (!page.ok() || page->elements.size() != 2) break;
    cursor = page->elements[0].str;
    for (const RedisReply& key : page->elements[1].elements) {
      absl::StatusOr<RedisReply> type = server.Cli({"TYPE", key.str});
      std::string content;
      if (type.ok() && type->str == "hash") {
        absl::StatusOr<RedisReply> all = server.Cli({"HGETALL", key.str});
        if (all.ok()) {
          for (const RedisReply& part : all->elements) {
            absl::StrAppend(&content, part.str, "\n");
          }
        }
      } else {
        absl::StatusOr<RedisReply> value = server.Cli({"GET", key.str});
        if (value.ok()) content = value->str;
      }
      dump[key.str] = content;
    }
  } while (cursor != "0");
  return dump;
}

TokenCallback Results::Callback(int i) {
  return [this, i](absl::StatusOr<Token> result) {
    absl::MutexLock lock(&mu_);
    if (++calls_[i] == 1) results_.emplace(i, std::move(result));
  };
}

int Results::calls(int i) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(i);
  return it == calls_.end() ? 0 : it->second;
}

int Results::answered() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(results_.size());
}

bool Results::any_twice() const {
  absl::MutexLock lock(&mu_);
  for (const auto& [i, n] : calls_) {
    if (n > 1) return true;
  }
  return false;
}

absl::StatusOr<Token> Results::result(int i) const {
  absl::MutexLock lock(&mu_);
  auto it = results_.find(i);
  if (it == results_.end()) return absl::NotFoundError("no result yet");
  return it->second;
}

}  // namespace tokenbroker::testing
