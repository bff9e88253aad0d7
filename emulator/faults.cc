// Faults: which request a fault applies to (TakeFault) and the answer it
// gives instead of the handler's (ApplyFault). Faults are added and cleared
// by the test-control API (control_api.cc); routes.cc calls these two for
// every counted request.

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/connections.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"

namespace tokenbroker::emulator {

using internal::SetMessage;
using internal::SetOAuthError;

namespace {

struct FaultKindEntry {
  FaultKind kind;
  const char* name;
};

constexpr FaultKindEntry kFaultKinds[] = {
    {FaultKind::kLatency, "latency"},
    {FaultKind::kStatus500, "status_500"},
    {FaultKind::kRateLimit503, "rate_limit_503"},
    {FaultKind::kTooMany429, "too_many_429"},
    {FaultKind::kReset, "reset"},
    {FaultKind::kMalformedJson, "malformed_json"},
    {FaultKind::kPlainText401, "plain_text_401"},
    {FaultKind::kInvalidClient, "invalid_client"},
};

}  // namespace

std::string FaultKindName(FaultKind kind) {
  for (const FaultKindEntry& entry : kFaultKinds) {
    if (entry.kind == kind) return entry.name;
  }
  return "unknown";
}

absl::StatusOr<FaultKind> ParseFaultKind(absl::string_view name) {
  for (const FaultKindEntry& entry : kFaultKinds) {
    if (entry.name == name) return entry.kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown fault kind \"", name,
      "\" (use latency, status_500, rate_limit_503, too_many_429, reset, "
      "malformed_json, plain_text_401 or invalid_client)"));
}

std::optional<Fault> Emulator::Impl::TakeFault(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->endpoint != "*" && it->endpoint != endpoint) continue;
    Fault fault = *it;
    if (it->count > 0 && --it->count == 0) faults_.erase(it);
    return fault;
  }
  return std::nullopt;
}

bool Emulator::Impl::ApplyFault(const Fault& fault, const std::string& counter,
                                const httplib::Request& req,
                                httplib::Response& res) {
  switch (fault.kind) {
    case FaultKind::kLatency: {
      if (internal::WaitUnlessClientCloses(
              req, absl::Milliseconds(fault.latency_ms))) {
        return false;
      }
      absl::MutexLock lock(&mu_);
      ++counters_.aborted_by_client[counter];
      res.status = 499;  // For the log only: the client is gone.
      return true;
    }
    case FaultKind::kStatus500:
      SetMessage(res, 500, "Internal Server Error (injected fault)");
      return true;
    case FaultKind::kRateLimit503: {
      res.status = 503;
      res.set_header("X-RateLimit-Limit", "500");
      res.set_header("X-RateLimit-Remaining", "0");
      res.set_header("X-RateLimit-Reset",
                     std::to_string(absl::ToUnixSeconds(absl::Now()) +
                                    fault.retry_after_seconds));
      return true;
    }
    case FaultKind::kTooMany429:
      res.set_header("Retry-After", std::to_string(fault.retry_after_seconds));
      SetMessage(res, 429, "Too Many Requests (injected fault)");
      return true;
    case FaultKind::kReset:
      if (!internal::ShutdownConnectionOf(req)) {
        // Fallback: announce a body and close the connection before sending
        // it, so the client sees a truncated response.
        res.status = 200;
        res.set_content_provider(
            1024, "application/json",
            [](size_t, size_t, httplib::DataSink&) { return false; });
      } else {
        res.status = 500;  // never sent: the socket is shut down
      }
      return true;
    case FaultKind::kMalformedJson:
      res.status = 200;
      res.set_content("{\"access_token\": \"trunc", "application/json");
      return true;
    case FaultKind::kPlainText401:
      res.status = 401;
      res.set_content("Unauthorized", "text/plain");
      return true;
    case FaultKind::kInvalidClient:
      SetOAuthError(res, 401, "invalid_client",
                    "client authentication failed (injected fault)");
      return true;
  }
  return false;
}

}  // namespace tokenbroker::emulator
