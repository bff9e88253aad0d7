#include "service/http/redis_pending_flows.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"
#include "service/common/token_fingerprint.h"

namespace tokenbroker {
namespace {

constexpr int kValueVersion = 1;

// Every script starts by dropping the members of the pending set (always
// KEYS[1]) whose expiry has passed by Redis's clock, the one PX uses; `now`
// is then in ms. keep(ttl) extends the set's own TTL so that it outlives its
// newest member and an idle cluster is left with nothing.
constexpr absl::string_view kPrelude = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local function keep(ttl)
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
)lua";

// KEYS: pending set, ticket. ARGV: sealed ticket, its TTL (ms), max_pending,
// the set's TTL (ms). {1, count} when stored, {0, count} when full,
// {2, count} when the key exists (a 256-bit collision: never).
constexpr absl::string_view kMintBody = R"lua(
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return {0, n} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2, n}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), KEYS[2])
keep(tonumber(ARGV[4]))
return {1, n + 1}
)lua";

// KEYS: pending set, ticket, state. ARGV: the ticket's value as read, the
// sealed state, its TTL (ms), the set's TTL (ms). {1, count} when the ticket
// still held that value and was replaced by the state, else {0, count}.
constexpr absl::string_view kBeginBody = R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {0, redis.call('ZCARD', KEYS[1])}
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), KEYS[3])
keep(tonumber(ARGV[4]))
return {1, redis.call('ZCARD', KEYS[1])}
)lua";

// KEYS: pending set, an entry. Takes the entry out: {count, value}, or
// {count} when there is none.
constexpr absl::string_view kTakeBody = R"lua(
local v = redis.call('GET', KEYS[2])
if v then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], KEYS[2])
end
return {redis.call('ZCARD', KEYS[1]), v}
)lua";

struct Scripts {
  std::string mint;
  std::string begin;
  std::string take;
};

const Scripts& SignInScripts() {
  static const Scripts* const kScripts = new Scripts{
      absl::StrCat(kPrelude, kMintBody), absl::StrCat(kPrelude, kBeginBody),
      absl::StrCat(kPrelude, kTakeBody)};
  return *kScripts;
}

// A client error as the pages and the admin RPC report it: the shared state
// cannot be reached (UNAVAILABLE), whatever the client's reason (down, slow,
// an error reply such as OOM or READONLY after a failover), except a call
// from the wrong thread, a bug that keeps its code.
absl::Status SharedStateError(absl::string_view what,
                              const absl::Status& status) {
  if (status.code() == absl::StatusCode::kFailedPrecondition) return status;
  return absl::UnavailableError(absl::StrCat(
      "the shared state (Redis) cannot be reached, so ", what, " (",
      status.message(),
      "); sign-ins work again once Redis answers: check shared_state.redis "
      "and the Redis server"));
}

absl::Status UnexpectedReply(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(
      "the shared state (Redis) gave an unexpected answer, so ", what,
      "; check that shared_state.redis names a Redis "
      "server"));
}

// The {integer, ...} answer of a script, or nullopt.
std::optional<int64_t> Element(const RedisReply& reply, size_t index) {
  if (reply.type != RedisReply::Type::kArray ||
      reply.elements.size() <= index ||
      reply.elements[index].type != RedisReply::Type::kInteger) {
    return std::nullopt;
  }
  return reply.elements[index].integer;
}

std::string Milliseconds(absl::Duration duration) {
  return absl::StrCat(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(duration)));
}

const std::string* StringField(const nlohmann::json& json, const char* name) {
  auto it = json.find(name);
  if (it == json.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

// Opens the envelope stored under `key` and parses its JSON; `fields` must
// all be strings. The plaintext (which may hold the verifier) is cleared.
absl::StatusOr<nlohmann::json> OpenValue(
    const KeyRing& keys, const std::string& key, const std::string& envelope,
    std::initializer_list<const char*> fields, absl::string_view what) {
  absl::StatusOr<std::string> plain = keys.Open(envelope, key);
  if (!plain.ok()) {
    return absl::DataLossError(absl::StrCat(
        what, " stored in the shared state (Redis) cannot be opened (",
        plain.status().message(),
        "); every replica needs the same shared_state.redis keys"));
  }
  nlohmann::json json = nlohmann::json::parse(*plain, nullptr, false);
  ClearSecret(&*plain);
  bool ok = json.is_object() && json.contains("expires_at") &&
            json["expires_at"].is_number_integer() && json.contains("v") &&
            json["v"] == kValueVersion;
  for (const char* field : fields) {
    ok = ok && StringField(json, field) != nullptr;
  }
  if (!ok) {
    return absl::DataLossError(
        absl::StrCat(what,
                     " stored in the shared state (Redis) is malformed "
                     "(written by another version of the broker?)"));
  }
  return json;
}

absl::Time ExpiresAt(const nlohmann::json& json) {
  return absl::FromUnixMillis(json["expires_at"].get<int64_t>());
}

}  // namespace

RedisPendingFlows::RedisPendingFlows(RedisClient& redis,
                                     std::shared_ptr<const KeyRing> keys,
                                     std::string key_prefix, const Clock& clock,
                                     PendingFlowsOptions options)
    : redis_(redis),
      keys_(std::move(keys)),
      prefix_(std::move(key_prefix)),
      clock_(clock),
      options_(std::move(options)),
      pending_(std::make_shared<std::atomic<int>>(0)) {}

std::string RedisPendingFlows::TicketKey(absl::string_view ticket) const {
  return absl::StrCat(prefix_, "signin:ticket:", Sha256Hex(ticket));
}

std::string RedisPendingFlows::StateKey(absl::string_view state) const {
  return absl::StrCat(prefix_, "signin:state:", Sha256Hex(state));
}

std::string RedisPendingFlows::PendingKey() const {
  return absl::StrCat(prefix_, "signin:pending");
}

int RedisPendingFlows::pending() const {
  return pending_->load(std::memory_order_relaxed);
}

void RedisPendingFlows::MintTicket(std::string app, std::string minted_by,
                                   MintCallback done) {
  const absl::Time now = clock_.Now();
  absl::StatusOr<std::string> ticket = RandomUrlToken();
  if (!ticket.ok()) {
    done(ticket.status());
    return;
  }
  const absl::Time expires_at = now + options_.start_link_ttl;
  const std::string key = TicketKey(*ticket);
  const nlohmann::json value = {{"v", kValueVersion},
                                {"app", std::move(app)},
                                {"minted_by", std::move(minted_by)},
                                {"expires_at", absl::ToUnixMillis(expires_at)}};
  absl::StatusOr<std::string> sealed = keys_->Seal(value.dump(), key);
  if (!sealed.ok()) {
    ClearSecret(&*ticket);
    done(sealed.status());
    return;
  }
  redis_.Eval(
      SignInScripts().mint, {PendingKey(), key},
      {*std::move(sealed), Milliseconds(options_.start_link_ttl),
       absl::StrCat(options_.max_pending),
       Milliseconds(std::max(options_.start_link_ttl, options_.state_ttl))},
      [ticket = *std::move(ticket), expires_at, done = std::move(done),
       pending = pending_](absl::StatusOr<RedisReply> reply) mutable {
        constexpr absl::string_view kWhat = "no sign-in link can be made now";
        std::optional<int64_t> stored, count;
        if (reply.ok()) {
          stored = Element(*reply, 0);
          count = Element(*reply, 1);
        }
        if (count.has_value()) {
          pending->store(static_cast<int>(*count), std::memory_order_relaxed);
        }
        absl::Status status;
        if (!reply.ok()) {
          status = SharedStateError(kWhat, reply.status());
        } else if (!stored.has_value() || !count.has_value()) {
          status = UnexpectedReply(kWhat);
        } else if (*stored == 0) {
          status = absl::ResourceExhaustedError(
              "too many sign-in links and sign-ins are pending across the "
              "replicas (oauth.max_pending); wait for some to be used or to "
              "expire, or raise the limit");
        } else if (*stored != 1) {
          status = absl::InternalError(
              "a new sign-in link collided with a pending one; make another");
        }
        if (!status.ok()) {
          ClearSecret(&ticket);
          done(status);
          return;
        }
        done(MintedTicket{std::move(ticket), expires_at});
      });
}

absl::StatusOr<std::pair<StartTicket, std::string>>
RedisPendingFlows::ReadTicket(const std::string& key, absl::Time now) {
  constexpr absl::string_view kWhat = "this sign-in link cannot be checked now";
  absl::StatusOr<RedisReply> reply = redis_.CommandSync({"GET", key});
  if (!reply.ok()) return SharedStateError(kWhat, reply.status());
  if (reply->is_nil()) {
    return absl::NotFoundError("the sign-in link is unknown or already used");
  }
  if (reply->type != RedisReply::Type::kString) return UnexpectedReply(kWhat);
  TB_ASSIGN_OR_RETURN(nlohmann::json json,
                      OpenValue(*keys_, key, reply->str, {"app", "minted_by"},
                                "a sign-in link"));
  StartTicket ticket{*StringField(json, "app"), *StringField(json, "minted_by"),
                     ExpiresAt(json)};
  if (ticket.expires_at <= now) {
    Forget(key);
    return absl::DeadlineExceededError("the sign-in link has expired");
  }
  return std::make_pair(std::move(ticket), std::move(reply->str));
}

void RedisPendingFlows::Forget(const std::string& key) {
  absl::StatusOr<RedisReply> reply =
      redis_.EvalSync(SignInScripts().take, {PendingKey(), key}, {});
  if (!reply.ok()) return;  // Redis drops it at its PX anyway.
  if (std::optional<int64_t> count = Element(*reply, 0)) {
    pending_->store(static_cast<int>(*count), std::memory_order_relaxed);
  }
}

absl::StatusOr<StartTicket> RedisPendingFlows::PeekTicket(
    absl::string_view ticket) {
  TB_ASSIGN_OR_RETURN(auto found, ReadTicket(TicketKey(ticket), clock_.Now()));
  return std::move(found.first);
}

absl::StatusOr<StartedSignIn> RedisPendingFlows::BeginSignIn(
    absl::string_view ticket, SignInSetup setup) {
  const absl::Time now = clock_.Now();
  const std::string ticket_key = TicketKey(ticket);
  TB_ASSIGN_OR_RETURN(auto found, ReadTicket(ticket_key, now));

  StartedSignIn started;
  TB_ASSIGN_OR_RETURN(started.state, RandomUrlToken());
  TB_ASSIGN_OR_RETURN(started.cookie, RandomUrlToken());
  TB_ASSIGN_OR_RETURN(started.code_verifier, RandomUrlToken());
  started.expires_at = now + options_.state_ttl;

  const std::string state_key = StateKey(started.state);
  nlohmann::json value = {
      {"v", kValueVersion},
      {"app", std::move(found.first.app)},
      {"minted_by", std::move(found.first.minted_by)},
      {"redirect_uri", std::move(setup.redirect_uri)},
      {"cookie_name", std::move(setup.cookie_name)},
      {"code_verifier", started.code_verifier},
      {"cookie_sha256", Sha256Hex(started.cookie)},
      {"expires_at", absl::ToUnixMillis(started.expires_at)}};
  std::string plain = value.dump();
  ClearSecret(&value["code_verifier"].get_ref<std::string&>());
  absl::StatusOr<std::string> sealed = keys_->Seal(plain, state_key);
  ClearSecret(&plain);
  TB_RETURN_IF_ERROR(sealed.status());

  absl::StatusOr<RedisReply> reply = redis_.EvalSync(
      SignInScripts().begin, {PendingKey(), ticket_key, state_key},
      {std::move(found.second), *std::move(sealed),
       Milliseconds(options_.state_ttl),
       Milliseconds(std::max(options_.start_link_ttl, options_.state_ttl))});
  constexpr absl::string_view kWhat = "this sign-in cannot begin now";
  if (!reply.ok()) return SharedStateError(kWhat, reply.status());
  std::optional<int64_t> begun = Element(*reply, 0);
  std::optional<int64_t> count = Element(*reply, 1);
  if (!begun.has_value() || !count.has_value()) return UnexpectedReply(kWhat);
  pending_->store(static_cast<int>(*count), std::memory_order_relaxed);
  if (*begun != 1) {
    // Redeemed (or expired) since it was read: by another page, maybe on
    // another replica.
    return absl::NotFoundError("the sign-in link is unknown or already used");
  }
  return started;
}

SignInLookup RedisPendingFlows::TakeSignIn(
    absl::string_view state,
    const std::vector<std::pair<std::string, std::string>>& cookies) {
  const absl::Time now = clock_.Now();
  const std::string key = StateKey(state);
  absl::StatusOr<RedisReply> reply =
      redis_.EvalSync(SignInScripts().take, {PendingKey(), key}, {});
  std::optional<int64_t> count;
  if (reply.ok()) count = Element(*reply, 0);
  if (!count.has_value()) {
    absl::Status error =
        reply.ok() ? UnexpectedReply("a sign-in cannot be completed now")
                   : SharedStateError("a sign-in cannot be completed now",
                                      reply.status());
    LogWarning("oauth: pending sign-ins unavailable",
               {{"error", std::string(error.message())}});
    return SignInLookup{SignInLookup::Outcome::kUnavailable, std::nullopt};
  }
  pending_->store(static_cast<int>(*count), std::memory_order_relaxed);
  if (reply->elements.size() < 2 ||
      reply->elements[1].type != RedisReply::Type::kString) {
    return SignInLookup{};  // kUnknown
  }
  absl::StatusOr<nlohmann::json> json =
      OpenValue(*keys_, key, reply->elements[1].str,
                {"app", "minted_by", "redirect_uri", "cookie_name",
                 "code_verifier", "cookie_sha256"},
                "a pending sign-in");
  if (!json.ok()) {
    LogError("oauth: a pending sign-in could not be read",
             {{"error", std::string(json.status().message())}});
    return SignInLookup{};  // kUnknown: it is gone all the same.
  }
  PendingSignIn sign_in;
  sign_in.app = *StringField(*json, "app");
  sign_in.minted_by = *StringField(*json, "minted_by");
  sign_in.setup.redirect_uri = *StringField(*json, "redirect_uri");
  sign_in.setup.cookie_name = *StringField(*json, "cookie_name");
  std::string& verifier = (*json)["code_verifier"].get_ref<std::string&>();
  sign_in.code_verifier = verifier;
  ClearSecret(&verifier);
  sign_in.expires_at = ExpiresAt(*json);
  return CheckTakenSignIn(std::move(sign_in),
                          *StringField(*json, "cookie_sha256"), now, cookies);
}

}  // namespace tokenbroker
