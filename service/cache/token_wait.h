#ifndef TOKENBROKER_SERVICE_CACHE_TOKEN_WAIT_H_
#define TOKENBROKER_SERVICE_CACHE_TOKEN_WAIT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/upstream/token_source.h"

namespace tokenbroker {

using TokenPtr = std::shared_ptr<const Token>;
using TokenResultCallback = absl::AnyInvocable<void(absl::StatusOr<TokenPtr>)>;

namespace internal {

// Where a waiter is parked; told when the waiter is withdrawn so that it
// leaves nothing behind. Implemented by TokenCache.
class WaiterRegistry {
 public:
  virtual void Withdraw(const std::string& key, uint64_t id) = 0;

 protected:
  ~WaiterRegistry() = default;
};

// One caller waiting for a token: its callback, run at most once, and what
// the cache needs to know about it. Shared by the cache and the caller's
// TokenWait. Thread-safe.
class TokenWaiter {
 public:
  TokenWaiter(TokenResultCallback done, WaiterRegistry* registry,
              std::string key, uint64_t id, bool accept_valid_on_failure);

  // Runs the callback with `result` unless it ran or was withdrawn before.
  void Complete(absl::StatusOr<TokenPtr> result);

  // Withdraws the callback (TokenWait::Cancel()). Returns whether it had not
  // run. Waits for a run in progress on another thread.
  bool Withdraw();

  // The registry is going away: Withdraw() must not reach it any more.
  void Detach();

  const std::string& key() const { return key_; }
  uint64_t id() const { return id_; }
  // Whether a still-valid token may answer it when a fetch fails (false for
  // explicit refreshes, which want a new token or the error).
  bool accept_valid_on_failure() const { return accept_valid_on_failure_; }

 private:
  const std::string key_;
  const uint64_t id_;
  const bool accept_valid_on_failure_;

  absl::Mutex mu_;
  TokenResultCallback done_ ABSL_GUARDED_BY(mu_);
  WaiterRegistry* registry_ ABSL_GUARDED_BY(mu_);
  // Held while the callback runs, so that Withdraw() can wait for it.
  absl::Mutex run_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The thread running the callback, so that a callback may withdraw its
  // own waiter without waiting for itself.
  std::atomic<std::thread::id> runner_;
};

}  // namespace internal

// A caller's place in the queue for a token (TokenCache::Get()). Cancel(), or
// destroying the handle, withdraws it: once that returns, the callback is not
// running and never will (a callback may cancel its own handle). A handle
// whose callback already ran does nothing. Move-only; not thread-safe itself
// (one owner), but Cancel() may race with the cache completing the waiter.
//
// Cancel() may wait for the callback if it is running on another thread:
// never call it while holding a lock that the callback takes.
class [[nodiscard]] TokenWait {
 public:
  TokenWait() = default;
  explicit TokenWait(std::shared_ptr<internal::TokenWaiter> waiter)
      : waiter_(std::move(waiter)) {}
  TokenWait(TokenWait&& other) noexcept = default;
  TokenWait& operator=(TokenWait&& other) noexcept;
  TokenWait(const TokenWait&) = delete;
  TokenWait& operator=(const TokenWait&) = delete;
  ~TokenWait() { Cancel(); }

  // Withdraws the waiter. Returns true if its callback had not run (and now
  // never will), false if it ran already or the handle is empty.
  bool Cancel();

 private:
  std::shared_ptr<internal::TokenWaiter> waiter_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CACHE_TOKEN_WAIT_H_
