#ifndef TOKENBROKER_SERVICE_SHARED_SHARED_CHANNEL_H_
#define TOKENBROKER_SERVICE_SHARED_SHARED_CHANNEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "service/redis/redis_client.h"

namespace tokenbroker {

namespace internal {
struct ChannelRegistry;
}  // namespace internal

// The broker's one pub/sub subscription (P"events"), shared by its
// listeners (SharedTokenSource, SharedEvents): a RedisClient holds at most
// one subscription.
//
// Listeners run on the Redis client's loop thread and must not block. A
// listener removed (or a channel destroyed) while a message is being
// dispatched may still get that message: listeners guard themselves (the
// shared classes hold only a weak reference to their state). Thread-safe.
class SharedChannel {
 public:
  using MessageListener = std::function<void(const std::string& payload)>;
  // true each time the subscription is (re)established, false when it drops.
  using StateListener = std::function<void(bool subscribed)>;
  using ListenerId = uint64_t;

  // Subscribes `redis` to `channel`. `redis` must outlive this object (its
  // callbacks hold only the listener registry).
  SharedChannel(RedisClient& redis, std::string channel);
  ~SharedChannel();

  SharedChannel(const SharedChannel&) = delete;
  SharedChannel& operator=(const SharedChannel&) = delete;

  // Either may be null.
  ListenerId AddListener(MessageListener on_message, StateListener on_state);
  void RemoveListener(ListenerId id);

  // Whether the subscription is up now.
  bool subscribed() const;
  const std::string& channel() const { return channel_; }

 private:
  const std::string channel_;
  std::shared_ptr<internal::ChannelRegistry> registry_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_SHARED_SHARED_CHANNEL_H_
