#ifndef TOKENBROKER_SERVICE_METRICS_INSTRUMENTED_H_
#define TOKENBROKER_SERVICE_METRICS_INSTRUMENTED_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "service/auth/audit.h"
#include "service/metrics/broker_metrics.h"
#include "service/upstream/http_client.h"

namespace tokenbroker {

// Decides the `kind` label of an upstream exchange ("token" or "call").
using UpstreamKindFn = std::function<std::string(const HttpRequest&)>;

// An HttpClient that forwards to another and records each exchange's
// duration and outcome in `metrics` (UpstreamExchange). Thread-safe as the
// wrapped client; `inner` and `metrics` must outlive it.
class InstrumentedHttpClient final : public HttpClient {
 public:
  InstrumentedHttpClient(HttpClient& inner, BrokerMetrics& metrics,
                         UpstreamKindFn kind);

  void Send(HttpRequest request, HttpCallback done) override;
  HttpRequestId Start(HttpRequest request, HttpCallback done) override;
  void Cancel(HttpRequestId id) override;
  void Resume(HttpRequestId id) override;

 private:
  HttpCallback Wrap(const HttpRequest& request, HttpCallback done);

  HttpClient& inner_;
  BrokerMetrics& metrics_;
  UpstreamKindFn kind_;
};

// An AuditSink that forwards to another and counts failed writes
// (AuditWriteFailed). Thread-safe; `inner` and `metrics` must outlive it.
class CountingAuditSink final : public AuditSink {
 public:
  CountingAuditSink(AuditSink& inner, BrokerMetrics& metrics)
      : inner_(inner), metrics_(metrics) {}

  absl::Status Write(const AuditRecord& record) override;
  void Flush() override { inner_.Flush(); }

 private:
  AuditSink& inner_;
  BrokerMetrics& metrics_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_METRICS_INSTRUMENTED_H_
