#ifndef TOKENBROKER_TESTS_SHARED_SCRIPTED_UPSTREAM_H_
#define TOKENBROKER_TESTS_SHARED_SCRIPTED_UPSTREAM_H_

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/common/clock.h"
#include "service/upstream/token_source.h"

namespace tokenbroker::testing {

// One replica's upstream TokenSource: fetches stay pending until the test
// completes them (oldest first), and every token it issues is long and
// distinctive ("SECRET-ACCESS-TOKEN-<tag>-<n>-...") so that a scan of Redis
// can look for it. Thread-safe.
class ScriptedUpstream final : public TokenSource {
 public:
  ScriptedUpstream(const Clock& clock, std::string tag)
      : clock_(clock), tag_(std::move(tag)) {}

  void Fetch(const TokenRequest& request, TokenCallback done) override {
    absl::MutexLock lock(&mu_);
    ++fetches_;
    pending_.push_back(std::move(done));
  }

  int fetches() const {
    absl::MutexLock lock(&mu_);
    return fetches_;
  }
  int pending() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(pending_.size());
  }
  // Every token issued so far.
  std::vector<std::string> issued() const {
    absl::MutexLock lock(&mu_);
    return issued_;
  }

  // Completes the oldest pending fetch with a new token valid for
  // `lifetime` from the clock's now; returns the token.
  std::string Succeed(absl::Duration lifetime = absl::Hours(1)) {
    Token token;
    token.issued_at = clock_.Now();
    token.expires_at = token.issued_at + lifetime;
    token.scopes = {"read:apps"};
    TokenCallback done;
    {
      absl::MutexLock lock(&mu_);
      if (pending_.empty()) return "";
      token.access_token =
          absl::StrCat("SECRET-ACCESS-TOKEN-", tag_, "-", issued_.size() + 1,
                       "-0123456789abcdefghijklmnopqrstuvwxyz");
      issued_.push_back(token.access_token);
      done = std::move(pending_.front());
      pending_.pop_front();
    }
    std::string value = token.access_token;
    done(std::move(token));
    return value;
  }

  // Completes the oldest pending fetch with `status`.
  void Fail(absl::Status status) {
    TokenCallback done;
    {
      absl::MutexLock lock(&mu_);
      if (pending_.empty()) return;
      done = std::move(pending_.front());
      pending_.pop_front();
    }
    done(std::move(status));
  }

 private:
  const Clock& clock_;
  const std::string tag_;
  mutable absl::Mutex mu_;
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<TokenCallback> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> issued_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_SHARED_SCRIPTED_UPSTREAM_H_
