#include "service/store/grant_store.h"

#include <algorithm>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "service/common/path_segments.h"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxKeyFieldBytes = 256;

absl::Status CheckKeyField(absl::string_view name, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " is empty"));
  }
  if (value.size() > kMaxKeyFieldBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grant ", name, " is longer than ", kMaxKeyFieldBytes, " bytes"));
  }
  if (value.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " contains a NUL byte"));
  }
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::Status CheckText(absl::string_view name, absl::string_view value) {
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime(absl::RFC3339_full, time, absl::UTCTimeZone());
}

// Appends `text` as a JSON string. Only for text ValidateGrant() accepted
// (printable ASCII), so '"' and '\\' are the only characters to escape.
void AppendJsonAsciiString(absl::string_view text, std::string* out) {
  out->push_back('"');
  for (char c : text) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

// Reads the record's JSON (already authenticated). False, with `*what` set,
// if a field is missing or of the wrong type. Clears the JSON's copy of the
// refresh token.
bool ParseRecordJson(Json& record, UserGrant* grant, std::string* what) {
  auto text = [&](const char* name, std::string* out) {
    auto it = record.find(name);
    if (it == record.end() || !it->is_string()) {
      *what = absl::StrCat("its sealed record has no string \"", name, "\"");
      return false;
    }
    *out = it->get_ref<const std::string&>();
    return true;
  };
  auto time_field = [&](const char* name, absl::Time* out) {
    std::string value;
    std::string error;
    if (!text(name, &value)) return false;
    if (!absl::ParseTime(absl::RFC3339_full, value, out, &error)) {
      *what = absl::StrCat("its sealed record's \"", name,
                           "\" is not an RFC 3339 time");
      return false;
    }
    return true;
  };
  auto token = record.find("refresh_token");
  if (token == record.end() || !token->is_string()) {
    *what = "its sealed record has no string \"refresh_token\"";
    return false;
  }
  std::string& token_text = token->get_ref<std::string&>();
  grant->refresh_token.reserve(token_text.size());
  grant->refresh_token.assign(token_text);
  ClearSecret(&token_text);

  if (!text("app", &grant->app) || !text("user_id", &grant->user_id) ||
      !text("username", &grant->username) ||
      !text("reauthorization_reason", &grant->reauthorization_reason) ||
      !time_field("connected_at", &grant->connected_at) ||
      !time_field("updated_at", &grant->updated_at)) {
    return false;
  }
  auto scopes = record.find("scopes");
  if (scopes == record.end() || !scopes->is_array() ||
      !std::all_of(scopes->begin(), scopes->end(),
                   [](const Json& scope) { return scope.is_string(); })) {
    *what = "its sealed record's \"scopes\" is not a list of strings";
    return false;
  }
  grant->scopes = scopes->get<std::vector<std::string>>();
  auto reauth = record.find("needs_reauthorization");
  if (reauth == record.end() || !reauth->is_boolean()) {
    *what = "its sealed record has no boolean \"needs_reauthorization\"";
    return false;
  }
  grant->needs_reauthorization = reauth->get<bool>();
  auto version = record.find("version");
  if (version == record.end() || !version->is_number_integer()) {
    *what = "its sealed record has no integer \"version\"";
    return false;
  }
  grant->version = version->get<int64_t>();
  return true;
}

}  // namespace

void PrintTo(const UserGrant& grant, std::ostream* out) {
  *out << "UserGrant{app=\"" << grant.app << "\", user_id=\"" << grant.user_id
       << "\", username=\"" << grant.username << "\", refresh_token=<"
       << grant.refresh_token.size() << " bytes>, scopes=["
       << absl::StrJoin(grant.scopes, " ")
       << "], connected_at=" << absl::FormatTime(grant.connected_at)
       << ", updated_at=" << absl::FormatTime(grant.updated_at)
       << ", needs_reauthorization=" << grant.needs_reauthorization
       << ", reauthorization_reason=\"" << grant.reauthorization_reason
       << "\", version=" << grant.version << "}";
}

absl::Status ValidateGrantKey(absl::string_view app,
                              absl::string_view user_id) {
  TB_RETURN_IF_ERROR(CheckKeyField("app", app));
  return CheckKeyField("user_id", user_id);
}

absl::Status ValidateGrant(const UserGrant& grant) {
  TB_RETURN_IF_ERROR(ValidateGrantKey(grant.app, grant.user_id));
  // RFC 6749 A.17: refresh-token = 1*VSCHAR (%x20-7E).
  if (!std::all_of(grant.refresh_token.begin(), grant.refresh_token.end(),
                   [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    return absl::InvalidArgumentError(
        "grant refresh_token holds characters other than printable ASCII");
  }
  TB_RETURN_IF_ERROR(CheckText("username", grant.username));
  TB_RETURN_IF_ERROR(
      CheckText("reauthorization_reason", grant.reauthorization_reason));
  for (const std::string& scope : grant.scopes) {
    TB_RETURN_IF_ERROR(CheckText("scope", scope));
  }
  return absl::OkStatus();
}

absl::Status ValidateVersionedPut(const UserGrant& grant,
                                  int64_t expected_version) {
  TB_RETURN_IF_ERROR(ValidateGrant(grant));
  if (grant.version <= expected_version) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grant version ", grant.version,
        " is not above the version it replaces (", expected_version, ")"));
  }
  return absl::OkStatus();
}

std::string GrantRecordJson(const UserGrant& grant) {
  Json record = {
      {"app", grant.app},
      {"user_id", grant.user_id},
      {"username", grant.username},
      {"scopes", grant.scopes},
      {"connected_at", Rfc3339(grant.connected_at)},
      {"updated_at", Rfc3339(grant.updated_at)},
      {"needs_reauthorization", grant.needs_reauthorization},
      {"reauthorization_reason", grant.reauthorization_reason},
      {"version", grant.version},
  };
  std::string fields =
      record.dump(-1, ' ', false, Json::error_handler_t::replace);
  fields.pop_back();  // the closing '}'
  const absl::string_view key = ",\"refresh_token\":";
  size_t escapes =
      std::count_if(grant.refresh_token.begin(), grant.refresh_token.end(),
                    [](char c) { return c == '"' || c == '\\'; });
  std::string plaintext;
  plaintext.reserve(fields.size() + key.size() + grant.refresh_token.size() +
                    escapes + 3);
  plaintext.append(fields).append(key.data(), key.size());
  AppendJsonAsciiString(grant.refresh_token, &plaintext);
  plaintext.push_back('}');
  return plaintext;
}

absl::StatusOr<UserGrant> ParseGrantRecordJson(std::string* json) {
  // Never report the parser's message: it quotes the content.
  Json record = Json::parse(*json, nullptr, /*allow_exceptions=*/false);
  ClearSecret(json);
  if (record.is_discarded() || !record.is_object()) {
    return absl::DataLossError("its sealed record is not a JSON object");
  }
  UserGrant grant;
  std::string what;
  if (!ParseRecordJson(record, &grant, &what)) {
    ClearSecret(&grant.refresh_token);
    return absl::DataLossError(what);
  }
  return grant;
}

absl::StatusOr<std::optional<UserGrant>> GrantStore::Read(
    absl::string_view app, absl::string_view user_id) {
  TB_RETURN_IF_ERROR(ValidateGrantKey(app, user_id));
  GrantStoreLoad load = LoadAll();
  std::optional<UserGrant> found;
  for (UserGrant& grant : load.grants) {
    if (grant.app == app && grant.user_id == user_id) {
      found = std::move(grant);
    } else {
      ClearSecret(&grant.refresh_token);
    }
  }
  if (!found.has_value()) TB_RETURN_IF_ERROR(load.error);
  return found;
}

absl::Status GrantStore::PutIfVersion(const UserGrant& grant,
                                      int64_t expected_version) {
  TB_RETURN_IF_ERROR(ValidateVersionedPut(grant, expected_version));
  absl::MutexLock lock(&put_if_version_mu_);
  TB_ASSIGN_OR_RETURN(std::optional<UserGrant> stored,
                      Read(grant.app, grant.user_id));
  const int64_t stored_version = stored.has_value() ? stored->version : 0;
  if (stored.has_value()) ClearSecret(&stored->refresh_token);
  if (stored_version != expected_version) {
    return absl::AbortedError(absl::StrCat(
        "grant store: the record of app ", grant.app, " is at version ",
        stored_version, ", not ", expected_version,
        " (written or removed meanwhile): read it again"));
  }
  return Put(grant);
}

}  // namespace tokenbroker
