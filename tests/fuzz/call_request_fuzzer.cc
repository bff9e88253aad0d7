// libFuzzer target: the Call request validator (ValidateCallRequest) and the
// method classifier. Beyond "no crash", it checks the validator's promises
// on every request it accepts: the path is origin-form and cannot leave the
// app's base URL, and no forbidden header gets through.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "service/proxy/call_request.h"

namespace {

bool Forbidden(const std::string& name) {
  std::string lower = absl::AsciiStrToLower(name);
  return lower == "authorization" || lower == "host" || lower == "cookie" ||
         lower == "connection" || lower == "transfer-encoding" ||
         lower == "content-length" || absl::StartsWith(lower, "proxy-");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::string method = in.ConsumeRandomLengthString(16);
  std::string path = in.ConsumeRandomLengthString(512);
  tokenbroker::HttpHeaders headers;
  size_t count = in.ConsumeIntegralInRange<size_t>(0, 8);
  for (size_t i = 0; i < count; ++i) {
    std::string name = in.ConsumeRandomLengthString(32);
    std::string value = in.ConsumeRandomLengthString(64);
    headers.emplace_back(std::move(name), std::move(value));
  }
  size_t body_size = in.ConsumeIntegral<uint32_t>();
  tokenbroker::CallLimits limits;
  limits.max_path_bytes = in.ConsumeIntegralInRange<size_t>(1, 1024);
  limits.max_headers = in.ConsumeIntegralInRange<size_t>(0, 8);

  absl::Status status = tokenbroker::ValidateCallRequest(method, path, headers,
                                                         body_size, limits);
  tokenbroker::IsIdempotentMethod(method);
  if (!status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument &&
        status.code() != absl::StatusCode::kResourceExhausted) {
      std::abort();
    }
    return 0;
  }
  // Accepted: what the contract promises must hold.
  // '@' is refused before the query only: in a query it cannot read as
  // userinfo (the path starts with '/', so the authority has ended).
  const std::string before_query = path.substr(0, path.find('?'));
  if (path.empty() || path[0] != '/' || absl::StartsWith(path, "//") ||
      absl::StrContains(before_query, "@") || absl::StrContains(path, "\\") ||
      absl::StrContains(path, "#") || path.size() > limits.max_path_bytes) {
    std::abort();
  }
  for (char c : path) {
    if (c <= 0x20 || c >= 0x7f) std::abort();  // Printable ASCII only.
  }
  if (headers.size() > limits.max_headers) std::abort();
  for (const auto& [name, value] : headers) {
    if (Forbidden(name)) std::abort();
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      std::abort();
    }
  }
  return 0;
}
