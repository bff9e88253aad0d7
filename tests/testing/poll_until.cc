#include "tests/testing/poll_until.h"

#include "absl/time/clock.h"

namespace tokenbroker::testing {

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (condition()) return true;
    absl::SleepFor(interval);
  }
  return condition();
}

}  // namespace tokenbroker::testing
