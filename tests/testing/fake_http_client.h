#ifndef TOKENBROKER_TESTS_TESTING_FAKE_HTTP_CLIENT_H_
#define TOKENBROKER_TESTS_TESTING_FAKE_HTTP_CLIENT_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "service/upstream/http_client.h"

namespace tokenbroker::testing {

// An HttpClient that never touches the network. Every request is recorded.
// If a handler is set, it answers each request inline (the callback runs on
// the caller's thread); otherwise requests wait until the test completes them
// with CompleteNext() or they are cancelled. Thread-safe; callbacks run with
// no lock held.
class FakeHttpClient final : public HttpClient {
 public:
  using Handler =
      std::function<absl::StatusOr<HttpResponse>(const HttpRequest&)>;

  FakeHttpClient() = default;
  explicit FakeHttpClient(Handler handler);
  // Completes requests still pending with CANCELLED.
  ~FakeHttpClient() override;

  void Send(HttpRequest request, HttpCallback done) override;
  HttpRequestId Start(HttpRequest request, HttpCallback done) override;
  void Cancel(HttpRequestId id) override;

  // Replaces the handler; an empty one makes requests wait.
  void SetHandler(Handler handler);

  // Every request received so far, oldest first.
  std::vector<HttpRequest> requests() const;
  size_t pending_count() const;

  // Completes the oldest pending request with `response`. Returns false if
  // none is pending.
  bool CompleteNext(absl::StatusOr<HttpResponse> response);

  // A response with `status`, `body` and a JSON content type.
  static HttpResponse Json(int status, std::string body);

 private:
  struct Pending {
    HttpRequestId id;
    HttpCallback done;
  };

  mutable absl::Mutex mu_;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  HttpRequestId next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_FAKE_HTTP_CLIENT_H_
