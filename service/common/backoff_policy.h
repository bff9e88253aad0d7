#ifndef TOKENBROKER_SERVICE_COMMON_BACKOFF_POLICY_H_
#define TOKENBROKER_SERVICE_COMMON_BACKOFF_POLICY_H_

#include <functional>
#include <memory>

#include "absl/time/time.h"

namespace tokenbroker {

// A thread-safe uniform random number in [0, 1).
double RandomUniform01();

// Decides how long to wait before the next try after consecutive failures.
// A policy object holds the state of one sequence of tries; clone() gives a
// fresh one with the same parameters. Not thread-safe: each owner keeps its
// own instance.
class BackoffPolicy {
 public:
  virtual ~BackoffPolicy() = default;

  // A new policy with the same parameters and no failures recorded.
  virtual std::unique_ptr<BackoffPolicy> clone() const = 0;

  // Records one more failure and returns the delay before the next try.
  virtual absl::Duration OnCompletion() = 0;
};

// Truncated exponential backoff with full jitter: the n-th consecutive delay
// is uniform in [0, min(max, base * scaling^(n-1))], scaling 2 unless given.
// See "Exponential Backoff And Jitter" (AWS Architecture Blog) for why full
// jitter spreads retries best.
class ExponentialBackoffPolicy final : public BackoffPolicy {
 public:
  // `uniform01` returns a number in [0, 1); it defaults to a private
  // generator. Tests pass a fixed function.
  ExponentialBackoffPolicy(absl::Duration base, absl::Duration max,
                           std::function<double()> uniform01 = nullptr);
  // `scaling` multiplies the ceiling after each delay; a delay is never
  // negative (a scaling of zero or less gives zero after the first).
  ExponentialBackoffPolicy(absl::Duration base, absl::Duration max,
                           double scaling,
                           std::function<double()> uniform01 = nullptr);

  std::unique_ptr<BackoffPolicy> clone() const override;
  absl::Duration OnCompletion() override;

  // The upper bound of the next delay (before jitter).
  absl::Duration current_ceiling() const { return ceiling_; }

 private:
  absl::Duration base_;
  absl::Duration max_;
  double scaling_;
  absl::Duration ceiling_;
  std::function<double()> uniform01_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_BACKOFF_POLICY_H_
