#include "service/shared/shared_keys.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/common/token_fingerprint.h"

namespace tokenbroker {
namespace {

constexpr size_t kKeyHashDigits = 32;
constexpr size_t kMaxPrefixLength = 64;

bool ParseNumber(absl::string_view text, int64_t* out) {
  return !text.empty() && absl::SimpleAtoi(text, out) && *out >= 0;
}

}  // namespace

SharedKeys::SharedKeys(std::string prefix) : prefix_(std::move(prefix)) {}

std::string SharedKeys::KeyHash(absl::string_view cache_key) {
  return Sha256Hex(cache_key).substr(0, kKeyHashDigits);
}

std::string SharedKeys::Token(absl::string_view app,
                              absl::string_view hash) const {
  return absl::StrCat(prefix_, "token:", app, ":", hash);
}

std::string SharedKeys::Lease(absl::string_view app,
                              absl::string_view hash) const {
  return absl::StrCat(prefix_, "lease:", app, ":", hash);
}

std::string SharedKeys::Fence(absl::string_view app,
                              absl::string_view hash) const {
  return absl::StrCat(prefix_, "fence:", app, ":", hash);
}

std::string SharedKeys::Grant(absl::string_view app,
                              absl::string_view user_id) const {
  return absl::StrCat(prefix_, "grant:", app, ":", user_id);
}

std::string SharedKeys::Revgen() const {
  return absl::StrCat(prefix_, "revgen");
}

std::string SharedKeys::ConfigGeneration() const {
  return absl::StrCat(prefix_, "config_generation");
}

std::string SharedKeys::Events() const {
  return absl::StrCat(prefix_, "events");
}

std::string SharedKeys::RevgenUserField(absl::string_view app,
                                        absl::string_view user_id) {
  return absl::StrCat(app, "\x1f", user_id);
}

absl::Status ValidateKeyPrefix(absl::string_view prefix) {
  if (prefix.size() > kMaxPrefixLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Redis key prefix is longer than ", kMaxPrefixLength,
                     " characters"));
  }
  for (char c : prefix) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "the Redis key prefix may hold only printable ASCII characters "
          "without spaces");
    }
  }
  return absl::OkStatus();
}

std::string FormatSharedMessage(const SharedMessage& m) {
  switch (m.type) {
    case SharedMessage::Type::kToken:
      return absl::StrCat("token ", m.app, " ", m.hash, " ", m.number);
    case SharedMessage::Type::kFailed:
      return absl::StrCat("failed ", m.app, " ", m.hash, " ", m.number, " ",
                          m.code);
    case SharedMessage::Type::kRevoke:
      return absl::StrCat("revoke ", m.app, " ", m.number);
    case SharedMessage::Type::kRevokeUser:
      return absl::StrCat("revoke_user ", m.app, " ", m.number, " ", m.user);
    case SharedMessage::Type::kGrant:
      return absl::StrCat("grant ", m.app, " ", m.user, " ", m.number);
    case SharedMessage::Type::kReload:
      return absl::StrCat("reload ", m.number);
  }
  return "";
}

std::optional<SharedMessage> ParseSharedMessage(absl::string_view payload) {
  SharedMessage m;
  // The user id, last, may hold spaces: split off only the fixed words.
  auto split = [&](int words) {
    std::vector<std::string> parts =
        absl::StrSplit(payload, absl::MaxSplits(' ', words - 1));
    return parts;
  };
  size_t space = payload.find(' ');
  absl::string_view type = payload.substr(0, space);
  if (type == "token" || type == "failed") {
    std::vector<std::string> p = split(type == "token" ? 4 : 5);
    if (p.size() != (type == "token" ? 4u : 5u) || p[1].empty() ||
        p[2].empty() || !ParseNumber(p[3], &m.number)) {
      return std::nullopt;
    }
    m.type = type == "token" ? SharedMessage::Type::kToken
                             : SharedMessage::Type::kFailed;
    m.app = p[1];
    m.hash = p[2];
    if (m.type == SharedMessage::Type::kFailed) {
      int64_t code = 0;
      if (!ParseNumber(p[4], &code) || code > 16) return std::nullopt;
      m.code = static_cast<int>(code);
    }
    return m;
  }
  if (type == "revoke") {
    std::vector<std::string> p = split(3);
    if (p.size() != 3 || p[1].empty() || !ParseNumber(p[2], &m.number)) {
      return std::nullopt;
    }
    m.type = SharedMessage::Type::kRevoke;
    m.app = p[1];
    return m;
  }
  if (type == "revoke_user") {
    std::vector<std::string> p = split(4);
    if (p.size() != 4 || p[1].empty() || p[3].empty() ||
        !ParseNumber(p[2], &m.number)) {
      return std::nullopt;
    }
    m.type = SharedMessage::Type::kRevokeUser;
    m.app = p[1];
    m.user = p[3];
    return m;
  }
  if (type == "grant") {
    // grant <app> <user id> <version>: the version is the last word.
    std::vector<std::string> p = split(3);
    size_t last = p.size() == 3 ? p[2].rfind(' ') : std::string::npos;
    if (last == std::string::npos || p[1].empty() || last == 0 ||
        !ParseNumber(absl::string_view(p[2]).substr(last + 1), &m.number)) {
      return std::nullopt;
    }
    m.type = SharedMessage::Type::kGrant;
    m.app = p[1];
    m.user = p[2].substr(0, last);
    return m;
  }
  if (type == "reload") {
    std::vector<std::string> p = split(2);
    if (p.size() != 2 || !ParseNumber(p[1], &m.number)) return std::nullopt;
    m.type = SharedMessage::Type::kReload;
    return m;
  }
  return std::nullopt;
}

}  // namespace tokenbroker
