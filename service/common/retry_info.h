#ifndef TOKENBROKER_SERVICE_COMMON_RETRY_INFO_H_
#define TOKENBROKER_SERVICE_COMMON_RETRY_INFO_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tokenbroker {

// An upstream error may carry a server-requested delay before the next try
// (`Retry-After`, `X-RateLimit-Reset`). It travels as a payload of the
// absl::Status so that errors keep one currency.

// Attaches `delay` (clamped to >= 0) to `status`. No effect on an OK status.
void SetRetryAfter(absl::Status& status, absl::Duration delay);

// Returns the delay attached by SetRetryAfter, if any.
std::optional<absl::Duration> GetRetryAfter(const absl::Status& status);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_RETRY_INFO_H_
