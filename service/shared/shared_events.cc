#include "service/shared/shared_events.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "service/common/log.h"
#include "service/shared/lifetime_gate.h"
#include "service/shared/shared_keys.h"
#include "service/shared/shared_scripts.h"

namespace tokenbroker {
namespace internal {
namespace {

// The generation a publish made, or the error.
absl::StatusOr<int64_t> GenerationOf(const absl::StatusOr<RedisReply>& reply) {
  if (!reply.ok()) return reply.status();
  if (reply->type != RedisReply::Type::kInteger) {
    return absl::InternalError("unexpected answer to a generation script");
  }
  return reply->integer;
}

// A fresh random epoch for every script that may create the revgen hash:
// the value must differ each time Redis starts empty, whoever sets it.
std::string NewEpoch() {
  unsigned char bytes[8] = {};
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Uniqueness is all that matters: the time will do.
    uint64_t now = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
    std::memcpy(bytes, &now, sizeof(now));
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

bool ParseGeneration(const RedisReply& reply, int64_t* out) {
  return reply.type == RedisReply::Type::kString &&
         absl::SimpleAtoi(reply.str, out) && *out >= 0;
}

}  // namespace

// A revocation or reload to publish (again, when Redis failed).
struct Bump {
  enum class Kind { kRevoke, kRevokeUser, kReload };
  Kind kind = Kind::kReload;
  std::string app;
  std::string user;

  // The revgen field, or "" for the config generation.
  std::string Field() const {
    switch (kind) {
      case Kind::kRevoke:
        return SharedKeys::RevgenField(app);
      case Kind::kRevokeUser:
        return SharedKeys::RevgenUserField(app, user);
      case Kind::kReload:
        return "";
    }
    return "";
  }
};

// A catch-up read unanswered for this many sync intervals is taken as lost
// (the client answers every command within its command_timeout, far less):
// another starts, and the late answer, if any, is ignored.
constexpr int kSyncLostAfterTicks = 10;

// A handler call, made after the lock is released.
struct Event {
  SharedMessage::Type type;
  std::string app;
  std::string user;
  int64_t number = 0;
};

struct SharedEventsCore {
  SharedEventsCore(RedisClient& redis, std::string prefix, TimerQueue& timers,
                   SharedEventHandlers handlers, SharedEventsOptions options)
      : redis(redis),
        names(std::move(prefix)),
        timers(timers),
        handlers(std::move(handlers)),
        options(options) {}

  void Tick();
  void Sync();
  void OnSync(uint64_t id, absl::StatusOr<RedisReply> reply);
  void OnSubscription(bool subscribed);
  void OnMessage(const std::string& payload);
  // `retry`: a background retry of a failed publish (no callback, logged
  // once).
  void Publish(Bump bump, SharedEvents::PublishCallback done, bool retry);
  void PublishGrant(const std::string& app, const std::string& user,
                    int64_t version, SharedEvents::PublishCallback done);
  void RetryPending();
  void Shutdown();

  // A generation above the last seen for `field` ("": config): records it
  // and returns true (the handler should run).
  bool Observe(const std::string& field, int64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Run(const std::vector<Event>& events);
  uint64_t Hold(SharedEvents::PublishCallback done);
  void Answer(uint64_t id, absl::StatusOr<int64_t> result);

  LifetimeGate gate;
  std::weak_ptr<SharedEventsCore> self;
  RedisClient& redis;
  const SharedKeys names;
  TimerQueue& timers;
  const SharedEventHandlers handlers;
  const SharedEventsOptions options;

  mutable absl::Mutex mu;
  // revgen field -> generation last seen; "" holds the config generation.
  absl::flat_hash_map<std::string, int64_t> seen ABSL_GUARDED_BY(mu);
  // The epoch of Redis's data those belong to (shared_scripts.h).
  std::string seen_epoch ABSL_GUARDED_BY(mu);
  bool baseline ABSL_GUARDED_BY(mu) = false;
  bool synced ABSL_GUARDED_BY(mu) = false;
  bool sync_in_flight ABSL_GUARDED_BY(mu) = false;
  // The catch-up read in flight (answers of older ones are ignored), and
  // for how many ticks it has been.
  uint64_t sync_id ABSL_GUARDED_BY(mu) = 0;
  int sync_ticks ABSL_GUARDED_BY(mu) = 0;
  // Failed publishes by field, retried on the timer.
  std::map<std::string, Bump> pending ABSL_GUARDED_BY(mu);
  std::map<uint64_t, SharedEvents::PublishCallback> callbacks
      ABSL_GUARDED_BY(mu);
  uint64_t next_callback ABSL_GUARDED_BY(mu) = 1;
  SharedEventsStats counters ABSL_GUARDED_BY(mu);
};

void SharedEventsCore::Tick() {
  {
    absl::MutexLock lock(&mu);
    if (sync_in_flight && ++sync_ticks >= kSyncLostAfterTicks) {
      LogWarning(
          "shared events: a catch-up read got no answer; starting another");
      sync_in_flight = false;
    }
  }
  Sync();
  RetryPending();
  timers.Schedule(options.sync_interval, [weak = self] {
    WithLiveCore(weak, [](SharedEventsCore& core) { core.Tick(); });
  });
}

void SharedEventsCore::Sync() {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu);
    if (sync_in_flight) return;
    // Before the first read (the baseline) it is sent even while the
    // client is still connecting (the client holds it until the connection
    // is up): the baseline must be read before this replica caches anything
    // a generation in it could concern, and before Redis may lose its data
    // (only a baseline's epoch shows that).
    if (baseline && !redis.stats().connected) {
      synced = false;
      return;
    }
    sync_in_flight = true;
    sync_ticks = 0;
    id = ++sync_id;
  }
  redis.Eval(kSyncScript, {names.Revgen(), names.ConfigGeneration()},
             {NewEpoch()}, [weak = self, id](absl::StatusOr<RedisReply> reply) {
               WithLiveCore(weak, [&](SharedEventsCore& core) {
                 core.OnSync(id, std::move(reply));
               });
             });
}

void SharedEventsCore::OnSubscription(bool subscribed) {
  if (!subscribed) {
    absl::MutexLock lock(&mu);
    // Generations seen before the baseline have no epoch: after a lost
    // connection (Redis may have restarted empty and count from 1 again)
    // they could hide a new generation with the same number.
    if (!baseline) seen.clear();
    return;
  }
  // Messages published while the subscription was down are lost: read the
  // generations back.
  Sync();
  RetryPending();
}

void SharedEventsCore::OnSync(uint64_t id, absl::StatusOr<RedisReply> reply) {
  std::vector<Event> events;
  {
    absl::MutexLock lock(&mu);
    if (!sync_in_flight || id != sync_id) return;  // Taken as lost.
    sync_in_flight = false;
    if (reply.ok() && (reply->type != RedisReply::Type::kArray ||
                       reply->elements.size() != 3 ||
                       reply->elements[0].type != RedisReply::Type::kArray ||
                       reply->elements[2].type != RedisReply::Type::kString)) {
      reply = absl::InternalError("unexpected answer to the sync script");
    }
    if (!reply.ok()) {
      if (synced) {
        LogWarning("shared events: cannot read the revocation generations",
                   {{"error", std::string(reply.status().message())}});
      }
      synced = false;
      ++counters.sync_errors;
      return;
    }
    synced = true;
    ++counters.syncs;
    absl::flat_hash_map<std::string, int64_t> current;
    const std::vector<RedisReply>& fields = reply->elements[0].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      int64_t generation = 0;
      // Not the epoch ("\x1fepoch"): app names never start with \x1f.
      if (fields[i].type != RedisReply::Type::kString ||
          fields[i].str.empty() || fields[i].str[0] == '\x1f' ||
          !ParseGeneration(fields[i + 1], &generation)) {
        continue;
      }
      current[fields[i].str] = generation;
    }
    int64_t config = 0;
    if (!reply->elements[1].is_nil() &&
        ParseGeneration(reply->elements[1], &config)) {
      current[""] = config;
    }
    const std::string& epoch = reply->elements[2].str;
    if (baseline && epoch != seen_epoch) {
      // Redis lost its data (a restart without persistence): generations
      // count from 1 again, and every one there now is news.
      LogWarning(
          "shared events: Redis lost its revocation generations; treating "
          "every current one as new");
      seen.clear();
    }
    seen_epoch = epoch;
    for (const auto& [field, generation] : current) {
      if (!baseline) {
        seen[field] = generation;
        continue;
      }
      if (!Observe(field, generation)) continue;
      Event event;
      event.number = generation;
      if (field.empty()) {
        event.type = SharedMessage::Type::kReload;
      } else if (size_t sep = field.find('\x1f'); sep != std::string::npos) {
        event.type = SharedMessage::Type::kRevokeUser;
        event.app = field.substr(0, sep);
        event.user = field.substr(sep + 1);
      } else {
        event.type = SharedMessage::Type::kRevoke;
        event.app = field;
      }
      events.push_back(std::move(event));
    }
    baseline = true;
    counters.caught_up += static_cast<int64_t>(events.size());
  }
  if (!events.empty()) {
    LogInfo("shared events: caught up with missed events",
            {{"events", events.size()}});
  }
  Run(events);
}

void SharedEventsCore::OnMessage(const std::string& payload) {
  std::optional<SharedMessage> message = ParseSharedMessage(payload);
  if (!message) return;
  Event event;
  event.type = message->type;
  event.app = message->app;
  event.user = message->user;
  event.number = message->number;
  {
    absl::MutexLock lock(&mu);
    switch (message->type) {
      case SharedMessage::Type::kRevoke:
        if (!Observe(SharedKeys::RevgenField(message->app), message->number)) {
          return;
        }
        break;
      case SharedMessage::Type::kRevokeUser:
        if (!Observe(SharedKeys::RevgenUserField(message->app, message->user),
                     message->number)) {
          return;
        }
        break;
      case SharedMessage::Type::kReload:
        if (!Observe("", message->number)) return;
        break;
      case SharedMessage::Type::kGrant:
        break;
      default:
        return;  // Token fetch messages: SharedTokenSource's.
    }
  }
  Run({event});
}

bool SharedEventsCore::Observe(const std::string& field, int64_t generation) {
  // Within an epoch generations only grow; a lower one is a catch-up read
  // that was overtaken by a message.
  auto [it, inserted] = seen.try_emplace(field, 0);
  if (generation <= it->second) return false;
  it->second = generation;
  return true;
}

void SharedEventsCore::Run(const std::vector<Event>& events) {
  for (const Event& event : events) {
    {
      absl::MutexLock lock(&mu);
      switch (event.type) {
        case SharedMessage::Type::kRevoke:
          ++counters.revokes;
          break;
        case SharedMessage::Type::kRevokeUser:
          ++counters.user_revokes;
          break;
        case SharedMessage::Type::kReload:
          ++counters.reloads;
          break;
        case SharedMessage::Type::kGrant:
          ++counters.grant_changes;
          break;
        default:
          break;
      }
    }
    switch (event.type) {
      case SharedMessage::Type::kRevoke:
        if (handlers.on_revoke) handlers.on_revoke(event.app);
        break;
      case SharedMessage::Type::kRevokeUser:
        if (handlers.on_revoke_user) {
          handlers.on_revoke_user(event.app, event.user);
        }
        break;
      case SharedMessage::Type::kReload:
        if (handlers.on_reload) handlers.on_reload();
        break;
      case SharedMessage::Type::kGrant:
        if (handlers.on_grant_changed) {
          handlers.on_grant_changed(event.app, event.user, event.number);
        }
        break;
      default:
        break;
    }
  }
}

// 0 (nothing held) for a null callback.
uint64_t SharedEventsCore::Hold(SharedEvents::PublishCallback done) {
  absl::MutexLock lock(&mu);
  if (done == nullptr) return 0;
  uint64_t id = next_callback++;
  callbacks.emplace(id, std::move(done));
  return id;
}

void SharedEventsCore::Answer(uint64_t id, absl::StatusOr<int64_t> result) {
  SharedEvents::PublishCallback done;
  {
    absl::MutexLock lock(&mu);
    auto it = callbacks.find(id);
    if (it == callbacks.end()) return;
    done = std::move(it->second);
    callbacks.erase(it);
  }
  done(std::move(result));
}

void SharedEventsCore::Publish(Bump bump, SharedEvents::PublishCallback done,
                               bool retry) {
  uint64_t id = Hold(std::move(done));
  auto on_reply = [weak = self, id, bump,
                   retry](absl::StatusOr<RedisReply> reply) {
    WithLiveCore(weak, [&](SharedEventsCore& core) {
      absl::StatusOr<int64_t> generation = GenerationOf(reply);
      const std::string field = bump.Field();
      bool first_failure = false;
      {
        absl::MutexLock lock(&core.mu);
        if (generation.ok()) {
          // Our own message then finds it seen.
          int64_t& seen = core.seen[field];
          seen = std::max(seen, *generation);
          core.pending.erase(field);
        } else {
          ++core.counters.publish_errors;
          first_failure = core.pending.emplace(field, bump).second && !retry;
        }
      }
      if (first_failure) {
        LogWarning(
            bump.kind == Bump::Kind::kReload
                ? "shared events: the reload could not be published; "
                  "retrying until Redis answers"
                : "shared events: the revocation could not be published; "
                  "retrying until Redis answers",
            {{"app", bump.app},
             {"error", std::string(generation.status().message())}});
      }
      core.Answer(id, std::move(generation));
    });
  };
  if (bump.kind == Bump::Kind::kReload) {
    redis.Eval(kBumpConfigScript,
               {names.ConfigGeneration(), names.Events(), names.Revgen()},
               {NewEpoch()}, std::move(on_reply));
    return;
  }
  // The script puts the generation between the two halves.
  std::string head = bump.kind == Bump::Kind::kRevoke
                         ? absl::StrCat("revoke ", bump.app, " ")
                         : absl::StrCat("revoke_user ", bump.app, " ");
  std::string tail =
      bump.kind == Bump::Kind::kRevoke ? "" : absl::StrCat(" ", bump.user);
  redis.Eval(kBumpRevgenScript, {names.Revgen(), names.Events()},
             {bump.Field(), std::move(head), std::move(tail), NewEpoch()},
             std::move(on_reply));
}

void SharedEventsCore::PublishGrant(const std::string& app,
                                    const std::string& user, int64_t version,
                                    SharedEvents::PublishCallback done) {
  uint64_t id = Hold(std::move(done));
  SharedMessage message;
  message.type = SharedMessage::Type::kGrant;
  message.app = app;
  message.user = user;
  message.number = version;
  redis.Publish(names.Events(), FormatSharedMessage(message),
                [weak = self, id, version](absl::StatusOr<RedisReply> reply) {
                  WithLiveCore(weak, [&](SharedEventsCore& core) {
                    if (!reply.ok()) {
                      {
                        absl::MutexLock lock(&core.mu);
                        ++core.counters.publish_errors;
                      }
                      core.Answer(id, reply.status());
                    } else {
                      core.Answer(id, version);
                    }
                  });
                });
}

void SharedEventsCore::RetryPending() {
  std::vector<Bump> retry;
  {
    absl::MutexLock lock(&mu);
    if (pending.empty() || !redis.stats().connected) return;
    for (auto& [field, bump] : pending) retry.push_back(bump);
    pending.clear();  // Put back by a failure.
  }
  for (Bump& bump : retry) Publish(std::move(bump), nullptr, /*retry=*/true);
}

void SharedEventsCore::Shutdown() {
  if (!gate.Close()) return;
  std::map<uint64_t, SharedEvents::PublishCallback> waiting;
  size_t unpublished = 0;
  {
    absl::MutexLock lock(&mu);
    waiting = std::move(callbacks);
    callbacks.clear();
    unpublished = pending.size();
  }
  if (unpublished > 0) {
    LogWarning("shared events: shutting down with unpublished events",
               {{"events", unpublished}});
  }
  for (auto& [id, done] : waiting) {
    done(absl::CancelledError("the broker is shutting down"));
  }
}

}  // namespace internal

SharedEvents::SharedEvents(RedisClient& redis, SharedChannel& channel,
                           std::string key_prefix, SharedEventHandlers handlers,
                           SharedEventsOptions options)
    : channel_(channel),
      core_(std::make_shared<internal::SharedEventsCore>(
          redis, std::move(key_prefix), timers_, std::move(handlers),
          options)) {
  core_->self = core_;
  std::weak_ptr<internal::SharedEventsCore> weak = core_;
  listener_id_ = channel_.AddListener(
      [weak](const std::string& payload) {
        internal::WithLiveCore(weak, [&](internal::SharedEventsCore& core) {
          core.OnMessage(payload);
        });
      },
      [weak](bool subscribed) {
        internal::WithLiveCore(weak, [&](internal::SharedEventsCore& core) {
          core.OnSubscription(subscribed);
        });
      });
  internal::WithLiveCore(weak,
                         [](internal::SharedEventsCore& core) { core.Tick(); });
}

SharedEvents::~SharedEvents() { Shutdown(); }

namespace {

// Runs `publish(core, done)` inside the core's gate, or answers CANCELLED
// once the gate is shut.
template <typename Fn>
void PublishInGate(internal::SharedEventsCore& core,
                   SharedEvents::PublishCallback done, Fn publish) {
  if (!core.gate.Enter()) {
    if (done) done(absl::CancelledError("the broker is shutting down"));
    return;
  }
  publish(core, std::move(done));
  core.gate.Exit();
}

void PublishBump(internal::SharedEventsCore& core, internal::Bump bump,
                 SharedEvents::PublishCallback done) {
  PublishInGate(core, std::move(done),
                [&](internal::SharedEventsCore& core,
                    SharedEvents::PublishCallback done) {
                  core.Publish(std::move(bump), std::move(done),
                               /*retry=*/false);
                });
}

}  // namespace

void SharedEvents::PublishRevoke(const std::string& app, PublishCallback done) {
  PublishBump(*core_, {internal::Bump::Kind::kRevoke, app, ""},
              std::move(done));
}

void SharedEvents::PublishRevokeUser(const std::string& app,
                                     const std::string& user_id,
                                     PublishCallback done) {
  PublishBump(*core_, {internal::Bump::Kind::kRevokeUser, app, user_id},
              std::move(done));
}

void SharedEvents::PublishReload(PublishCallback done) {
  PublishBump(*core_, {internal::Bump::Kind::kReload, "", ""}, std::move(done));
}

void SharedEvents::PublishGrantChanged(const std::string& app,
                                       const std::string& user_id,
                                       int64_t version, PublishCallback done) {
  PublishInGate(*core_, std::move(done),
                [&](internal::SharedEventsCore& core, PublishCallback done) {
                  core.PublishGrant(app, user_id, version, std::move(done));
                });
}

void SharedEvents::SyncNow() {
  internal::WithLiveCore(std::weak_ptr<internal::SharedEventsCore>(core_),
                         [](internal::SharedEventsCore& core) { core.Sync(); });
}

void SharedEvents::Shutdown() {
  channel_.RemoveListener(listener_id_);
  core_->Shutdown();
}

SharedEventsStats SharedEvents::stats() const {
  absl::MutexLock lock(&core_->mu);
  SharedEventsStats s = core_->counters;
  s.synced = core_->synced;
  s.pending_publishes = static_cast<int64_t>(core_->pending.size());
  return s;
}

}  // namespace tokenbroker
