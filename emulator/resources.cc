// The resource endpoints: GET /accounts/api/me, environments, design center
// projects, exchange search, cloudhub applications, and the echo endpoints
// (/_emulator/echo, /_emulator/authed-echo). Each validates the bearer token
// (Authenticate, oauth.cc) and checks its scopes for the org/env context the
// request names (Authorize, here), as anypoint-api.md models it; a user
// token also needs its user to be a member of that org.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "emulator/emulator.h"
#include "emulator/emulator_impl.h"
#include "emulator/http_helpers.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using internal::kMaxEchoBytes;
using internal::SetJson;
using internal::SetMessage;

}  // namespace

const OrgFixture* Emulator::Impl::FindOrg(const std::string& id) const {
  for (const OrgFixture& org : fixture_.organizations) {
    if (org.id == id) return &org;
  }
  return nullptr;
}

const UserFixture* Emulator::Impl::FindUser(const std::string& id,
                                            bool or_username) const {
  for (const UserFixture& user : fixture_.users) {
    if (user.id == id) return &user;
  }
  if (!or_username) return nullptr;
  for (const UserFixture& user : fixture_.users) {
    if (user.username == id) return &user;
  }
  return nullptr;
}

bool Emulator::Impl::IsMember(const UserFixture& user,
                              const std::string& org_id) {
  return user.org_id == org_id ||
         std::find(user.org_ids.begin(), user.org_ids.end(), org_id) !=
             user.org_ids.end();
}

bool Emulator::Impl::Authorize(const Grant& grant,
                               const std::vector<std::string>& any_of,
                               const std::string& org, const std::string& env,
                               httplib::Response& res) {
  if (!grant.user_id.empty() && !org.empty()) {
    // A user acts only inside the organizations they belong to, whatever
    // the app's scopes say.
    const UserFixture* user = FindUser(grant.user_id);
    if (user == nullptr || !IsMember(*user, org)) {
      SetJson(
          res, 403,
          json{{"message",
                absl::StrCat("Forbidden: the user ",
                             user == nullptr ? grant.user_id : user->username,
                             " is not a member of organization ", org,
                             "; a user's token reaches only the organizations "
                             "the user belongs to")},
               {"not_a_member_of", org}});
      return false;
    }
  }
  for (const std::string& wanted : any_of) {
    if (wanted == "profile") return true;
    for (const ScopeGrant& scope : grant.scopes) {
      if (scope.scope != wanted) continue;
      if (!scope.org.empty() && !org.empty() && scope.org != org) continue;
      if (!scope.env.empty() && !env.empty() && scope.env != env) continue;
      return true;
    }
  }
  std::string context;
  if (!org.empty()) absl::StrAppend(&context, " in organization ", org);
  if (!env.empty()) absl::StrAppend(&context, " and environment ", env);
  SetJson(res, 403,
          json{{"message",
                absl::StrCat("Forbidden: the connected app ", grant.client_id,
                             " lacks the scope ", absl::StrJoin(any_of, " or "),
                             context,
                             "; assign it to the app in Access Management")},
               {"missing_scope", any_of.front()}});
  return false;
}

void Emulator::Impl::HandleMe(const httplib::Request& req,
                              httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;  // profile is always granted
  if (grant->user_id.empty()) {
    SetJson(res, 200,
            json{{"client",
                  {{"client_id", grant->client_id},
                   {"name", grant->app_name},
                   {"org_id", grant->app_org}}}});
    return;
  }
  const UserFixture* user = FindUser(grant->user_id);
  if (user == nullptr) {
    SetMessage(res, 404, "the token's user is not in the fixture");
    return;
  }
  const OrgFixture* org = FindOrg(user->org_id);
  json member_of = json::array();
  for (const OrgFixture& o : fixture_.organizations) {
    if (IsMember(*user, o.id)) {
      member_of.push_back({{"id", o.id}, {"name", o.name}});
    }
  }
  SetJson(
      res, 200,
      json{
          {"user",
           {{"id", user->id},
            {"username", user->username},
            {"organization",
             {{"id", user->org_id}, {"name", org == nullptr ? "" : org->name}}},
            {"memberOfOrganizations", member_of}}}});
}

void Emulator::Impl::HandleEnvironments(const httplib::Request& req,
                                        httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;
  const std::string org_id = req.matches[1];
  if (!Authorize(*grant, {"view:environment", "read:orgenvironments"}, org_id,
                 "", res)) {
    return;
  }
  const OrgFixture* org = FindOrg(org_id);
  if (org == nullptr) {
    SetMessage(res, 404, "organization " + org_id + " not found");
    return;
  }
  json data = json::array();
  for (const EnvironmentFixture& env : org->environments) {
    data.push_back({{"id", env.id},
                    {"name", env.name},
                    {"organizationId", org->id},
                    {"isProduction", env.is_production},
                    {"type", env.type}});
  }
  SetJson(res, 200, json{{"data", data}, {"total", data.size()}});
}

void Emulator::Impl::HandleProjects(const httplib::Request& req,
                                    httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;
  const std::string org_id = req.get_header_value("X-ORGANIZATION-ID");
  if (org_id.empty()) {
    SetMessage(res, 400, "the X-ORGANIZATION-ID header is required");
    return;
  }
  if (!Authorize(*grant, {"view:design_center", "edit:design_center"}, org_id,
                 "", res)) {
    return;
  }
  json out = json::array();
  for (const DesignCenterProjectFixture& p : fixture_.design_center_projects) {
    if (p.org_id != org_id) continue;
    out.push_back({{"id", p.id},
                   {"name", p.name},
                   {"organizationId", p.org_id},
                   {"createdBy", p.owner_id},
                   {"type", "raml"}});
  }
  SetJson(res, 200, out);
}

void Emulator::Impl::HandleExchange(const httplib::Request& req,
                                    httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;
  const std::string org_id = req.get_param_value("organizationId");
  if (!Authorize(*grant, {"read:exchange", "manage:exchange"}, org_id, "",
                 res)) {
    return;
  }
  int offset = 0, limit = 20;
  if ((req.has_param("offset") &&
       !absl::SimpleAtoi(req.get_param_value("offset"), &offset)) ||
      (req.has_param("limit") &&
       !absl::SimpleAtoi(req.get_param_value("limit"), &limit)) ||
      offset < 0 || limit < 1 || limit > 250) {
    SetMessage(res, 400, "offset must be >= 0 and limit between 1 and 250");
    return;
  }
  const std::string search =
      absl::AsciiStrToLower(req.get_param_value("search"));
  json out = json::array();
  int index = 0;
  for (const ExchangeAssetFixture& a : fixture_.exchange_assets) {
    if (!org_id.empty() && a.org_id != org_id) continue;
    if (!search.empty() &&
        !absl::StrContains(absl::AsciiStrToLower(a.name), search) &&
        !absl::StrContains(absl::AsciiStrToLower(a.asset_id), search)) {
      continue;
    }
    if (index++ < offset) continue;
    if (static_cast<int>(out.size()) >= limit) break;
    out.push_back({{"groupId", a.group_id},
                   {"assetId", a.asset_id},
                   {"version", a.version},
                   {"name", a.name},
                   {"organizationId", a.org_id}});
  }
  SetJson(res, 200, out);
}

void Emulator::Impl::HandleCloudHub(const httplib::Request& req,
                                    httplib::Response& res) {
  std::optional<Grant> grant = Authenticate(req, res);
  if (!grant.has_value()) return;
  const std::string org_id = req.get_header_value("X-ANYPNT-ORG-ID");
  const std::string env_id = req.get_header_value("X-ANYPNT-ENV-ID");
  if (org_id.empty() || env_id.empty()) {
    SetMessage(res, 400,
               "the X-ANYPNT-ORG-ID and X-ANYPNT-ENV-ID headers are required");
    return;
  }
  if (!Authorize(*grant, {"read:applications", "admin:cloudhub"}, org_id,
                 env_id, res)) {
    return;
  }
  json out = json::array();
  for (const CloudHubAppFixture& a : fixture_.cloudhub_applications) {
    if (a.org_id != org_id || a.env_id != env_id) continue;
    out.push_back({{"domain", a.domain},
                   {"status", a.status},
                   {"fullDomain", a.domain + ".cloudhub.io"}});
  }
  SetJson(res, 200, out);
}

void Emulator::Impl::HandleEcho(const httplib::Request& req,
                                httplib::Response& res, bool authed) {
  std::optional<Grant> grant;
  if (authed) {
    grant = Authenticate(req, res);
    if (!grant.has_value()) return;
  }
  int status = 200;
  if (req.has_param("status") &&
      (!absl::SimpleAtoi(req.get_param_value("status"), &status) ||
       status < 200 || status > 599)) {
    SetMessage(res, 400, "status must be an integer between 200 and 599");
    return;
  }
  // ?add_header=Name:Value (repeatable): extra response headers, in order,
  // e.g. Set-Cookie or repeated Link headers for proxy tests.
  for (size_t i = 0; i < req.get_param_value_count("add_header"); ++i) {
    const std::string spec = req.get_param_value("add_header", i);
    const size_t colon = spec.find(':');
    if (colon == std::string::npos || colon == 0) {
      SetMessage(res, 400, "add_header must be Name:Value");
      return;
    }
    res.headers.emplace(spec.substr(0, colon), spec.substr(colon + 1));
  }
  if (req.has_param("bytes")) {
    size_t bytes = 0;
    if (!absl::SimpleAtoi(req.get_param_value("bytes"), &bytes) ||
        bytes > kMaxEchoBytes) {
      SetMessage(
          res, 400,
          absl::StrCat("bytes must be an integer up to ", kMaxEchoBytes));
      return;
    }
    res.status = status;
    res.set_content(std::string(bytes, 'x'), "application/octet-stream");
    return;
  }
  json headers = json::array();
  for (const auto& [name, value] : req.headers) {
    // httplib adds the peer's and its own address as pseudo-headers.
    if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" ||
        name == "LOCAL_ADDR" || name == "LOCAL_PORT") {
      continue;
    }
    headers.push_back({name, value});
  }
  // From the target, not req.params: httplib merges a form body into params.
  json query = json::array();
  const size_t question = req.target.find('?');
  if (question != std::string::npos) {
    for (const auto& [name, value] : internal::DecodeUrlEncoded(
             absl::string_view(req.target).substr(question + 1))) {
      query.push_back({name, value});
    }
  }
  json out = {{"method", req.method},
              {"path", req.path},
              {"target", req.target},
              {"query", query},
              {"headers", headers}};
  if (internal::IsValidUtf8(req.body)) {
    out["body"] = req.body;
  } else {
    out["body_base64"] = absl::Base64Escape(req.body);
  }
  if (grant.has_value()) {
    out["client_id"] = grant->client_id;
    if (!grant->user_id.empty()) out["user_id"] = grant->user_id;
  }
  SetJson(res, status, out);
}

}  // namespace tokenbroker::emulator
