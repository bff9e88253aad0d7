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
// Created before the cache, whose TokenCacheHooks::on_schedule calls
// Kick(); Start() then begins driving that cache.
//
// Thread-safe. Stop() (or the destructor) joins the thread.
class Refresher {
 public:
  explicit Refresher(const Clock& clock);
  ~Refresher();

  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // Starts the thread; `cache` must outlive Stop(). Once only.
  void Start(TokenCache& cache);
  void Stop();

  // Wakes the thread to re-read the schedule (a no-op before Start()).
  void Kick();

 private:
  void Loop(TokenCache& cache);
  bool Woken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_REFRESHER_H_
