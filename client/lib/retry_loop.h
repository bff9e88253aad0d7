// The one retry loop of the client library and tokenbrokerctl, in the manner
// of google-cloud-cpp's `google/cloud/internal/retry_loop.h`: the caller
// brings the attempt, which errors may be tried again, a backoff policy and a
// deadline; the loop owns nothing but the sequence. Time and sleeping are
// injected so that tests never wait.
//
// Internal to the client library (not installed).
#ifndef TOKENBROKER_CLIENT_LIB_RETRY_LOOP_H_
#define TOKENBROKER_CLIENT_LIB_RETRY_LOOP_H_

#include <functional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/common/backoff_policy.h"

namespace tokenbroker {

// Which failed attempts are tried again: at most `max_attempts` attempts in
// all (1 or less: no retries), and only errors `retryable` accepts (null:
// none). `retryable` runs after each failed attempt, so it may look at what
// that attempt did (for example whether an answer had begun).
struct RetryPolicy {
  int max_attempts = 1;
  std::function<bool(const absl::Status&)> retryable;
};

// The time a deadline is judged on, and the way to wait between attempts.
struct RetryClock {
  std::function<absl::Time()> now;            // Null: absl::Now.
  std::function<void(absl::Duration)> sleep;  // Null: absl::SleepFor.

  absl::Time Now() const { return now ? now() : absl::Now(); }
  void Sleep(absl::Duration delay) const {
    if (sleep) {
      sleep(delay);
    } else {
      absl::SleepFor(delay);
    }
  }
};

namespace retry_loop_internal {
inline const absl::Status& StatusOf(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}
}  // namespace retry_loop_internal

// Calls `attempt()`, which returns absl::Status or absl::StatusOr<T>, until
// it succeeds or its error is final, and returns its last result. An error is
// final when `retry` does not allow another attempt, or when the wait that
// `backoff` gives (OnCompletion(), once per failed attempt) would reach
// `deadline` from clock.Now(): that try could not finish in time. Otherwise
// the loop waits with clock.Sleep() and calls `attempt` again. `backoff`
// should be fresh (see BackoffPolicy::clone()). Runs on the caller's thread.
template <typename Attempt>
std::invoke_result_t<Attempt&> RetryLoop(const RetryPolicy& retry,
                                         BackoffPolicy& backoff,
                                         absl::Time deadline,
                                         const RetryClock& clock,
                                         Attempt&& attempt) {
  for (int attempts = 1;; ++attempts) {
    std::invoke_result_t<Attempt&> result = attempt();
    const absl::Status& status = retry_loop_internal::StatusOf(result);
    if (status.ok() || attempts >= retry.max_attempts || !retry.retryable ||
        !retry.retryable(status)) {
      return result;
    }
    const absl::Duration delay = backoff.OnCompletion();
    if (clock.Now() + delay >= deadline) return result;
    clock.Sleep(delay);
  }
}

}  // namespace tokenbroker

#endif  // TOKENBROKER_CLIENT_LIB_RETRY_LOOP_H_
