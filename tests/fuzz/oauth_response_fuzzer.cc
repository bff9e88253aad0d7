// libFuzzer target: the OAuth token-endpoint answer parser
// (ParseTokenResponse, OAuthErrorStatus) and ParseRetryDelay, on any status,
// headers and body. Checks the parser's promises: a token is non-empty and
// expires after `now` and within max_lifetime; errors are UNAVAILABLE or
// FAILED_PRECONDITION and never quote a long body verbatim.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "service/upstream/oauth_response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  tokenbroker::HttpResponse response;
  response.status = in.ConsumeIntegralInRange<int>(0, 999);
  size_t count = in.ConsumeIntegralInRange<size_t>(0, 4);
  for (size_t i = 0; i < count; ++i) {
    std::string name = in.PickValueInArray<const char*>(
        {"Retry-After", "X-RateLimit-Reset", "Content-Type", "retry-after"});
    response.headers.emplace_back(std::move(name),
                                  in.ConsumeRandomLengthString(40));
  }
  response.body = in.ConsumeRemainingBytesAsString();
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  tokenbroker::TokenParseOptions options;
  options.app = "fuzz-app";

  absl::StatusOr<tokenbroker::Token> token =
      tokenbroker::ParseTokenResponse(response, now, options);
  if (token.ok()) {
    if (token->access_token.empty() || token->expires_at <= now ||
        token->expires_at > now + options.max_lifetime) {
      std::abort();
    }
  } else {
    absl::StatusCode code = token.status().code();
    if (code != absl::StatusCode::kUnavailable &&
        code != absl::StatusCode::kFailedPrecondition) {
      std::abort();
    }
    // Messages carry at most a sanitized, truncated excerpt of the body.
    if (response.body.size() > 300 &&
        absl::StrContains(token.status().message(), response.body)) {
      std::abort();
    }
  }
  tokenbroker::OAuthErrorStatus(response, now, options.app, "token");

  std::optional<absl::Duration> delay =
      tokenbroker::ParseRetryDelay(response.headers, now);
  if (delay.has_value() &&
      (*delay < absl::ZeroDuration() || *delay > absl::Hours(1))) {
    std::abort();
  }
  return 0;
}
