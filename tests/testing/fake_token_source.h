#ifndef TOKENBROKER_TESTS_TESTING_FAKE_TOKEN_SOURCE_H_
#define TOKENBROKER_TESTS_TESTING_FAKE_TOKEN_SOURCE_H_

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/common/clock.h"
#include "service/upstream/token_source.h"

namespace tokenbroker::testing {

// A TokenSource whose fetches stay pending until the test completes them,
// so tests decide exactly when and how each upstream fetch ends. Thread-safe.
class FakeTokenSource final : public TokenSource {
 public:
  explicit FakeTokenSource(const Clock& clock) : clock_(clock) {}

  void Fetch(const TokenRequest& request, TokenCallback done) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    pending_.push_back(std::move(done));
  }

  // Fetches started so far.
  int fetch_count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(requests_.size());
  }
  int pending_count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(pending_.size());
  }
  TokenRequest last_request() const {
    absl::MutexLock lock(&mu_);
    return requests_.back();
  }

  // Completes the oldest pending fetch with a token valid for `lifetime`.
  // Returns the token's value.
  std::string Succeed(absl::Duration lifetime = absl::Hours(1)) {
    Token token;
    token.issued_at = clock_.Now();
    token.expires_at = token.issued_at + lifetime;
    {
      absl::MutexLock lock(&mu_);
      token.access_token = absl::StrCat("token-", ++issued_);
    }
    std::string value = token.access_token;
    Complete(std::move(token));
    return value;
  }

  // Completes the oldest pending fetch with `status`.
  void Fail(absl::Status status) { Complete(std::move(status)); }

 private:
  void Complete(absl::StatusOr<Token> result) {
    TokenCallback done;
    {
      absl::MutexLock lock(&mu_);
      if (pending_.empty()) return;
      done = std::move(pending_.front());
      pending_.pop_front();
    }
    done(std::move(result));
  }

  const Clock& clock_;
  mutable absl::Mutex mu_;
  std::vector<TokenRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<TokenCallback> pending_ ABSL_GUARDED_BY(mu_);
  int issued_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_FAKE_TOKEN_SOURCE_H_
