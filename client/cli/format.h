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

// "connected", "needs_reauthorization" or "unspecified".
std::string UserGrantStateName(anypoint::tokenbroker::v1::UserGrantState state);

// Whether `app` acts on behalf of users (its users are listed apart).
bool IsUserApp(const anypoint::tokenbroker::v1::AppInfo& app);

// {access_token, token_type, expires_at (RFC 3339 or null), scopes, app},
// and user_id, username when the token acts for a user.
nlohmann::ordered_json TokenToJson(
    const anypoint::tokenbroker::v1::GetTokenResponse& token);

// {"apps": [...]} with the fields of AppInfo and TokenState; timestamps as
// RFC 3339 strings or null, counters as numbers. User apps also have
// "users": the fields of UserGrantInfo (state as UserGrantStateName(), token
// as a TokenState object or null). Never a token.
nlohmann::ordered_json AppsToJson(
    const anypoint::tokenbroker::v1::ListAppsResponse& apps);

// Pretty-printed JSON; invalid UTF-8 is replaced rather than thrown on.
std::string DumpJson(const nlohmann::ordered_json& json);

// The `apps` table: one row per cached token entry (one row for an app with
// none), columns NAME, GRANT, CONTROL PLANE, SCOPES, TOKEN, LAST REFRESH,
// REFRESHES, FAILURES, LAST ERROR. A user app has one row whose TOKEN says
// how many users it has; when there are user apps, UsersTable() follows
// after an empty line.
std::string AppsTable(const anypoint::tokenbroker::v1::ListAppsResponse& apps);

// The users of the user apps, one row per user (one row for a user app with
// none): APP, USER, USER ID, CONNECTED AT, SCOPES, TOKEN (valid until ... /
// none), STATE ("connected", or "NEEDS RE-AUTHORIZATION: <reason>; run
// 'tokenbrokerctl connect APP'"). Empty when no app acts on behalf of users.
// Never a token.
std::string UsersTable(const anypoint::tokenbroker::v1::ListAppsResponse& apps);

// "connected: USERNAME (USER_ID) scopes: S1,S2" (no newline).
std::string ConnectedLine(const anypoint::tokenbroker::v1::UserGrantInfo& user);

// Left-aligned columns separated by two spaces; the last column is not
// padded. Each row should have header.size() cells.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_FORMAT_H_
