// ParseRedisAddress (declared in redis_client.h).

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/redis/redis_client.h"

namespace tokenbroker {

absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view text) {
  RedisAddress address;
  if (absl::StartsWith(text, "unix:")) {
    address.unix_path = std::string(text.substr(5));
    if (address.unix_path.empty() || address.unix_path[0] != '/') {
      return absl::InvalidArgumentError(
          "a Redis unix socket address must be unix:/absolute/path");
    }
    return address;
  }
  absl::string_view host;
  absl::string_view port;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          "a Redis IPv6 address must be [address]:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "a Redis address must be host:port, [ipv6]:port or unix:/path");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "put an IPv6 Redis address in brackets: [address]:port");
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError("the Redis address has no host");
  }
  for (char c : host) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c)) || c == '/' ||
        c == '[' || c == ']') {
      return absl::InvalidArgumentError(
          "the Redis host holds a character not allowed in a host name");
    }
  }
  int number = 0;
  if (port.empty() ||
      port.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
    return absl::InvalidArgumentError(
        "the Redis port must be a number from 1 to 65535");
  }
  address.host = std::string(host);
  address.port = number;
  return address;
}

}  // namespace tokenbroker
