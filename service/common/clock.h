#ifndef TOKENBROKER_SERVICE_COMMON_CLOCK_H_
#define TOKENBROKER_SERVICE_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tokenbroker {

// Source of the current time. Token logic reads time only through this
// interface so that tests can advance a fake clock instead of sleeping.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The real wall clock.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_CLOCK_H_
