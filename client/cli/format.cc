#include "client/cli/format.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstddef>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace tokenbroker::cli {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;

constexpr size_t kFingerprintHexDigits = 12;

nlohmann::ordered_json TimestampOrNull(bool has,
                                       const google::protobuf::Timestamp& t) {
  if (!has) return nullptr;
  // Sub-second digits only when present, as RFC 3339 allows.
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", ToTime(t),
                          absl::UTCTimeZone());
}

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& values) {
  return {values.begin(), values.end()};
}

std::string JoinOrDash(
    const google::protobuf::RepeatedPtrField<std::string>& values) {
  return values.empty() ? "-" : absl::StrJoin(values, ",");
}

}  // namespace

std::string Fingerprint(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         digest);
  std::string hex = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
  return hex.substr(0, kFingerprintHexDigits);
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

std::string GrantName(v1::GrantType grant) {
  switch (grant) {
    case v1::GRANT_TYPE_CLIENT_CREDENTIALS:
      return "client_credentials";
    case v1::GRANT_TYPE_AUTHORIZATION_CODE:
      return "authorization_code";
    default:
      return "unspecified";
  }
}

nlohmann::ordered_json TokenToJson(const v1::GetTokenResponse& token) {
  return {
      {"access_token", token.access_token()},
      {"token_type", token.token_type()},
      {"expires_at",
       TimestampOrNull(token.has_expires_at(), token.expires_at())},
      {"scopes", ToVector(token.scopes())},
      {"app", token.app()},
  };
}

nlohmann::ordered_json AppsToJson(const v1::ListAppsResponse& apps) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const v1::AppInfo& app : apps.apps()) {
    nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
    for (const v1::TokenState& state : app.tokens()) {
      tokens.push_back({
          {"scopes", ToVector(state.scopes())},
          {"valid", state.valid()},
          {"valid_until",
           TimestampOrNull(state.has_valid_until(), state.valid_until())},
          {"last_refresh",
           TimestampOrNull(state.has_last_refresh(), state.last_refresh())},
          {"next_refresh",
           TimestampOrNull(state.has_next_refresh(), state.next_refresh())},
          {"last_error", state.last_error()},
          {"refreshes", state.refreshes()},
          {"failures", state.failures()},
          {"token_fingerprint", state.token_fingerprint()},
      });
    }
    list.push_back({
        {"name", app.name()},
        {"grant_type", GrantName(app.grant_type())},
        {"control_plane", app.control_plane()},
        {"base_url", app.base_url()},
        {"client_id", app.client_id()},
        {"scopes", ToVector(app.scopes())},
        {"org_id", app.org_id()},
        {"environment_ids", ToVector(app.environment_ids())},
        {"tokens", std::move(tokens)},
    });
  }
  return {{"apps", std::move(list)}};
}

std::string DumpJson(const nlohmann::ordered_json& json) {
  return json.dump(2, ' ', /*ensure_ascii=*/false,
                   nlohmann::ordered_json::error_handler_t::replace);
}

std::string AppsTable(const v1::ListAppsResponse& apps) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::AppInfo& app : apps.apps()) {
    std::vector<std::string> app_cells = {
        app.name(), GrantName(app.grant_type()),
        app.control_plane().empty() ? std::string("-") : app.control_plane()};
    if (app.tokens().empty()) {
      std::vector<std::string> row = app_cells;
      row.insert(row.end(),
                 {JoinOrDash(app.scopes()), "none", "never", "0", "0", "-"});
      rows.push_back(std::move(row));
      continue;
    }
    // One row per entry, app columns repeated so that `grep APP` finds all.
    for (const v1::TokenState& state : app.tokens()) {
      std::vector<std::string> row = app_cells;
      row.push_back(state.scopes().empty() ? JoinOrDash(app.scopes())
                                           : JoinOrDash(state.scopes()));
      row.push_back(state.valid() && state.has_valid_until()
                        ? absl::StrCat("valid until ",
                                       FormatUtc(ToTime(state.valid_until())))
                        : "none");
      row.push_back(state.has_last_refresh()
                        ? FormatUtc(ToTime(state.last_refresh()))
                        : "never");
      row.push_back(absl::StrCat(state.refreshes()));
      row.push_back(absl::StrCat(state.failures()));
      row.push_back(state.last_error().empty()
                        ? "-"
                        : absl::StrReplaceAll(state.last_error(),
                                              {{"\r", " "}, {"\n", " "}}));
      rows.push_back(std::move(row));
    }
  }
  return RenderTable({"NAME", "GRANT", "CONTROL PLANE", "SCOPES", "TOKEN",
                      "LAST REFRESH", "REFRESHES", "FAILURES", "LAST ERROR"},
                     rows);
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  auto append_row = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) {
        size_t width = i < widths.size() ? widths[i] : row[i].size();
        out.append(width - row[i].size() + 2, ' ');
      }
    }
    out += '\n';
  };
  append_row(header);
  for (const auto& row : rows) append_row(row);
  return out;
}

}  // namespace tokenbroker::cli
