#ifndef TOKENBROKER_SERVICE_APP_SHARED_STATE_H_
#define TOKENBROKER_SERVICE_APP_SHARED_STATE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/common/clock.h"
#include "service/common/serial_executor.h"
#include "service/common/timer_queue.h"
#include "service/config/config.h"
#include "service/metrics/broker_metrics.h"
#include "service/redis/redis_client.h"
#include "service/shared/shared_channel.h"
#include "service/shared/shared_events.h"
#include "service/shared/shared_token_source.h"
#include "service/store/sealed_box.h"
#include "service/upstream/token_source.h"
#include "service/users/user_grants.h"

namespace tokenbroker {

// Reads the AES-256 keys of a `keys: [{id, file}]` list into a ring (the
// first seals). FAILED_PRECONDITION naming `section` and the key id.
absl::StatusOr<std::shared_ptr<const KeyRing>> LoadKeyRing(
    const std::vector<StoreKeyConfig>& keys, absl::string_view section);

// A TokenSource in front of the upstream one for a shared grant store: the
// replica about to refresh a user's grant (it holds the key's lease) first
// re-reads the grant (UserGrants::Refresh, on the grants' writer thread), so
// that it uses the refresh token another replica may have rotated. Requests
// of apps acting on their own behalf pass straight through. When the grant
// cannot be read (Redis down) the refresh uses the grant held in memory.
//
// Thread-safe. Stop() (before `upstream` goes) answers refreshes still
// waiting for their grant with CANCELLED; none reaches `upstream` after it.
class GrantSyncingSource final : public TokenSource {
 public:
  GrantSyncingSource(TokenSource& upstream, UserGrants& grants);
  ~GrantSyncingSource() override;

  void Fetch(const TokenRequest& request, TokenCallback done) override;
  void Stop();

 private:
  struct Core;
  UserGrants& grants_;
  std::shared_ptr<Core> core_;
};

// The shared state on Redis of one broker process (shared_state.redis), as
// the application wires it: the Redis client, its one pub/sub channel, the
// SharedTokenSource in front of the upstream token source, SharedEvents
// (revocations, reloads and grant changes of other replicas), a thread for
// the work that may block on Redis (the grant store, reloads), and a watch
// of the degraded state for health.
//
// Start-up never waits for Redis: the client connects in the background and
// the broker serves on its own until it does.
//
// Thread-safe. Stop in two steps: StopSharing() before the HTTP clients go
// (pending shared fetches are answered CANCELLED while the cache is alive,
// no new upstream fetch starts, no event handler runs), then Stop() after
// the user grants are drained (their store writes need the client).
class SharedState {
 public:
  // Errors: FAILED_PRECONDITION when a key or the password file cannot be
  // read; INVALID_ARGUMENT for an address the client refuses.
  static absl::StatusOr<std::unique_ptr<SharedState>> Open(
      const SharedStateConfig& config);
  ~SharedState();

  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  RedisClient& redis() { return *redis_; }
  const std::shared_ptr<const KeyRing>& keys() const { return keys_; }
  const std::string& key_prefix() const { return key_prefix_; }

  // The token source for the cache: `upstream` behind the shared leases and
  // records. Once; `upstream` and `clock` must outlive this object.
  TokenSource& ShareFetches(TokenSource& upstream, const Clock& clock,
                            SharedTokenPolicy policy);
  void SetPolicy(const SharedTokenPolicy& policy);

  // Starts following other replicas (once). `on_subscribed` runs on the
  // Redis loop thread each time the subscription is (re)established (a
  // listener catches up then); it must not block.
  void StartEvents(SharedEventHandlers handlers,
                   std::function<void()> on_subscribed);
  // After StartEvents().
  SharedEvents& events() { return *events_; }

  // Calls `on_change(up)` on a timer thread whenever Redis becomes usable
  // or degraded (checked every second), and once at the first check.
  void WatchHealth(std::function<void(bool up)> on_change);

  // Runs `task` on a thread of its own that may block on Redis, in order.
  void RunBlocking(absl::AnyInvocable<void()> task);
  // Blocks until the tasks posted so far have run (shutdown: before what
  // they reach goes).
  void DrainBlocking() { blocking_->Drain(); }

  // Whether commands to Redis work now (not degraded).
  bool up() const;
  SharedStateStats stats() const;

  void StopSharing();
  void Stop();

 private:
  SharedState() = default;
  void CheckHealth();

  std::string key_prefix_;
  std::shared_ptr<const KeyRing> keys_;
  absl::Duration sync_interval_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<SharedChannel> channel_;
  std::unique_ptr<SharedTokenSource> source_;
  std::unique_ptr<SharedEvents> events_;
  std::function<void(bool)> on_health_;
  std::atomic<int> last_up_{-1};  // -1: not checked yet.
  std::atomic<bool> stopped_{false};
  SharedChannel::ListenerId subscribed_listener_ = 0;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<SerialExecutor> blocking_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_APP_SHARED_STATE_H_
