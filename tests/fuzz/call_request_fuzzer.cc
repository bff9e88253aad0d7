// libFuzzer target: the Call request validator (ValidateCallRequest) and the
// method classifier. Beyond "no crash", it checks the validator's promises
// on every request it accepts: the path is origin-form and cannot leave the
// app's base URL, the route matcher's segment splitter accepts it too, no
// segment holds a path parameter (';') or invalid UTF-8 at any level of
// decoding, and no forbidden or override header gets through. The checks
// here are written independently of the validator's code.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "service/common/path_segments.h"
#include "service/proxy/call_request.h"

namespace {

bool Forbidden(const std::string& name) {
  std::string lower = absl::AsciiStrToLower(name);
  return lower == "authorization" || lower == "host" || lower == "cookie" ||
         lower == "connection" || lower == "transfer-encoding" ||
         lower == "content-length" || absl::StartsWith(lower, "proxy-") ||
         // Method, path, host and client address overrides.
         lower == "x-http-method-override" || lower == "x-http-method" ||
         lower == "x-method-override" || lower == "x-original-url" ||
         lower == "x-original-method" || lower == "x-rewrite-url" ||
         lower == "forwarded" || lower == "x-real-ip" ||
         absl::StartsWith(lower, "x-forwarded-");
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes escapes once; a malformed one aborts (the validator refuses them).
std::string DecodeOrAbort(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || Hex(in[i + 1]) < 0 || Hex(in[i + 2]) < 0) {
      std::abort();
    }
    out.push_back(static_cast<char>(Hex(in[i + 1]) * 16 + Hex(in[i + 2])));
    i += 2;
  }
  return out;
}

// UTF-8 by value: decode the code point, then refuse what is longer than
// needed, a surrogate or above U+10FFFF.
bool ShortestFormUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80         ? 1
               : (b >> 5) == 6  ? 2
               : (b >> 4) == 14 ? 3
               : (b >> 3) == 30 ? 4
                                : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? b : b & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      unsigned char c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n;
  }
  return true;
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
  // The route matcher sees the same path.
  if (!tokenbroker::SplitPathSegments(path).ok()) std::abort();
  // No path parameter and only valid UTF-8, at every level of decoding.
  std::string level = before_query;
  for (int i = 0; i < tokenbroker::kMaxPercentDecodeLevels; ++i) {
    if (absl::StrContains(level, ";") || !ShortestFormUtf8(level)) {
      std::abort();
    }
    if (!absl::StrContains(level, "%")) break;
    level = DecodeOrAbort(level);
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
