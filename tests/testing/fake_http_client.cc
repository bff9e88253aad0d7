#include "tests/testing/fake_http_client.h"

#include <utility>

#include "absl/status/status.h"

namespace tokenbroker::testing {

FakeHttpClient::FakeHttpClient(Handler handler)
    : handler_(std::move(handler)) {}

FakeHttpClient::~FakeHttpClient() {
  std::deque<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(pending_);
  }
  for (Pending& p : pending) {
    p.done(absl::CancelledError("fake HTTP client destroyed"));
  }
}

void FakeHttpClient::Send(HttpRequest request, HttpCallback done) {
  Start(std::move(request), std::move(done));
}

HttpRequestId FakeHttpClient::Start(HttpRequest request, HttpCallback done) {
  Handler handler;
  HttpRequestId id;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    id = next_id_++;
    handler = handler_;
    if (!handler) pending_.push_back(Pending{id, std::move(done)});
  }
  if (handler) done(handler(request));
  return id;
}

void FakeHttpClient::Cancel(HttpRequestId id) {
  HttpCallback done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->id == id) {
        done = std::move(it->done);
        pending_.erase(it);
        break;
      }
    }
  }
  if (done) done(absl::CancelledError("the HTTP request was cancelled"));
}

void FakeHttpClient::SetHandler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

std::vector<HttpRequest> FakeHttpClient::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

size_t FakeHttpClient::pending_count() const {
  absl::MutexLock lock(&mu_);
  return pending_.size();
}

bool FakeHttpClient::CompleteNext(absl::StatusOr<HttpResponse> response) {
  HttpCallback done;
  {
    absl::MutexLock lock(&mu_);
    if (pending_.empty()) return false;
    done = std::move(pending_.front().done);
    pending_.pop_front();
  }
  done(std::move(response));
  return true;
}

HttpResponse FakeHttpClient::Json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.headers = {{"Content-Type", "application/json"}};
  response.body = std::move(body);
  return response;
}

}  // namespace tokenbroker::testing
