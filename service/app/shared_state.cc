#include "service/app/shared_state.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/common/log.h"
#include "service/common/read_file.h"
#include "service/common/status_macros.h"
#include "service/shared/lifetime_gate.h"

namespace tokenbroker {
namespace {

constexpr absl::Duration kHealthInterval = absl::Seconds(1);

absl::StatusOr<RedisOptions> RedisOptionsFrom(const SharedStateConfig& config) {
  RedisOptions options;
  if (!config.address.empty()) {
    TB_ASSIGN_OR_RETURN(options.address, ParseRedisAddress(config.address));
  }
  for (const std::string& sentinel : config.sentinels) {
    TB_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisAddress(sentinel));
    options.sentinels.push_back(std::move(address));
  }
  options.sentinel_master = config.sentinel_master;
  options.username = config.username;
  if (!config.password_file.empty()) {
    absl::StatusOr<std::string> password = ReadFile(config.password_file);
    if (!password.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shared_state.redis.password_file: ", password.status().message()));
    }
    // Secret files often end with a newline the password does not have.
    absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(*password);
    options.password = std::string(trimmed);
    OPENSSL_cleanse(password->data(), password->size());
    if (options.password.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("shared_state.redis.password_file ",
                       config.password_file, " is empty"));
    }
  }
  options.connect_timeout = config.connect_timeout;
  options.command_timeout = config.command_timeout;
  return options;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const KeyRing>> LoadKeyRing(
    const std::vector<StoreKeyConfig>& keys, absl::string_view section) {
  std::vector<SealKey> read_keys;
  for (const StoreKeyConfig& key : keys) {
    absl::StatusOr<SealKey> read = ReadSealKeyFile(key.id, key.file);
    if (!read.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          section, ": key ", key.id, ": ", read.status().message()));
    }
    read_keys.push_back(*std::move(read));
  }
  absl::StatusOr<std::shared_ptr<const KeyRing>> ring =
      KeyRing::Create(std::move(read_keys));
  if (!ring.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(section, ": ", ring.status().message()));
  }
  return ring;
}

struct GrantSyncingSource::Core {
  explicit Core(TokenSource& upstream) : upstream(upstream) {}
  TokenSource& upstream;
  internal::LifetimeGate gate;
};

GrantSyncingSource::GrantSyncingSource(TokenSource& upstream,
                                       UserGrants& grants)
    : grants_(grants), core_(std::make_shared<Core>(upstream)) {}

GrantSyncingSource::~GrantSyncingSource() { Stop(); }

void GrantSyncingSource::Fetch(const TokenRequest& request,
                               TokenCallback done) {
  if (request.user.empty()) {
    core_->upstream.Fetch(request, std::move(done));
    return;
  }
  grants_.Refresh(
      request.app, request.user,
      [weak = std::weak_ptr<Core>(core_), request,
       done = std::move(done)](absl::Status read) mutable {
        if (!read.ok()) {
          LogWarning(
              "could not re-read a user grant before its refresh; using the "
              "one held here",
              {{"app", request.app}, {"error", std::string(read.message())}});
        }
        bool fetched = false;
        internal::WithLiveCore(weak, [&](Core& core) {
          core.upstream.Fetch(request, std::move(done));
          fetched = true;
        });
        if (!fetched) {
          done(absl::CancelledError(
              "the broker is shutting down; no token was fetched"));
        }
      });
}

void GrantSyncingSource::Stop() { core_->gate.Close(); }

absl::StatusOr<std::unique_ptr<SharedState>> SharedState::Open(
    const SharedStateConfig& config) {
  std::unique_ptr<SharedState> state(new SharedState());
  state->key_prefix_ = config.key_prefix;
  state->sync_interval_ = config.sync_interval;
  TB_ASSIGN_OR_RETURN(state->keys_,
                      LoadKeyRing(config.keys, "shared_state.redis"));
  TB_ASSIGN_OR_RETURN(RedisOptions options, RedisOptionsFrom(config));
  TB_ASSIGN_OR_RETURN(state->redis_, StartRedisClient(std::move(options)));
  OPENSSL_cleanse(options.password.data(), options.password.size());
  state->channel_ = std::make_unique<SharedChannel>(
      *state->redis_, absl::StrCat(config.key_prefix, "events"));
  state->timers_ = std::make_unique<TimerQueue>();
  state->blocking_ = std::make_unique<SerialExecutor>();
  LogInfo(
      "shared state on Redis",
      {{"redis", config.address.empty()
                     ? absl::StrCat("sentinel master ", config.sentinel_master)
                     : config.address},
       {"key_prefix", config.key_prefix},
       {"key", state->keys_->current_key_id()}});
  return state;
}

SharedState::~SharedState() {
  StopSharing();
  Stop();
}

TokenSource& SharedState::ShareFetches(TokenSource& upstream,
                                       const Clock& clock,
                                       SharedTokenPolicy policy) {
  source_ = std::make_unique<SharedTokenSource>(
      upstream, *redis_, *channel_, keys_, key_prefix_, clock, policy);
  return *source_;
}

void SharedState::SetPolicy(const SharedTokenPolicy& policy) {
  if (source_ != nullptr) source_->SetPolicy(policy);
}

void SharedState::StartEvents(SharedEventHandlers handlers,
                              std::function<void()> on_subscribed) {
  SharedEventsOptions options;
  options.sync_interval = sync_interval_;
  events_ = std::make_unique<SharedEvents>(*redis_, *channel_, key_prefix_,
                                           std::move(handlers), options);
  if (on_subscribed) {
    subscribed_listener_ = channel_->AddListener(
        nullptr, [on_subscribed = std::move(on_subscribed)](bool subscribed) {
          if (subscribed) on_subscribed();
        });
  }
}

void SharedState::WatchHealth(std::function<void(bool up)> on_change) {
  on_health_ = std::move(on_change);
  timers_->Schedule(absl::ZeroDuration(), [this] { CheckHealth(); });
}

void SharedState::CheckHealth() {
  if (stopped_.load()) return;
  const bool now_up = up();
  const int before = last_up_.exchange(now_up ? 1 : 0);
  if (before != (now_up ? 1 : 0)) {
    if (now_up) {
      LogInfo("shared state (Redis) is usable: fetches are shared again");
    } else if (before != -1) {
      LogWarning(
          "shared state (Redis) degraded: this replica serves the tokens it "
          "holds and fetches on its own until Redis answers again",
          {{"error", redis_->stats().last_error}});
    }
    if (on_health_) on_health_(now_up);
  }
  timers_->Schedule(kHealthInterval, [this] { CheckHealth(); });
}

void SharedState::RunBlocking(absl::AnyInvocable<void()> task) {
  blocking_->Post(std::move(task));
}

bool SharedState::up() const {
  if (!redis_->stats().connected) return false;
  return source_ == nullptr || !source_->stats().degraded;
}

SharedStateStats SharedState::stats() const {
  SharedStateStats stats;
  RedisClientStats client = redis_->stats();
  stats.up = up();
  stats.subscribed = client.subscribed;
  stats.reconnects = client.reconnects;
  stats.redis_errors = client.command_errors;
  if (source_ != nullptr) {
    SharedTokenStats fetches = source_->stats();
    stats.fetches = {{"adopted", fetches.adopted},
                     {"leader", fetches.leases_won},
                     {"waited", fetches.waited},
                     {"takeover", fetches.takeovers},
                     {"degraded", fetches.degraded_fetches},
                     {"fenced", fetches.fenced_out}};
  }
  if (events_ != nullptr) {
    SharedEventsStats events = events_->stats();
    stats.events_received = events.revokes + events.user_revokes +
                            events.reloads + events.grant_changes;
    stats.catch_ups = events.caught_up;
  }
  return stats;
}

void SharedState::StopSharing() {
  if (source_ != nullptr) source_->Shutdown();
  if (subscribed_listener_ != 0) {
    channel_->RemoveListener(subscribed_listener_);
    subscribed_listener_ = 0;
  }
  if (events_ != nullptr) events_->Shutdown();
}

void SharedState::Stop() {
  if (stopped_.exchange(true)) return;
  // Queued blocking work (grant reads) finishes while the client is alive.
  blocking_.reset();
  timers_.reset();
  redis_->Stop();
}

}  // namespace tokenbroker
