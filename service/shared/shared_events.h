#ifndef TOKENBROKER_SERVICE_SHARED_SHARED_EVENTS_H_
#define TOKENBROKER_SERVICE_SHARED_SHARED_EVENTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/timer_queue.h"
#include "service/redis/redis_client.h"
#include "service/shared/shared_channel.h"

namespace tokenbroker {

namespace internal {
struct SharedEventsCore;
}  // namespace internal

// What a replica does when another one revoked, reloaded or rotated. Each
// runs on the Redis client's loop thread and must not block (no Redis
// *Sync call, no upstream request, no waiting on a lock held across I/O):
// drop cache entries, post work to another thread. Any may be null. They
// may run more than once for one event (a message and a catch-up, or a
// replica's own publish racing its answer): make them idempotent.
struct SharedEventHandlers {
  // An app's tokens were revoked: drop its cached tokens (TokenCache::DropApp).
  std::function<void(const std::string& app)> on_revoke;
  // One user's tokens of a user app: TokenCache::DropUser.
  std::function<void(const std::string& app, const std::string& user_id)>
      on_revoke_user;
  // Another replica reloaded its configuration: reload ours.
  std::function<void()> on_reload;
  // A user grant was stored at `version` (refresh token rotated, replaced,
  // removed). Messages only: a replica that missed one reads the grant from
  // Redis when it next uses it.
  std::function<void(const std::string& app, const std::string& user_id,
                     int64_t version)>
      on_grant_changed;
};

struct SharedEventsOptions {
  // How often the generations are read back from Redis (catch-up), besides
  // every (re)subscription; also how often failed publishes are retried.
  absl::Duration sync_interval = absl::Seconds(1);
};

struct SharedEventsStats {
  bool synced = false;            // The last catch-up read worked.
  int64_t revokes = 0;            // on_revoke calls.
  int64_t user_revokes = 0;       // on_revoke_user calls.
  int64_t reloads = 0;            // on_reload calls.
  int64_t grant_changes = 0;      // on_grant_changed calls.
  int64_t syncs = 0;              // Catch-up reads that worked.
  int64_t caught_up = 0;          // Handler calls from catch-up reads (the
                                  // message was missed).
  int64_t sync_errors = 0;        // Catch-up reads that failed.
  int64_t publish_errors = 0;     // Publishes that failed (then retried).
  int64_t pending_publishes = 0;  // Waiting for a retry now.
};

// Revocations and reloads across replicas (the issue-13 plan):
// - Revoke: HINCRBY P"revgen" <app> (or <app "\x1f" user>) and PUBLISH
//   "revoke <app> <gen>" ("revoke_user <app> <gen> <user>") in one script.
// - Reload: INCR P"config_generation" and PUBLISH "reload <gen>".
// - Every replica runs the handler for a generation above the last it saw,
//   from the message or, if it missed it (disconnected), from the catch-up
//   read of the revgen hash and config_generation done on every
//   (re)subscription and every sync_interval. The first catch-up only
//   records where the generations stand (a replica that just started has
//   nothing to drop and its configuration fresh); it is sent at
//   construction, even before the command connection is up, so that it is
//   taken before Redis can lose its data.
// - The revgen hash also holds an epoch, set by the first script to run on
//   an empty Redis: when it changes, Redis lost its data (a restart without
//   persistence) and every generation there is news (handlers run for all).
// - A replica's own publish records the generation it made, so its own
//   message does not run its handler (unless the message beats the answer;
//   hence idempotent handlers). The caller does the local part itself
//   (drop its own cache entries) whether or not Redis answers.
// - A revoke or reload that cannot be published (Redis down) is retried
//   every sync_interval until it is, so a replica's revocation reaches the
//   others once Redis is back.
//
// Thread-safe. Handlers run on the Redis loop thread (see above). Shutdown()
// (or the destructor) stops the timer; after it returns no handler or
// publish callback runs. Never call it from a handler. `redis` and `channel`
// must outlive this object.
class SharedEvents {
 public:
  // The generation made, or the Redis error (the publish is then retried in
  // the background).
  using PublishCallback = absl::AnyInvocable<void(absl::StatusOr<int64_t>)>;

  SharedEvents(RedisClient& redis, SharedChannel& channel,
               std::string key_prefix, SharedEventHandlers handlers,
               SharedEventsOptions options = {});
  ~SharedEvents();

  SharedEvents(const SharedEvents&) = delete;
  SharedEvents& operator=(const SharedEvents&) = delete;

  // `done` (optional) runs once with the new generation or the error, on the
  // loop thread (or inline with CANCELLED after Shutdown).
  void PublishRevoke(const std::string& app, PublishCallback done = nullptr);
  void PublishRevokeUser(const std::string& app, const std::string& user_id,
                         PublishCallback done = nullptr);
  void PublishReload(PublishCallback done = nullptr);
  // A notification only (the version lives with the grant): not retried.
  // `done` gets `version` back.
  void PublishGrantChanged(const std::string& app, const std::string& user_id,
                           int64_t version, PublishCallback done = nullptr);

  // Starts a catch-up read now (it also runs on its own).
  void SyncNow();

  void Shutdown();

  SharedEventsStats stats() const;

 private:
  SharedChannel& channel_;
  SharedChannel::ListenerId listener_id_ = 0;
  // Declared before core_: destroyed after Shutdown() closed the gate.
  TimerQueue timers_;
  std::shared_ptr<internal::SharedEventsCore> core_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_SHARED_SHARED_EVENTS_H_
