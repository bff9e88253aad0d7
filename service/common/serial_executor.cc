#include "service/common/serial_executor.h"

#include <utility>

#include "service/common/thread_name.h"

namespace tokenbroker {

SerialExecutor::SerialExecutor() : thread_([this] { Loop(); }) {}

SerialExecutor::~SerialExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void SerialExecutor::Post(absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void SerialExecutor::Drain() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &SerialExecutor::Idle));
}

bool SerialExecutor::Idle() const { return tasks_.empty() && !running_task_; }

bool SerialExecutor::HasWorkOrStopping() const {
  return !tasks_.empty() || stopping_;
}

void SerialExecutor::Loop() {
  SetCurrentThreadName("tb-serial");
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &SerialExecutor::HasWorkOrStopping));
    if (tasks_.empty()) return;  // Stopping, and every task has run.
    absl::AnyInvocable<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    running_task_ = true;
    mu_.Unlock();
    task();
    task = nullptr;  // Destroy what it captured outside the lock, too.
    mu_.Lock();
    running_task_ = false;
  }
}

}  // namespace tokenbroker
