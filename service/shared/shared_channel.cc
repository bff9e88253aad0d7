#include "service/shared/shared_channel.h"

#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tokenbroker {
namespace internal {

struct ChannelListener {
  SharedChannel::MessageListener on_message;
  SharedChannel::StateListener on_state;
};

// Outlives the channel as long as the client's callbacks hold it.
struct ChannelRegistry {
  mutable absl::Mutex mu;
  std::map<uint64_t, std::shared_ptr<const ChannelListener>> listeners
      ABSL_GUARDED_BY(mu);
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  bool subscribed ABSL_GUARDED_BY(mu) = false;

  // Copies the listeners so that they run without the lock (a listener may
  // add or remove listeners).
  std::vector<std::shared_ptr<const ChannelListener>> Snapshot() const {
    absl::MutexLock lock(&mu);
    std::vector<std::shared_ptr<const ChannelListener>> out;
    out.reserve(listeners.size());
    for (const auto& [id, listener] : listeners) out.push_back(listener);
    return out;
  }
};

}  // namespace internal

SharedChannel::SharedChannel(RedisClient& redis, std::string channel)
    : channel_(std::move(channel)),
      registry_(std::make_shared<internal::ChannelRegistry>()) {
  std::shared_ptr<internal::ChannelRegistry> registry = registry_;
  redis.Subscribe(
      {channel_},
      [registry](const std::string& channel, const std::string& payload) {
        for (const auto& listener : registry->Snapshot()) {
          if (listener->on_message) listener->on_message(payload);
        }
      },
      [registry](bool subscribed) {
        {
          absl::MutexLock lock(&registry->mu);
          registry->subscribed = subscribed;
        }
        for (const auto& listener : registry->Snapshot()) {
          if (listener->on_state) listener->on_state(subscribed);
        }
      });
}

SharedChannel::~SharedChannel() {
  absl::MutexLock lock(&registry_->mu);
  registry_->listeners.clear();
}

SharedChannel::ListenerId SharedChannel::AddListener(MessageListener on_message,
                                                     StateListener on_state) {
  auto listener = std::make_shared<internal::ChannelListener>();
  listener->on_message = std::move(on_message);
  listener->on_state = std::move(on_state);
  absl::MutexLock lock(&registry_->mu);
  ListenerId id = registry_->next_id++;
  registry_->listeners.emplace(id, std::move(listener));
  return id;
}

void SharedChannel::RemoveListener(ListenerId id) {
  absl::MutexLock lock(&registry_->mu);
  registry_->listeners.erase(id);
}

bool SharedChannel::subscribed() const {
  absl::MutexLock lock(&registry_->mu);
  return registry_->subscribed;
}

}  // namespace tokenbroker
