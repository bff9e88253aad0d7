#include "service/common/timer_queue.h"

#include <vector>

#include "absl/time/clock.h"

namespace tokenbroker {

TimerQueue::TimerQueue() : thread_([this] { Loop(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

TimerQueue::TimerId TimerQueue::Schedule(absl::Duration delay,
                                         absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  absl::Time when = absl::Now() + delay;
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  due_.emplace(id, when);
  changed_ = true;  // The loop may be waiting for a later timer.
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = due_.find(id);
  if (it == due_.end()) return false;
  timers_.erase({it->second, id});
  due_.erase(it);
  return true;
}

bool TimerQueue::HasWork() const {
  return stopping_ || changed_ ||
         (!timers_.empty() && timers_.begin()->first.first <= absl::Now());
}

void TimerQueue::Loop() {
  while (true) {
    std::vector<absl::AnyInvocable<void()>> due;
    {
      absl::MutexLock lock(&mu_);
      // Wake at the earliest timer, or when a timer is added.
      absl::Time deadline = timers_.empty() ? absl::Now() + absl::Seconds(1)
                                            : timers_.begin()->first.first;
      mu_.AwaitWithDeadline(absl::Condition(this, &TimerQueue::HasWork),
                            deadline);
      if (stopping_) return;
      changed_ = false;
      absl::Time now = absl::Now();
      while (!timers_.empty() && timers_.begin()->first.first <= now) {
        auto it = timers_.begin();
        due_.erase(it->first.second);
        due.push_back(std::move(it->second));
        timers_.erase(it);
      }
    }
    for (auto& fn : due) fn();
  }
}

}  // namespace tokenbroker
