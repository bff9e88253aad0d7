// The test-control surface: Emulator's methods that change what the emulator
// serves (scopes, revocation, secrets, token lifetimes, refresh token
// rotation, user passwords, grants, the clock, faults, counters) and the
// /_emulator/ HTTP API over them (see README.md). The control API is neither
// counted nor faulted (routes.cc).

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using internal::SetJson;
using internal::SetMessage;

absl::StatusOr<json> ParseControlBody(const httplib::Request& req) {
  const json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  return body;
}

// An integer field between min and max, if present (absent: OK, *out kept).
template <typename Int>
absl::Status GetInt(const json& body, const char* key, Int* out, int64_t min,
                    int64_t max) {
  if (!body.contains(key)) return absl::OkStatus();
  const json& value = body[key];
  if (!value.is_number_integer() || value.get<int64_t>() < min ||
      value.get<int64_t>() > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", key, "\" must be an integer between ", min, " and ", max));
  }
  *out = static_cast<Int>(value.get<int64_t>());
  return absl::OkStatus();
}

template <typename Int>
absl::Status GetRequiredInt(const json& body, const char* key, Int* out,
                            int64_t min, int64_t max) {
  if (!body.contains(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\" is required"));
  }
  return GetInt(body, key, out, min, max);
}

absl::StatusOr<Fault> ParseFault(const json& body) {
  static const std::set<std::string> kEndpoints = {
      "token",     "revoke",   "userinfo", "authorize",
      "discovery", "resource", "echo",     "*"};
  static const std::set<std::string> kKeys = {
      "endpoint", "kind", "count", "latency_ms", "retry_after_seconds"};
  for (const auto& [key, value] : body.items()) {
    if (kKeys.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key \"", key,
          "\" (use endpoint, kind, count, latency_ms, retry_after_seconds)"));
    }
  }
  Fault fault;
  if (body.contains("endpoint")) {
    if (!body["endpoint"].is_string() ||
        kEndpoints.count(body["endpoint"].get<std::string>()) == 0) {
      return absl::InvalidArgumentError(
          "\"endpoint\" must be one of token, revoke, userinfo, authorize, "
          "discovery, resource, echo, *");
    }
    fault.endpoint = body["endpoint"].get<std::string>();
  }
  if (!body.contains("kind") || !body["kind"].is_string()) {
    return absl::InvalidArgumentError("\"kind\" (a string) is required");
  }
  absl::StatusOr<FaultKind> kind =
      ParseFaultKind(body["kind"].get<std::string>());
  if (!kind.ok()) return kind.status();
  fault.kind = *kind;
  absl::Status status = GetInt(body, "count", &fault.count, -1, 1000000);
  if (status.ok()) {
    status = GetInt(body, "latency_ms", &fault.latency_ms, 0, 600000);
  }
  if (status.ok()) {
    status = GetInt(body, "retry_after_seconds", &fault.retry_after_seconds, 0,
                    86400);
  }
  if (!status.ok()) return status;
  if (fault.count == 0) {
    return absl::InvalidArgumentError(
        "\"count\" must be -1 (until cleared) or positive");
  }
  return fault;
}

json CountersToJson(const Counters& counters) {
  return json{
      {"token_requests_by_client", counters.token_requests_by_client},
      {"token_requests_by_grant_type", counters.token_requests_by_grant_type},
      {"requests_by_endpoint", counters.requests_by_endpoint},
      {"aborted_by_client", counters.aborted_by_client},
      {"connections", counters.connections},
      {"tokens_issued", counters.tokens_issued},
      {"authorize_page_views", counters.authorize_page_views},
      {"logins_ok", counters.logins_ok},
      {"logins_failed", counters.logins_failed},
      {"consents_approved", counters.consents_approved},
      {"consents_denied", counters.consents_denied},
      {"refresh_token_reuse_detected", counters.refresh_token_reuse_detected}};
}

json GrantsToJson(const std::vector<GrantInfo>& grants) {
  json out = json::array();
  for (const GrantInfo& grant : grants) {
    out.push_back({{"grant_id", grant.grant_id},
                   {"user_id", grant.user_id},
                   {"username", grant.username},
                   {"client_id", grant.client_id},
                   {"scopes", grant.scopes},
                   {"live_refresh_tokens", grant.live_refresh_tokens}});
  }
  return json{{"grants", out}};
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    default:
      return 500;
  }
}

}  // namespace

absl::Status Emulator::Impl::SetAppScopes(const std::string& client_id,
                                          std::vector<ScopeGrant> scopes) {
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown client_id ", client_id));
  }
  it->second.app.scopes = std::move(scopes);
  ++it->second.generation;
  return absl::OkStatus();
}

absl::Status Emulator::Impl::RevokeApp(const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown client_id ", client_id));
  }
  ++it->second.generation;
  return absl::OkStatus();
}

absl::Status Emulator::Impl::SetClientSecret(const std::string& client_id,
                                             const std::string& secret) {
  if (secret.empty()) {
    return absl::InvalidArgumentError("the client secret must not be empty");
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown client_id ", client_id));
  }
  it->second.app.client_secret = secret;
  return absl::OkStatus();
}

absl::Status Emulator::Impl::AddRedirectUri(const std::string& client_id,
                                            const std::string& uri) {
  if (uri.empty() || uri.find('#') != std::string::npos) {
    return absl::InvalidArgumentError(
        "a redirect URI is an absolute URI without a fragment");
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown client_id ", client_id));
  }
  std::vector<std::string>& uris = it->second.app.redirect_uris;
  if (std::find(uris.begin(), uris.end(), uri) == uris.end()) {
    uris.push_back(uri);
  }
  return absl::OkStatus();
}

absl::Status Emulator::Impl::SetRotateRefreshTokens(
    const std::string& client_id, bool rotate) {
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown client_id ", client_id));
  }
  it->second.rotate_refresh_tokens = rotate;
  return absl::OkStatus();
}

absl::Status Emulator::Impl::SetRefreshTokenLifetime(
    const std::string& client_id, int64_t seconds) {
  if (seconds < 1) {
    return absl::InvalidArgumentError(
        "the refresh token lifetime must be at least 1 second");
  }
  absl::MutexLock lock(&mu_);
  auto it = apps_.find(client_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown client_id ", client_id));
  }
  it->second.app.refresh_token_lifetime_seconds = seconds;
  return absl::OkStatus();
}

absl::Status Emulator::Impl::SetUserPassword(const std::string& user,
                                             const std::string& password) {
  if (password.empty()) {
    return absl::InvalidArgumentError("the password must not be empty");
  }
  const UserFixture* fixture = FindUser(user, /*or_username=*/true);
  if (fixture == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown user ", user));
  }
  absl::MutexLock lock(&mu_);
  UserState& state = users_[fixture->id];
  state.password = password;
  ++state.epoch;  // codes and signed-in pages not redeemed yet
  for (auto& [id, grant] : grants_) {
    if (grant.user_id == fixture->id) grant.revoked = true;
  }
  return absl::OkStatus();
}

absl::Status Emulator::Impl::RevokeGrant(const std::string& grant_id) {
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(grant_id);
  if (it == grants_.end() || it->second.revoked) {
    return absl::NotFoundError("no live grant has this id");
  }
  it->second.revoked = true;
  return absl::OkStatus();
}

std::vector<GrantInfo> Emulator::Impl::ListGrants() const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  std::vector<std::pair<int64_t, GrantInfo>> live;
  for (const auto& [id, grant] : grants_) {
    if (grant.revoked) continue;
    GrantInfo info;
    info.grant_id = id;
    info.user_id = grant.user_id;
    const UserFixture* user = FindUser(grant.user_id);
    if (user != nullptr) info.username = user->username;
    info.client_id = grant.client_id;
    info.scopes = grant.scopes;
    for (const std::string& token : grant.refresh_tokens) {
      auto record = tokens_.find(token);
      if (record != tokens_.end() && RefreshTokenLive(record->second, now)) {
        ++info.live_refresh_tokens;
      }
    }
    live.emplace_back(grant.sequence, std::move(info));
  }
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<GrantInfo> out;
  for (auto& entry : live) out.push_back(std::move(entry.second));
  return out;
}

absl::Status Emulator::Impl::AdvanceTime(absl::Duration by) {
  if (by < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("time only moves forward");
  }
  absl::MutexLock lock(&mu_);
  time_offset_ += by;
  return absl::OkStatus();
}

void Emulator::Impl::HandleControl(const std::string& what,
                                   const httplib::Request& req,
                                   httplib::Response& res) {
  const json ok = {{"ok", true}};
  if (what == "counters") {
    SetJson(res, 200, CountersToJson(GetCounters()));
    return;
  }
  if (what == "reset-counters") {
    ResetCounters();
    SetJson(res, 200, ok);
    return;
  }
  if (what == "clear-faults") {
    ClearFaults();
    SetJson(res, 200, ok);
    return;
  }
  if (what == "grants") {
    SetJson(res, 200, GrantsToJson(ListGrants()));
    return;
  }
  if (what == "revoke" || what == "revoke-grant") {
    const absl::Status status = what == "revoke" ? RevokeApp(req.matches[1])
                                                 : RevokeGrant(req.matches[1]);
    if (!status.ok())
      return SetMessage(res, HttpStatusOf(status), status.message());
    SetJson(res, 200, ok);
    return;
  }
  absl::StatusOr<json> body = ParseControlBody(req);
  if (!body.ok()) return SetMessage(res, 400, body.status().message());
  absl::Status status;
  if (what == "scopes") {
    const json& scopes = (*body)["scopes"];
    if (!body->contains("scopes") || !scopes.is_array()) {
      return SetMessage(res, 400, "\"scopes\" (a list) is required");
    }
    std::vector<ScopeGrant> grants;
    for (const json& s : scopes) {
      ScopeGrant grant;
      if (s.is_string()) {
        grant.scope = s.get<std::string>();
      } else if (s.is_object() && s.contains("scope") &&
                 s["scope"].is_string()) {
        grant.scope = s["scope"].get<std::string>();
        for (const char* key : {"org", "env"}) {
          if (!s.contains(key) || s[key].is_null()) continue;
          if (!s[key].is_string()) {
            return SetMessage(res, 400,
                              absl::StrCat("\"", key, "\" must be a string"));
          }
          (key[0] == 'o' ? grant.org : grant.env) = s[key].get<std::string>();
        }
      }
      if (grant.scope.empty()) {
        return SetMessage(res, 400,
                          "each scope must be {\"scope\":\"...\",\"org\":..,"
                          "\"env\":..} with a non-empty scope");
      }
      grants.push_back(std::move(grant));
    }
    status = SetAppScopes(req.matches[1], std::move(grants));
  } else if (what == "secret") {
    if (!body->contains("client_secret") ||
        !(*body)["client_secret"].is_string()) {
      return SetMessage(res, 400, "\"client_secret\" (a string) is required");
    }
    status = SetClientSecret(req.matches[1],
                             (*body)["client_secret"].get<std::string>());
  } else if (what == "token-lifetime") {
    int seconds = 0;
    status = GetRequiredInt(*body, "seconds", &seconds, 1, 86400 * 365);
    if (status.ok()) SetTokenLifetime(seconds);
  } else if (what == "refresh-token-lifetime") {
    int64_t seconds = 0;
    status =
        GetRequiredInt(*body, "seconds", &seconds, 1, int64_t{86400} * 3650);
    if (status.ok()) status = SetRefreshTokenLifetime(req.matches[1], seconds);
  } else if (what == "redirect-uris") {
    if (!body->contains("redirect_uri") ||
        !(*body)["redirect_uri"].is_string()) {
      return SetMessage(res, 400, "\"redirect_uri\" (a string) is required");
    }
    status = AddRedirectUri(req.matches[1],
                            (*body)["redirect_uri"].get<std::string>());
  } else if (what == "rotation") {
    if (!body->contains("rotate") || !(*body)["rotate"].is_boolean()) {
      return SetMessage(res, 400, "\"rotate\" (true or false) is required");
    }
    status =
        SetRotateRefreshTokens(req.matches[1], (*body)["rotate"].get<bool>());
  } else if (what == "password") {
    if (!body->contains("password") || !(*body)["password"].is_string()) {
      return SetMessage(res, 400, "\"password\" (a string) is required");
    }
    status =
        SetUserPassword(req.matches[1], (*body)["password"].get<std::string>());
  } else if (what == "advance-time") {
    int64_t seconds = 0;
    status =
        GetRequiredInt(*body, "seconds", &seconds, 0, int64_t{86400} * 3650);
    if (status.ok()) status = AdvanceTime(absl::Seconds(seconds));
  } else if (what == "add-fault") {
    absl::StatusOr<Fault> fault = ParseFault(*body);
    status = fault.status();
    if (fault.ok()) AddFault(*std::move(fault));
  }
  if (!status.ok())
    return SetMessage(res, HttpStatusOf(status), status.message());
  SetJson(res, 200, ok);
}

}  // namespace tokenbroker::emulator
