#ifndef TOKENBROKER_SERVICE_COMMON_SERIAL_EXECUTOR_H_
#define TOKENBROKER_SERVICE_COMMON_SERIAL_EXECUTOR_H_

#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace tokenbroker {

// Runs tasks one at a time, in the order they were posted, on one thread of
// its own: for work that may block (a disk write with fsync) and must not
// run on a network or gRPC thread. Thread-safe. The destructor runs every
// task posted before it, then joins the thread; a task must not destroy
// its executor.
class SerialExecutor {
 public:
  SerialExecutor();
  ~SerialExecutor();

  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  void Post(absl::AnyInvocable<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until every task posted before the call has run. Must not be
  // called from a task.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool running_task_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_SERIAL_EXECUTOR_H_
