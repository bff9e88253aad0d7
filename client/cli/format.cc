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

// A table cell holds one line.
std::string OneLine(const std::string& text) {
  return absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " "}});
}

std::string ValidityCell(const v1::TokenState& state) {
  return state.valid() && state.has_valid_until()
             ? absl::StrCat("valid until ",
                            FormatUtc(ToTime(state.valid_until())))
             : "none";
}

nlohmann::ordered_json TokenStateToJson(const v1::TokenState& state) {
  return {
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
  };
}

nlohmann::ordered_json UserToJson(const v1::UserGrantInfo& user) {
  return {
      {"user_id", user.user_id()},
      {"username", user.username()},
      {"scopes", ToVector(user.scopes())},
      {"connected_at",
       TimestampOrNull(user.has_connected_at(), user.connected_at())},
      {"updated_at", TimestampOrNull(user.has_updated_at(), user.updated_at())},
      {"state", UserGrantStateName(user.state())},
      {"reason", user.reason()},
      {"token", user.has_token() ? TokenStateToJson(user.token())
                                 : nlohmann::ordered_json(nullptr)},
  };
}

// The TOKEN cell of a user app's row in the apps table.
std::string UsersSummary(const v1::AppInfo& app) {
  int needs_reauthorization = 0;
  for (const v1::UserGrantInfo& user : app.users()) {
    if (user.state() == v1::USER_GRANT_STATE_NEEDS_REAUTHORIZATION) {
      ++needs_reauthorization;
    }
  }
  if (app.users().empty()) return "no user connected";
  std::string summary =
      absl::StrCat(app.users_size(), " user", app.users_size() == 1 ? "" : "s");
  if (needs_reauthorization > 0) {
    absl::StrAppend(&summary, " (", needs_reauthorization,
                    needs_reauthorization == 1 ? " needs" : " need",
                    " re-authorization)");
  }
  return summary;
}

std::string StateCell(const v1::AppInfo& app, const v1::UserGrantInfo& user) {
  switch (user.state()) {
    case v1::USER_GRANT_STATE_CONNECTED:
      return "connected";
    case v1::USER_GRANT_STATE_NEEDS_REAUTHORIZATION:
      return absl::StrCat("NEEDS RE-AUTHORIZATION",
                          user.reason().empty() ? "" : ": ",
                          OneLine(user.reason()),
                          "; run 'tokenbrokerctl connect ", app.name(), "'");
    default:
      return "unknown";
  }
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

std::string UserGrantStateName(v1::UserGrantState state) {
  switch (state) {
    case v1::USER_GRANT_STATE_CONNECTED:
      return "connected";
    case v1::USER_GRANT_STATE_NEEDS_REAUTHORIZATION:
      return "needs_reauthorization";
    default:
      return "unspecified";
  }
}

bool IsUserApp(const v1::AppInfo& app) {
  return app.grant_type() == v1::GRANT_TYPE_AUTHORIZATION_CODE ||
         !app.users().empty();
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
  nlohmann::ordered_json json = {
      {"access_token", token.access_token()},
      {"token_type", token.token_type()},
      {"expires_at",
       TimestampOrNull(token.has_expires_at(), token.expires_at())},
      {"scopes", ToVector(token.scopes())},
      {"app", token.app()},
  };
  if (!token.user_id().empty() || !token.username().empty()) {
    json["user_id"] = token.user_id();
    json["username"] = token.username();
  }
  return json;
}

nlohmann::ordered_json AppsToJson(const v1::ListAppsResponse& apps) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const v1::AppInfo& app : apps.apps()) {
    nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
    for (const v1::TokenState& state : app.tokens()) {
      tokens.push_back(TokenStateToJson(state));
    }
    nlohmann::ordered_json entry = {
        {"name", app.name()},
        {"grant_type", GrantName(app.grant_type())},
        {"control_plane", app.control_plane()},
        {"base_url", app.base_url()},
        {"client_id", app.client_id()},
        {"scopes", ToVector(app.scopes())},
        {"org_id", app.org_id()},
        {"environment_ids", ToVector(app.environment_ids())},
        {"tokens", std::move(tokens)},
    };
    // Only user apps: the JSON of other apps stays as it was.
    if (IsUserApp(app)) {
      nlohmann::ordered_json users = nlohmann::ordered_json::array();
      for (const v1::UserGrantInfo& user : app.users()) {
        users.push_back(UserToJson(user));
      }
      entry["users"] = std::move(users);
    }
    list.push_back(std::move(entry));
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
    if (IsUserApp(app) && app.tokens().empty()) {
      // Its tokens are its users', listed by UsersTable().
      std::vector<std::string> row = app_cells;
      row.insert(row.end(), {JoinOrDash(app.scopes()), UsersSummary(app), "-",
                             "-", "-", "-"});
      rows.push_back(std::move(row));
      continue;
    }
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
      row.push_back(ValidityCell(state));
      row.push_back(state.has_last_refresh()
                        ? FormatUtc(ToTime(state.last_refresh()))
                        : "never");
      row.push_back(absl::StrCat(state.refreshes()));
      row.push_back(absl::StrCat(state.failures()));
      row.push_back(state.last_error().empty() ? "-"
                                               : OneLine(state.last_error()));
      rows.push_back(std::move(row));
    }
  }
  std::string table =
      RenderTable({"NAME", "GRANT", "CONTROL PLANE", "SCOPES", "TOKEN",
                   "LAST REFRESH", "REFRESHES", "FAILURES", "LAST ERROR"},
                  rows);
  std::string users = UsersTable(apps);
  if (!users.empty()) absl::StrAppend(&table, "\n", users);
  return table;
}

std::string UsersTable(const v1::ListAppsResponse& apps) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::AppInfo& app : apps.apps()) {
    if (!IsUserApp(app)) continue;
    if (app.users().empty()) {
      rows.push_back({app.name(), "-", "-", "-", "-", "none",
                      absl::StrCat("no user connected; run 'tokenbrokerctl "
                                   "connect ",
                                   app.name(), "'")});
      continue;
    }
    for (const v1::UserGrantInfo& user : app.users()) {
      rows.push_back({
          app.name(),
          user.username().empty() ? "-" : OneLine(user.username()),
          user.user_id().empty() ? "-" : OneLine(user.user_id()),
          user.has_connected_at() ? FormatUtc(ToTime(user.connected_at()))
                                  : "-",
          JoinOrDash(user.scopes()),
          user.has_token() ? ValidityCell(user.token()) : "none",
          StateCell(app, user),
      });
    }
  }
  if (rows.empty()) return "";
  return RenderTable(
      {"APP", "USER", "USER ID", "CONNECTED AT", "SCOPES", "TOKEN", "STATE"},
      rows);
}

std::string ConnectedLine(const v1::UserGrantInfo& user) {
  return absl::StrCat("connected: ", OneLine(user.username()), " (",
                      OneLine(user.user_id()),
                      ") scopes: ", JoinOrDash(user.scopes()));
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
