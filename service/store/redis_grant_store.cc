#include "service/store/redis_grant_store.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

// KEYS[1] the record; ARGV[1] the expected version ("0": no record), ARGV[2]
// the new value. {1} when written, else {0, the stored version} (its clear
// prefix, "?" when the value has none a number could be).
constexpr char kPutIfVersionScript[] = R"lua(
local current = redis.call('GET', KEYS[1])
local version = '0'
if current then
  local colon = string.find(current, ':', 1, true)
  if colon and colon > 1 and colon <= 20 then
    version = string.sub(current, 1, colon - 1)
  else
    version = '?'
  end
end
if version ~= ARGV[1] then return {0, version} end
redis.call('SET', KEYS[1], ARGV[2])
return {1}
)lua";

// KEYS[1] the record; ARGV[1] the value read, ARGV[2] the same record sealed
// with the current key. 1 when replaced, 0 when the value changed meanwhile.
constexpr char kResealScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
)lua";

constexpr int kScanCount = 256;
constexpr size_t kReadBatch = 128;
constexpr size_t kMaxVersionDigits = 19;  // int64_t

// A client error as the store reports it. Redis's error replies (INTERNAL)
// and calls from the wrong thread (FAILED_PRECONDITION) keep their code;
// everything else means Redis cannot be reached in time: UNAVAILABLE.
absl::Status RedisError(absl::string_view action, absl::string_view key,
                        const absl::Status& status) {
  std::string message = absl::StrCat("grant store (Redis): cannot ", action,
                                     " ", key, ": ", status.message());
  if (status.code() == absl::StatusCode::kInternal ||
      status.code() == absl::StatusCode::kFailedPrecondition) {
    return absl::Status(status.code(), message);
  }
  return absl::UnavailableError(message);
}

absl::Status UnexpectedReply(absl::string_view action, absl::string_view key) {
  return absl::InternalError(absl::StrCat("grant store (Redis): cannot ",
                                          action, " ", key,
                                          ": unexpected reply from Redis"));
}

// `text` as a SCAN MATCH pattern that matches only itself.
std::string GlobLiteral(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

bool IsVersion(absl::string_view text) {
  return !text.empty() && text.size() <= kMaxVersionDigits &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return absl::ascii_isdigit(static_cast<unsigned char>(c));
         });
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisGrantStore>> RedisGrantStore::Create(
    RedisClient& redis, std::shared_ptr<const KeyRing> keys,
    std::string key_prefix) {
  if (keys == nullptr) {
    return absl::InvalidArgumentError("grant store (Redis): no key ring given");
  }
  return std::unique_ptr<RedisGrantStore>(
      new RedisGrantStore(redis, std::move(keys), std::move(key_prefix)));
}

RedisGrantStore::RedisGrantStore(RedisClient& redis,
                                 std::shared_ptr<const KeyRing> keys,
                                 std::string key_prefix)
    : redis_(redis),
      keys_(std::move(keys)),
      key_prefix_(std::move(key_prefix)) {}

std::string RedisGrantStore::KeyName(absl::string_view app,
                                     absl::string_view user_id) const {
  return absl::StrCat(key_prefix_, "grant:", app, ":", user_id);
}

absl::Status RedisGrantStore::ValidateKey(absl::string_view app,
                                          absl::string_view user_id) {
  TB_RETURN_IF_ERROR(ValidateGrantKey(app, user_id));
  if (absl::StrContains(app, ':')) {
    return absl::InvalidArgumentError(
        "grant app contains ':' (it would end the app in the Redis key name)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RedisGrantStore::SealValue(
    const UserGrant& grant) const {
  std::string plaintext = GrantRecordJson(grant);
  absl::StatusOr<std::string> sealed =
      keys_->Seal(plaintext, KeyName(grant.app, grant.user_id));
  ClearSecret(&plaintext);
  if (!sealed.ok()) return sealed.status();
  return absl::StrCat(grant.version, ":", *sealed);
}

absl::StatusOr<UserGrant> RedisGrantStore::OpenValue(
    const std::string& key, absl::string_view value) const {
  const size_t colon = value.find(':');
  int64_t version = 0;
  if (colon == absl::string_view::npos || !IsVersion(value.substr(0, colon)) ||
      !absl::SimpleAtoi(value.substr(0, colon), &version)) {
    return absl::DataLossError(
        "the value does not start with \"<version>:\" (not a grant record)");
  }
  const absl::string_view envelope = value.substr(colon + 1);
  absl::StatusOr<std::string> plaintext = keys_->Open(envelope, key);
  if (!plaintext.ok()) return absl::DataLossError(plaintext.status().message());
  absl::StatusOr<UserGrant> grant = ParseGrantRecordJson(&*plaintext);
  if (!grant.ok()) return grant.status();
  auto refuse = [&](absl::string_view what) {
    ClearSecret(&grant->refresh_token);
    return absl::DataLossError(what);
  };
  if (KeyName(grant->app, grant->user_id) != key) {
    return refuse("its sealed record names another app or user");
  }
  if (grant->version != version) {
    return refuse(absl::StrCat("its clear version ", version,
                               " is not its sealed one ", grant->version));
  }
  return grant;
}

absl::Status RedisGrantStore::Put(const UserGrant& grant) {
  TB_RETURN_IF_ERROR(ValidateGrant(grant));
  TB_RETURN_IF_ERROR(ValidateKey(grant.app, grant.user_id));
  TB_ASSIGN_OR_RETURN(std::string value, SealValue(grant));
  const std::string key = KeyName(grant.app, grant.user_id);
  absl::StatusOr<RedisReply> reply =
      redis_.CommandSync({"SET", key, std::move(value)});
  if (!reply.ok()) return RedisError("write", key, reply.status());
  return absl::OkStatus();
}

absl::Status RedisGrantStore::PutIfVersion(const UserGrant& grant,
                                           int64_t expected_version) {
  TB_RETURN_IF_ERROR(ValidateVersionedPut(grant, expected_version));
  TB_RETURN_IF_ERROR(ValidateKey(grant.app, grant.user_id));
  TB_ASSIGN_OR_RETURN(std::string value, SealValue(grant));
  const std::string key = KeyName(grant.app, grant.user_id);
  absl::StatusOr<RedisReply> reply =
      redis_.EvalSync(kPutIfVersionScript, {key},
                      {absl::StrCat(expected_version), std::move(value)});
  if (!reply.ok()) return RedisError("write", key, reply.status());
  if (reply->type != RedisReply::Type::kArray || reply->elements.empty() ||
      reply->elements[0].type != RedisReply::Type::kInteger) {
    return UnexpectedReply("write", key);
  }
  if (reply->elements[0].integer == 1) return absl::OkStatus();
  std::string stored =
      reply->elements.size() > 1 && IsVersion(reply->elements[1].str)
          ? reply->elements[1].str
          : "an unreadable one";
  return absl::AbortedError(
      absl::StrCat("grant store (Redis): ", key, " is at version ", stored,
                   ", not ", expected_version,
                   " (another replica wrote or removed it): read it "
                   "again"));
}

absl::Status RedisGrantStore::Delete(absl::string_view app,
                                     absl::string_view user_id) {
  TB_RETURN_IF_ERROR(ValidateKey(app, user_id));
  const std::string key = KeyName(app, user_id);
  absl::StatusOr<RedisReply> reply = redis_.CommandSync({"DEL", key});
  if (!reply.ok()) return RedisError("delete", key, reply.status());
  return absl::OkStatus();
}

absl::StatusOr<std::optional<UserGrant>> RedisGrantStore::Read(
    absl::string_view app, absl::string_view user_id) {
  TB_RETURN_IF_ERROR(ValidateKey(app, user_id));
  const std::string key = KeyName(app, user_id);
  absl::StatusOr<RedisReply> reply = redis_.CommandSync({"GET", key});
  if (!reply.ok()) return RedisError("read", key, reply.status());
  if (reply->is_nil()) return std::nullopt;
  if (reply->type != RedisReply::Type::kString) {
    return UnexpectedReply("read", key);
  }
  absl::StatusOr<UserGrant> grant = OpenValue(key, reply->str);
  if (!grant.ok()) {
    return absl::DataLossError(
        absl::StrCat("grant store (Redis): ", key,
                     " cannot be read: ", grant.status().message()));
  }
  return std::optional<UserGrant>(*std::move(grant));
}

void RedisGrantStore::LoadValue(const std::string& key,
                                const std::string& value,
                                GrantStoreLoad* load) {
  const absl::string_view rest =
      absl::string_view(key).substr(key_prefix_.size() + 6);  // "grant:"
  const size_t colon = rest.find(':');
  if (colon == absl::string_view::npos ||
      !ValidateKey(rest.substr(0, colon), rest.substr(colon + 1)).ok()) {
    load->problems.push_back(absl::StrCat(
        key, ": not a grant key (", key_prefix_, "grant:<app>:<user_id>)"));
    return;
  }
  absl::StatusOr<UserGrant> grant = OpenValue(key, value);
  if (!grant.ok()) {
    load->problems.push_back(absl::StrCat(key, ": ", grant.status().message()));
    return;
  }
  const absl::string_view envelope =
      absl::string_view(value).substr(value.find(':') + 1);
  if (!keys_->IsCurrent(envelope)) {
    const std::string old_key = KeyRing::KeyIdOf(envelope).value_or("?");
    absl::StatusOr<std::string> resealed = SealValue(*grant);
    absl::Status status = resealed.status();
    bool replaced = false;
    if (resealed.ok()) {
      absl::StatusOr<RedisReply> reply =
          redis_.EvalSync(kResealScript, {key}, {value, *std::move(resealed)});
      status = reply.ok() ? absl::OkStatus()
                          : RedisError("re-seal", key, reply.status());
      // 0: written since it was read, so under the current key.
      replaced = reply.ok() && reply->integer == 1;
    }
    if (replaced) {
      LogInfo("re-sealed a user grant with the current key",
              {{"app", grant->app},
               {"user_id", grant->user_id},
               {"old_key_id", old_key},
               {"key_id", keys_->current_key_id()}});
    } else if (!status.ok()) {
      LogWarning("could not re-seal a user grant with the current key",
                 {{"app", grant->app},
                  {"user_id", grant->user_id},
                  {"old_key_id", old_key},
                  {"error", std::string(status.message())}});
      load->warnings.push_back(absl::StrCat(
          key, ": loaded, but could not be re-sealed with the current key '",
          keys_->current_key_id(), "' (keep key '", old_key,
          "' in the ring): ", status.message()));
    }
  }
  load->grants.push_back(*std::move(grant));
}

GrantStoreLoad RedisGrantStore::LoadAll() {
  GrantStoreLoad load;
  const std::string key_start = absl::StrCat(key_prefix_, "grant:");
  const std::string pattern = absl::StrCat(GlobLiteral(key_start), "*");
  // SCAN may return a key twice; a set also orders them.
  std::set<std::string> names;
  std::string cursor = "0";
  do {
    absl::StatusOr<RedisReply> reply = redis_.CommandSync(
        {"SCAN", cursor, "MATCH", pattern, "COUNT", absl::StrCat(kScanCount)});
    if (!reply.ok()) {
      load.error = RedisError("list", pattern, reply.status());
      return load;
    }
    if (reply->type != RedisReply::Type::kArray ||
        reply->elements.size() != 2 ||
        reply->elements[1].type != RedisReply::Type::kArray) {
      load.error = UnexpectedReply("list", pattern);
      return load;
    }
    cursor = reply->elements[0].str;
    for (const RedisReply& name : reply->elements[1].elements) {
      // MATCH is a glob: keep only what really starts with the prefix.
      if (absl::StartsWith(name.str, key_start)) names.insert(name.str);
    }
  } while (cursor != "0");

  std::vector<std::string> batch;
  auto read_batch = [&]() {
    std::vector<std::string> args = {"MGET"};
    args.insert(args.end(), batch.begin(), batch.end());
    absl::StatusOr<RedisReply> reply = redis_.CommandSync(std::move(args));
    if (!reply.ok()) {
      load.error = RedisError("read", pattern, reply.status());
      return false;
    }
    if (reply->type != RedisReply::Type::kArray ||
        reply->elements.size() != batch.size()) {
      load.error = UnexpectedReply("read", pattern);
      return false;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      // Nil: removed since it was listed, or not a string (not ours).
      if (reply->elements[i].type != RedisReply::Type::kString) continue;
      LoadValue(batch[i], reply->elements[i].str, &load);
    }
    batch.clear();
    return true;
  };
  for (const std::string& name : names) {
    batch.push_back(name);
    if (batch.size() == kReadBatch && !read_batch()) break;
  }
  if (load.error.ok() && !batch.empty()) read_batch();
  std::sort(load.grants.begin(), load.grants.end(),
            [](const UserGrant& a, const UserGrant& b) {
              return std::tie(a.app, a.user_id) < std::tie(b.app, b.user_id);
            });
  return load;
}

}  // namespace tokenbroker
