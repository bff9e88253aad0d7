#include "service/upstream/http_client.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"

namespace tokenbroker {

const std::string* FindHeader(const HttpHeaders& headers,
                              absl::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

HttpRequestId HttpClient::Start(HttpRequest request, HttpCallback done) {
  if (std::shared_ptr<HttpBodyStream> stream = request.body_stream) {
    // A client that cannot stream: hand the whole body over at once.
    done = [stream, done = std::move(done)](
               absl::StatusOr<HttpResponse> response) mutable {
      if (response.ok()) {
        stream->OnHeaders(response->status, response->headers);
        if (!response->body.empty()) stream->OnData(response->body);
        response->body.clear();
      }
      done(std::move(response));
    };
  }
  Send(std::move(request), std::move(done));
  return kNoHttpRequestId;
}

void HttpClient::Cancel(HttpRequestId /*id*/) {}

void HttpClient::Resume(HttpRequestId /*id*/) {}

absl::StatusOr<HttpResponse> HttpClient::SendAndWait(HttpRequest request) {
  absl::Notification done;
  std::optional<absl::StatusOr<HttpResponse>> result;
  Send(std::move(request), [&](absl::StatusOr<HttpResponse> response) {
    result.emplace(std::move(response));
    done.Notify();
  });
  done.WaitForNotification();
  return *std::move(result);
}

}  // namespace tokenbroker
