#ifndef TOKENBROKER_TESTS_TESTING_FAKE_TOKEN_PROVIDER_H_
#define TOKENBROKER_TESTS_TESTING_FAKE_TOKEN_PROVIDER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/cache/token_provider.h"
#include "service/cache/token_wait.h"

namespace tokenbroker::testing {

// The fingerprint MakeTestToken() gives `value` (it does not contain the
// value, so that logs of a test hold no token either).
inline std::string TestFingerprint(absl::string_view value) {
  return absl::StrCat(
      "fp-", value.size(), "-",
      absl::string_view(value).substr(value.empty() ? 0 : value.size() - 1));
}

// A token that never expires, fingerprinted TestFingerprint(value).
inline TokenPtr MakeTestToken(std::string value) {
  auto token = std::make_shared<Token>();
  token->fingerprint = TestFingerprint(value);
  token->access_token = std::move(value);
  token->issued_at = absl::UnixEpoch();
  token->expires_at = absl::InfiniteFuture();
  return token;
}

// A TokenProvider that never fetches anything. Each Await() takes the next
// queued answer (AnswerNext()) and runs the callback inline; with none
// queued, the waiter is parked until the test completes it
// (CompleteParked()) or the caller withdraws it (then withdrawn_count()
// counts it). Invalidate() is recorded. The handles it returns are real
// TokenWaits around internal::TokenWaiter, so the caller's side behaves as
// with the TokenCache. Thread-safe; callbacks run with no lock held.
class FakeTokenProvider final : public TokenProvider,
                                private internal::WaiterRegistry {
 public:
  FakeTokenProvider() = default;
  FakeTokenProvider(const FakeTokenProvider&) = delete;
  FakeTokenProvider& operator=(const FakeTokenProvider&) = delete;
  // Waiters still parked will not reach it any more.
  ~FakeTokenProvider() {
    std::deque<std::shared_ptr<internal::TokenWaiter>> parked;
    {
      absl::MutexLock lock(&mu_);
      parked.swap(parked_);
    }
    for (auto& waiter : parked) waiter->Detach();
  }

  // Queues the answer of a later Await() (first in, first out).
  void AnswerNext(absl::StatusOr<TokenPtr> answer) {
    absl::MutexLock lock(&mu_);
    answers_.push_back(std::move(answer));
  }

  TokenWait Await(const TokenRequest& request, absl::Duration min_ttl,
                  absl::Time deadline, TokenResultCallback done) override {
    std::shared_ptr<internal::TokenWaiter> waiter;
    absl::StatusOr<TokenPtr> answer;
    bool inline_answer = false;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      min_ttls_.push_back(min_ttl);
      uint64_t id = next_id_++;
      inline_answer = !answers_.empty();
      // Only a parked waiter has anything to withdraw.
      internal::WaiterRegistry* registry = nullptr;
      if (!inline_answer) registry = this;
      waiter = std::make_shared<internal::TokenWaiter>(
          std::move(done), registry, request.app, id,
          /*accept_valid_on_failure=*/true);
      if (inline_answer) {
        answer = std::move(answers_.front());
        answers_.pop_front();
      } else {
        parked_.push_back(waiter);
      }
    }
    if (inline_answer) waiter->Complete(std::move(answer));
    return TokenWait(std::move(waiter));
  }

  void Invalidate(const TokenRequest& request,
                  absl::string_view access_token) override {
    absl::MutexLock lock(&mu_);
    invalidated_.emplace_back(access_token);
  }

  // Completes the oldest parked waiter. Returns false if none is parked.
  bool CompleteParked(absl::StatusOr<TokenPtr> answer) {
    std::shared_ptr<internal::TokenWaiter> waiter;
    {
      absl::MutexLock lock(&mu_);
      if (parked_.empty()) return false;
      waiter = std::move(parked_.front());
      parked_.pop_front();
    }
    waiter->Complete(std::move(answer));
    return true;
  }

  // Await() calls so far.
  int await_count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(requests_.size());
  }
  std::vector<TokenRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<absl::Duration> min_ttls() const {
    absl::MutexLock lock(&mu_);
    return min_ttls_;
  }
  size_t parked_count() const {
    absl::MutexLock lock(&mu_);
    return parked_.size();
  }
  // Parked waiters that their callers withdrew before an answer.
  int withdrawn_count() const {
    absl::MutexLock lock(&mu_);
    return withdrawn_;
  }
  // The tokens passed to Invalidate(), oldest first.
  std::vector<std::string> invalidated() const {
    absl::MutexLock lock(&mu_);
    return invalidated_;
  }

 private:
  // WaiterRegistry: called by a parked waiter's TokenWait::Cancel().
  void Withdraw(const std::string& key, uint64_t id) override {
    absl::MutexLock lock(&mu_);
    for (auto it = parked_.begin(); it != parked_.end(); ++it) {
      if ((*it)->id() == id) {
        parked_.erase(it);
        ++withdrawn_;
        return;
      }
    }
  }

  mutable absl::Mutex mu_;
  std::deque<absl::StatusOr<TokenPtr>> answers_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<internal::TokenWaiter>> parked_
      ABSL_GUARDED_BY(mu_);
  std::vector<TokenRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> min_ttls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> invalidated_ ABSL_GUARDED_BY(mu_);
  int withdrawn_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_FAKE_TOKEN_PROVIDER_H_
