#include "service/cache/token_wait.h"

#include <utility>

namespace tokenbroker {
namespace internal {

TokenWaiter::TokenWaiter(TokenResultCallback done, WaiterRegistry* registry,
                         std::string key, uint64_t id,
                         bool accept_valid_on_failure)
    : key_(std::move(key)),
      id_(id),
      accept_valid_on_failure_(accept_valid_on_failure),
      done_(std::move(done)),
      registry_(registry) {}

void TokenWaiter::Complete(absl::StatusOr<TokenPtr> result) {
  absl::MutexLock run(&run_mu_);
  TokenResultCallback done;
  {
    absl::MutexLock lock(&mu_);
    done = std::move(done_);
    done_ = nullptr;
    registry_ = nullptr;  // It has forgotten this waiter.
  }
  if (!done) return;
  runner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  done(std::move(result));
  runner_.store(std::thread::id(), std::memory_order_relaxed);
}

bool TokenWaiter::Withdraw() {
  TokenResultCallback withdrawn;
  {
    absl::MutexLock lock(&mu_);
    withdrawn = std::move(done_);
    done_ = nullptr;
    // Under mu_, so that Detach() cannot let the registry go meanwhile.
    if (registry_ != nullptr) registry_->Withdraw(key_, id_);
    registry_ = nullptr;
  }
  // A run in progress on another thread ends before this returns; a
  // callback withdrawing its own waiter must not wait for itself.
  if (runner_.load(std::memory_order_relaxed) != std::this_thread::get_id()) {
    absl::MutexLock run(&run_mu_);
  }
  // The callback's captures are destroyed here, outside every lock.
  return withdrawn != nullptr;
}

void TokenWaiter::Detach() {
  absl::MutexLock lock(&mu_);
  registry_ = nullptr;
}

}  // namespace internal

TokenWait& TokenWait::operator=(TokenWait&& other) noexcept {
  if (this != &other) {
    Cancel();
    waiter_ = std::move(other.waiter_);
  }
  return *this;
}

bool TokenWait::Cancel() {
  std::shared_ptr<internal::TokenWaiter> waiter = std::move(waiter_);
  waiter_ = nullptr;
  return waiter != nullptr && waiter->Withdraw();
}

}  // namespace tokenbroker
