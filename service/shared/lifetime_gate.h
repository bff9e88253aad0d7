#ifndef TOKENBROKER_SERVICE_SHARED_LIFETIME_GATE_H_
#define TOKENBROKER_SERVICE_SHARED_LIFETIME_GATE_H_

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tokenbroker::internal {

// Guards an object's dependencies (a RedisClient, a TokenSource...) from
// callbacks that may outlive the object: a callback enters the gate before
// it touches them and leaves when done; Close() (from the object's
// destructor or Shutdown) shuts the gate and waits for the callbacks inside
// to leave, after which none enters again. Callbacks inside the gate must
// not block, and Close() must not be called from inside it (it would wait
// for itself). Entering is counted, so a callback may re-enter (a command
// answered inline). Thread-safe.
class LifetimeGate {
 public:
  bool Enter() {
    absl::MutexLock lock(&mu_);
    if (!open_) return false;
    ++inside_;
    return true;
  }
  void Exit() {
    absl::MutexLock lock(&mu_);
    --inside_;
  }
  // Returns true the first time (the caller then cleans up), false after.
  bool Close() {
    absl::MutexLock lock(&mu_);
    bool was_open = open_;
    open_ = false;
    mu_.Await(absl::Condition(
        +[](int* inside) { return *inside == 0; }, &inside_));
    return was_open;
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs `fn(core)` if `weak` still points to a core whose gate (`core.gate`)
// is open; otherwise does nothing (the owner answered everything pending
// when it closed the gate).
template <typename Core, typename Fn>
void WithLiveCore(const std::weak_ptr<Core>& weak, Fn&& fn) {
  std::shared_ptr<Core> core = weak.lock();
  if (core == nullptr || !core->gate.Enter()) return;
  std::forward<Fn>(fn)(*core);
  core->gate.Exit();
}

}  // namespace tokenbroker::internal

#endif  // TOKENBROKER_SERVICE_SHARED_LIFETIME_GATE_H_
