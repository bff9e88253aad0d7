// The `shared_state` section: Redis shared by every replica (tokens, fetch
// leases, revocations, user grants). Only `redis` for now.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/value_checks.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {
namespace {

// "host:port" with the port required, or "unix:/absolute/path".
absl::Status CheckRedisAddress(const YamlReader& reader, const Field& field,
                               const std::string& address) {
  if (absl::StartsWith(address, "unix:")) {
    if (!absl::StartsWith(address, "unix:/")) {
      return reader.Error(field, "a Unix socket is unix:/absolute/path");
    }
    return absl::OkStatus();
  }
  if (std::string problem = CheckHostPort(address, /*port_required=*/true);
      !problem.empty()) {
    return reader.Error(field, absl::StrCat(problem,
                                            " (e.g. redis:6379 or "
                                            "unix:/run/redis/redis.sock)"));
  }
  return absl::OkStatus();
}

absl::Status ParseSentinel(const YamlReader& reader, const Field& field,
                           SharedStateConfig* redis) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(field, {"addresses", "master"}, &keys));
  auto addresses = keys.find("addresses");
  auto master = keys.find("master");
  if (addresses == keys.end() || master == keys.end()) {
    return reader.Error(field,
                        "needs addresses and master, e.g. {addresses: "
                        "[sentinel-0:26379, sentinel-1:26379], master: "
                        "mymaster}");
  }
  TB_ASSIGN_OR_RETURN(redis->sentinels, reader.TokenList(addresses->second));
  if (redis->sentinels.empty()) {
    return reader.Error(addresses->second, "at least one Sentinel is needed");
  }
  for (const std::string& address : redis->sentinels) {
    if (std::string problem = CheckHostPort(address, /*port_required=*/true);
        !problem.empty()) {
      return reader.Error(addresses->second, problem);
    }
  }
  TB_ASSIGN_OR_RETURN(redis->sentinel_master, reader.Token(master->second));
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseSharedStateSection(const YamlReader& reader,
                                     const Field& field, Config* config) {
  FieldMap top;
  TB_RETURN_IF_ERROR(reader.ReadMap(field, {"redis"}, &top));
  auto redis_it = top.find("redis");
  if (redis_it == top.end()) return absl::OkStatus();
  const Field& section = redis_it->second;
  SharedStateConfig* redis = &config->shared_state;
  FieldMap keys;
  TB_RETURN_IF_ERROR(
      reader.ReadMap(section,
                     {"address", "sentinel", "username", "password_file",
                      "key_prefix", "connect_timeout", "command_timeout",
                      "lease_ttl", "sync_interval", "keys"},
                     &keys));
  auto address = keys.find("address");
  auto sentinel = keys.find("sentinel");
  if ((address == keys.end()) == (sentinel == keys.end())) {
    return reader.Error(section,
                        "needs exactly one of address (host:port or "
                        "unix:/path) and sentinel ({addresses, master})");
  }
  if (address != keys.end()) {
    TB_ASSIGN_OR_RETURN(redis->address, reader.Token(address->second));
    TB_RETURN_IF_ERROR(
        CheckRedisAddress(reader, address->second, redis->address));
  } else {
    TB_RETURN_IF_ERROR(ParseSentinel(reader, sentinel->second, redis));
  }
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "username", &redis->username,
                                         &YamlReader::Token));
  TB_RETURN_IF_ERROR(reader.ReadOptional(
      keys, "password_file", &redis->password_file, &YamlReader::Token));
  if (auto it = keys.find("key_prefix"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(redis->key_prefix, reader.Token(it->second));
    if (redis->key_prefix.size() > 64 ||
        !AllCharsIn(redis->key_prefix, absl::ascii_isalnum, ".:_-{}")) {
      return reader.Error(it->second,
                          "a key prefix is 1 to 64 letters, digits, '.', "
                          "':', '_', '-', '{' or '}' (default tokenbroker:)");
    }
  }
  const std::pair<absl::string_view, absl::Duration*> durations[] = {
      {"connect_timeout", &redis->connect_timeout},
      {"command_timeout", &redis->command_timeout},
      {"lease_ttl", &redis->lease_ttl},
      {"sync_interval", &redis->sync_interval}};
  for (const auto& [name, target] : durations) {
    TB_RETURN_IF_ERROR(reader.ReadOptional(keys, name, target,
                                           &YamlReader::Duration,
                                           /*allow_zero=*/false));
  }
  if (redis->command_timeout > absl::Seconds(10) ||
      redis->connect_timeout > absl::Seconds(30)) {
    return reader.Error(section,
                        "command_timeout is at most 10s and connect_timeout "
                        "at most 30s: a replica waits that long before it "
                        "serves on its own");
  }
  if (redis->lease_ttl < absl::Seconds(1) ||
      redis->lease_ttl > absl::Minutes(5)) {
    return reader.Error(section,
                        "lease_ttl is 1s to 5m (default 10s): a replica that "
                        "dies while fetching delays the others that long");
  }
  if (redis->sync_interval > absl::Minutes(1)) {
    return reader.Error(section,
                        "sync_interval is at most 1m (default 1s): how late "
                        "a replica that missed a revocation may learn of it");
  }
  auto list = keys.find("keys");
  if (list == keys.end()) {
    return reader.Error(section,
                        "keys is required: [{id: k1, file: PATH}] (AES-256 "
                        "keys; the first seals every value written to Redis, "
                        "every one opens)");
  }
  return ParseStoreKeyList(reader, list->second, &redis->keys);
}

}  // namespace config_internal
}  // namespace tokenbroker
