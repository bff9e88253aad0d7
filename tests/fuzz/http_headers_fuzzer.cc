// libFuzzer target: the parsing of HTTP response headers received from
// upstream (the emulator in tests, Anypoint in production):
// FilterResponseHeaders (what a Call returns to the caller), FindHeader and
// ParseRetryDelay. Input: header lines "Name: value" separated by '\n', as
// a server sends them. Checks: no Set-Cookie or hop-by-hop header survives
// the filter, what survives keeps its order, and delays stay in range.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/proxy/call_request.h"
#include "service/upstream/http_client.h"
#include "service/upstream/oauth_response.h"

namespace {

bool AlwaysDropped(const std::string& name) {
  std::string lower = absl::AsciiStrToLower(name);
  return lower == "set-cookie" || lower == "set-cookie2" ||
         lower == "connection" || lower == "keep-alive" ||
         lower == "transfer-encoding" || lower == "te" || lower == "trailer" ||
         lower == "upgrade" || lower == "proxy-authenticate" ||
         lower == "proxy-connection";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  tokenbroker::HttpHeaders headers;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    headers.emplace_back(
        std::string(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  tokenbroker::HttpHeaders kept = tokenbroker::FilterResponseHeaders(headers);
  // Kept headers: a subsequence of the input, none of them dropped ones.
  size_t next = 0;
  for (const auto& header : kept) {
    if (AlwaysDropped(header.first)) std::abort();
    while (next < headers.size() && headers[next] != header) ++next;
    if (next == headers.size()) std::abort();
    ++next;
  }
  tokenbroker::FindHeader(headers, "retry-after");
  std::optional<absl::Duration> delay =
      tokenbroker::ParseRetryDelay(headers, absl::FromUnixSeconds(1800000000));
  if (delay.has_value() &&
      (*delay < absl::ZeroDuration() || *delay > absl::Hours(1))) {
    std::abort();
  }
  return 0;
}
