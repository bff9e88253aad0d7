// Output formats of tokenbrokerctl: fingerprints, times, tables and JSON.
// Pure functions of their arguments; thread-compatible.
#ifndef TOKENBROKER_CLIENT_CLI_FORMAT_H_
#define TOKENBROKER_CLIENT_CLI_FORMAT_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/broker_admin.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace tokenbroker::cli {

// The first 12 lowercase hex digits of SHA-256(token): names a token in
// output and audit records without revealing it.
std::string Fingerprint(absl::string_view token);

// `t` in UTC as RFC 3339 to the second, e.g. "2024-05-01T10:00:00Z".
std::string FormatUtc(absl::Time t);

absl::Time ToTime(const google::protobuf::Timestamp& timestamp);

// "client_credentials", "authorization_code" or "unspecified".
std::string GrantName(anypoint::tokenbroker::v1::GrantType grant);

// {access_token, token_type, expires_at (RFC 3339 or null), scopes, app}.
nlohmann::ordered_json TokenToJson(
    const anypoint::tokenbroker::v1::GetTokenResponse& token);

// {"apps": [...]} with the fields of AppInfo and TokenState; timestamps as
// RFC 3339 strings or null, counters as numbers.
nlohmann::ordered_json AppsToJson(
    const anypoint::tokenbroker::v1::ListAppsResponse& apps);

// Pretty-printed JSON; invalid UTF-8 is replaced rather than thrown on.
std::string DumpJson(const nlohmann::ordered_json& json);

// The `apps` table: one row per cached token entry (one row for an app with
// none), columns NAME, GRANT, CONTROL PLANE, SCOPES, TOKEN, LAST REFRESH,
// REFRESHES, FAILURES, LAST ERROR.
std::string AppsTable(const anypoint::tokenbroker::v1::ListAppsResponse& apps);

// Left-aligned columns separated by two spaces; the last column is not
// padded. Each row should have header.size() cells.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_FORMAT_H_
