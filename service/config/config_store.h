#ifndef TOKENBROKER_SERVICE_CONFIG_CONFIG_STORE_H_
#define TOKENBROKER_SERVICE_CONFIG_CONFIG_STORE_H_

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/config/config.h"

namespace tokenbroker {

// Holds the configuration in force. Readers take a snapshot that stays valid
// (and unchanged) for as long as they hold it; a reload swaps the whole
// config atomically. Thread-safe.
class ConfigStore {
 public:
  explicit ConfigStore(std::shared_ptr<const Config> config)
      : config_(std::move(config)) {}

  std::shared_ptr<const Config> Get() const {
    absl::ReaderMutexLock lock(&mu_);
    return config_;
  }

  void Set(std::shared_ptr<const Config> config) {
    absl::MutexLock lock(&mu_);
    config_ = std::move(config);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Config> config_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CONFIG_CONFIG_STORE_H_
