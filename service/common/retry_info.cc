#include "service/common/retry_info.h"

#include <cstdint>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace tokenbroker {
namespace {
constexpr char kRetryAfterUrl[] = "type.anypoint/tokenbroker.RetryAfterMillis";
}  // namespace

void SetRetryAfter(absl::Status& status, absl::Duration delay) {
  if (status.ok()) return;
  if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
  status.SetPayload(
      kRetryAfterUrl,
      absl::Cord(std::to_string(absl::ToInt64Milliseconds(delay))));
}

std::optional<absl::Duration> GetRetryAfter(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kRetryAfterUrl);
  if (!payload.has_value()) return std::nullopt;
  int64_t millis = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &millis)) return std::nullopt;
  return absl::Milliseconds(millis);
}

}  // namespace tokenbroker
