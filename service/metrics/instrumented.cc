#include "service/metrics/instrumented.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace tokenbroker {

InstrumentedHttpClient::InstrumentedHttpClient(HttpClient& inner,
                                               BrokerMetrics& metrics,
                                               UpstreamKindFn kind)
    : inner_(inner), metrics_(metrics), kind_(std::move(kind)) {}

HttpCallback InstrumentedHttpClient::Wrap(const HttpRequest& request,
                                          HttpCallback done) {
  std::string kind = kind_ ? kind_(request) : "call";
  return [this, kind = std::move(kind), done = std::move(done),
          start = std::chrono::steady_clock::now()](
             absl::StatusOr<HttpResponse> response) mutable {
    std::string outcome =
        response.ok() ? absl::StrCat(response->status)
                      : absl::StatusCodeToString(response.status().code());
    metrics_.UpstreamExchange(
        kind, outcome,
        absl::FromChrono(std::chrono::steady_clock::now() - start));
    done(std::move(response));
  };
}

void InstrumentedHttpClient::Send(HttpRequest request, HttpCallback done) {
  HttpCallback wrapped = Wrap(request, std::move(done));
  inner_.Send(std::move(request), std::move(wrapped));
}

HttpRequestId InstrumentedHttpClient::Start(HttpRequest request,
                                            HttpCallback done) {
  HttpCallback wrapped = Wrap(request, std::move(done));
  return inner_.Start(std::move(request), std::move(wrapped));
}

void InstrumentedHttpClient::Cancel(HttpRequestId id) { inner_.Cancel(id); }

void InstrumentedHttpClient::Resume(HttpRequestId id) { inner_.Resume(id); }

absl::Status CountingAuditSink::Write(const AuditRecord& record) {
  absl::Status status = inner_.Write(record);
  if (!status.ok()) metrics_.AuditWriteFailed();
  return status;
}

}  // namespace tokenbroker
