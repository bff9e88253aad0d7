#include "service/cache/refresher.h"

#include <algorithm>

#include "service/common/thread_name.h"

namespace tokenbroker {

Refresher::Refresher(const Clock& clock) : clock_(clock) {}

Refresher::~Refresher() { Stop(); }

void Refresher::Start(TokenCache& cache) {
  thread_ = std::thread([this, &cache] {
    SetCurrentThreadName("tb-refresh");
    Loop(cache);
  });
}

void Refresher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Refresher::Kick() {
  absl::MutexLock lock(&mu_);
  kicked_ = true;
}

bool Refresher::Woken() const { return stopping_ || kicked_; }

void Refresher::Loop(TokenCache& cache) {
  while (true) {
    absl::Duration wait = cache.NextDue() - clock_.Now();
    // Re-check at least once a minute in case the clock jumps.
    wait = std::clamp(wait, absl::ZeroDuration(), absl::Minutes(1));
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &Refresher::Woken), wait);
      if (stopping_) return;
      kicked_ = false;
    }
    cache.RunDue();
  }
}

}  // namespace tokenbroker
