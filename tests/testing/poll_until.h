#ifndef TOKENBROKER_TESTS_TESTING_POLL_UNTIL_H_
#define TOKENBROKER_TESTS_TESTING_POLL_UNTIL_H_

#include <functional>

#include "absl/time/time.h"

namespace tokenbroker::testing {

// Calls `condition` every `interval` until it returns true or `timeout` has
// passed, and returns whether it became true (it is evaluated once more at
// the end). For waiting on something another thread or process does; never
// for letting time pass. The timeout is a safety bound that keeps a broken
// test from hanging, not a timed assertion: use it as
//   ASSERT_TRUE(PollUntil([&] { return ...; })) << "what we waited for";
//
// Thread-safe if `condition` is.
bool PollUntil(const std::function<bool()>& condition,
               absl::Duration timeout = absl::Seconds(30),
               absl::Duration interval = absl::Milliseconds(5));

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_POLL_UNTIL_H_
