#ifndef TOKENBROKER_SERVICE_CACHE_REFRESHER_H_
#define TOKENBROKER_SERVICE_CACHE_REFRESHER_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/cache/token_cache.h"
#include "service/common/clock.h"

namespace tokenbroker {

// Drives a TokenCache's refresh schedule on one thread: sleeps until the
// earliest due refresh (or until the schedule changes), then calls
// RunDue(). It never sleeps per key. Tests with a fake clock call
// TokenCache::RunDue() themselves instead.
//
// Thread-safe. Stop() (or the destructor) joins the thread.
class Refresher {
 public:
  Refresher(TokenCache& cache, const Clock& clock);
  ~Refresher();

  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // Installs itself as the cache's schedule listener and starts the thread.
  void Start();
  void Stop();

  // Wakes the thread to re-read the schedule.
  void Kick();

 private:
  void Loop();
  bool Woken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TokenCache& cache_;
  const Clock& clock_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_REFRESHER_H_
