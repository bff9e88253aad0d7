#include "service/common/backoff_policy.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"

namespace tokenbroker {
double RandomUniform01() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen ABSL_GUARDED_BY(mu) = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::Uniform<double>(*gen, 0.0, 1.0);
}

ExponentialBackoffPolicy::ExponentialBackoffPolicy(
    absl::Duration base, absl::Duration max, std::function<double()> uniform01)
    : ExponentialBackoffPolicy(base, max, 2.0, std::move(uniform01)) {}

ExponentialBackoffPolicy::ExponentialBackoffPolicy(
    absl::Duration base, absl::Duration max, double scaling,
    std::function<double()> uniform01)
    : base_(base),
      max_(std::max(base, max)),
      scaling_(scaling),
      ceiling_(base),
      uniform01_(uniform01 ? std::move(uniform01) : RandomUniform01) {}

std::unique_ptr<BackoffPolicy> ExponentialBackoffPolicy::clone() const {
  return std::make_unique<ExponentialBackoffPolicy>(base_, max_, scaling_,
                                                    uniform01_);
}

absl::Duration ExponentialBackoffPolicy::OnCompletion() {
  absl::Duration delay =
      std::max(absl::ZeroDuration(), ceiling_ * uniform01_());
  ceiling_ =
      std::max(absl::ZeroDuration(), std::min(max_, ceiling_ * scaling_));
  return delay;
}

}  // namespace tokenbroker
