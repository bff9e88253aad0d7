#ifndef TOKENBROKER_SERVICE_COMMON_TIMER_QUEUE_H_
#define TOKENBROKER_SERVICE_COMMON_TIMER_QUEUE_H_

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tokenbroker {

// Runs callbacks at given times on one thread (earliest first), for retry
// delays. Thread-safe. Callbacks run without the queue's lock and must not
// block; the destructor drops the callbacks that have not run.
class TimerQueue {
 public:
  using TimerId = uint64_t;

  TimerQueue();
  ~TimerQueue();

  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `fn` once `delay` has passed (real time).
  TimerId Schedule(absl::Duration delay, absl::AnyInvocable<void()> fn);

  // Prevents the timer from running. Returns false if it already ran (or is
  // running) or was never scheduled.
  bool Cancel(TimerId id);

 private:
  void Loop();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  // Keyed by (due time, id) so that equal times keep their order.
  std::map<std::pair<absl::Time, TimerId>, absl::AnyInvocable<void()>> timers_
      ABSL_GUARDED_BY(mu_);
  std::map<TimerId, absl::Time> due_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_TIMER_QUEUE_H_
