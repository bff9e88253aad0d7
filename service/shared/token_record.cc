#include "service/shared/token_record.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

using Json = nlohmann::json;

constexpr int kFormat = 1;

// Appends `token` as a JSON string into a buffer the caller sized, so that no
// copy of the token is left in memory the caller cannot clear (as
// nlohmann::json's growing dump buffer would). Only printable ASCII, which
// is what token endpoints send (RFC 6749 A.12); '"' and '\\' are escaped.
void AppendJsonToken(absl::string_view token, std::string* out) {
  out->push_back('"');
  for (char c : token) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

bool IsPrintableAscii(absl::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c >= ' ' && c <= '~'; });
}

// "<fence>:<revgen>:" and the envelope after it.
bool SplitHeader(absl::string_view value, int64_t* fence, int64_t* revgen,
                 absl::string_view* envelope) {
  size_t first = value.find(':');
  if (first == absl::string_view::npos) return false;
  size_t second = value.find(':', first + 1);
  if (second == absl::string_view::npos) return false;
  *envelope = value.substr(second + 1);
  return absl::SimpleAtoi(value.substr(0, first), fence) && *fence >= 0 &&
         absl::SimpleAtoi(value.substr(first + 1, second - first - 1),
                          revgen) &&
         *revgen >= 0;
}

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("shared token record: ", what));
}

}  // namespace

absl::StatusOr<std::string> SealTokenRecord(const KeyRing& keys,
                                            absl::string_view key_name,
                                            const TokenRecord& record) {
  if (!IsPrintableAscii(record.token.access_token)) {
    return absl::InvalidArgumentError(
        "shared token record: the access token holds characters outside "
        "printable ASCII; it is not shared");
  }
  Json fields = {
      {"v", kFormat},
      {"key", record.cache_key},
      {"fence", record.fence},
      {"revgen", record.revgen},
      {"token_type", record.token.token_type},
      {"issued_at_ns", absl::ToUnixNanos(record.token.issued_at)},
      {"expires_at_ns", absl::ToUnixNanos(record.token.expires_at)},
      {"scopes", record.token.scopes},
  };
  std::string head =
      fields.dump(-1, ' ', false, Json::error_handler_t::replace);
  head.pop_back();  // The closing '}'.
  const absl::string_view name = ",\"access_token\":";
  const std::string& token = record.token.access_token;
  size_t escapes = std::count_if(token.begin(), token.end(),
                                 [](char c) { return c == '"' || c == '\\'; });
  std::string plaintext;
  plaintext.reserve(head.size() + name.size() + token.size() + escapes + 3);
  plaintext.append(head).append(name.data(), name.size());
  AppendJsonToken(token, &plaintext);
  plaintext.push_back('}');
  absl::StatusOr<std::string> envelope = keys.Seal(plaintext, key_name);
  ClearSecret(&plaintext);
  if (!envelope.ok()) return envelope.status();
  return absl::StrCat(record.fence, ":", record.revgen, ":", *envelope);
}

int64_t StoredRecordFence(absl::string_view value) {
  size_t digits = 0;
  while (digits < value.size() && value[digits] >= '0' &&
         value[digits] <= '9') {
    ++digits;
  }
  int64_t fence = 0;
  if (digits == 0 || digits >= value.size() || value[digits] != ':' ||
      !absl::SimpleAtoi(value.substr(0, digits), &fence)) {
    return 0;
  }
  return fence;
}

absl::StatusOr<TokenRecord> OpenTokenRecord(const KeyRing& keys,
                                            absl::string_view key_name,
                                            absl::string_view value) {
  TokenRecord record;
  absl::string_view envelope;
  if (!SplitHeader(value, &record.fence, &record.revgen, &envelope)) {
    return Malformed("the value does not start with <fence>:<revgen>:");
  }
  TB_ASSIGN_OR_RETURN(std::string plaintext, keys.Open(envelope, key_name));
  Json json = Json::parse(plaintext, nullptr, /*allow_exceptions=*/false);
  ClearSecret(&plaintext);
  if (!json.is_object()) return Malformed("the sealed payload is not JSON");

  auto it = json.find("access_token");
  if (it == json.end() || !it->is_string()) {
    return Malformed("the sealed payload has no access token");
  }
  // Moved, not copied: the JSON's buffer (long, so on the heap) becomes the
  // token's.
  record.token.access_token = std::move(it->get_ref<std::string&>());
  auto integer = [&](const char* field, int64_t* out) {
    auto f = json.find(field);
    if (f == json.end() || !f->is_number_integer()) return false;
    *out = f->get<int64_t>();
    return true;
  };
  int64_t format = 0, fence = 0, revgen = 0, issued = 0, expires = 0;
  auto key = json.find("key");
  auto type = json.find("token_type");
  auto scopes = json.find("scopes");
  if (!integer("v", &format) || format != kFormat ||
      !integer("fence", &fence) || !integer("revgen", &revgen) ||
      !integer("issued_at_ns", &issued) ||
      !integer("expires_at_ns", &expires) || key == json.end() ||
      !key->is_string() || type == json.end() || !type->is_string() ||
      scopes == json.end() || !scopes->is_array() ||
      !std::all_of(scopes->begin(), scopes->end(),
                   [](const Json& s) { return s.is_string(); })) {
    ClearSecret(&record.token.access_token);
    return Malformed("the sealed payload lacks a field or has the wrong type");
  }
  if (fence != record.fence || revgen != record.revgen) {
    ClearSecret(&record.token.access_token);
    return absl::DataLossError(
        "shared token record: the header's fence or revocation generation "
        "differs from the sealed one (altered in Redis)");
  }
  record.cache_key = key->get<std::string>();
  record.token.token_type = type->get<std::string>();
  record.token.issued_at = absl::FromUnixNanos(issued);
  record.token.expires_at = absl::FromUnixNanos(expires);
  record.token.scopes = scopes->get<std::vector<std::string>>();
  return record;
}

}  // namespace tokenbroker
