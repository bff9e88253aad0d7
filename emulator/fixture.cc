// Fixture parsing. yaml-cpp reports errors by exception; they are caught here
// and turned into kInvalidArgument with the fixture's name and line.

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "emulator/emulator.h"
#include "yaml-cpp/yaml.h"

namespace tokenbroker::emulator {
namespace {

// Thrown only inside this file, caught in ParseFixture.
struct FixtureError {
  std::string message;
};

[[noreturn]] void Fail(const YAML::Node& node, const std::string& what) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) throw FixtureError{what};
  throw FixtureError{absl::StrCat("line ", mark.line + 1, ": ", what)};
}

void CheckKeys(const YAML::Node& node, absl::string_view where,
               std::initializer_list<absl::string_view> allowed) {
  if (!node.IsMap()) Fail(node, absl::StrCat(where, " must be a mapping"));
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    bool ok = false;
    for (absl::string_view a : allowed) ok = ok || a == key;
    if (!ok) {
      Fail(entry.first,
           absl::StrCat("unknown key \"", key, "\" in ", where,
                        " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
}

std::string Str(const YAML::Node& map, const char* key, absl::string_view where,
                bool required) {
  const YAML::Node value = map[key];
  if (!value) {
    if (required) Fail(map, absl::StrCat(where, ": \"", key, "\" is required"));
    return "";
  }
  if (!value.IsScalar()) {
    Fail(value, absl::StrCat(where, ": \"", key, "\" must be a string"));
  }
  std::string s = value.as<std::string>();
  if (required && s.empty()) {
    Fail(value, absl::StrCat(where, ": \"", key, "\" must not be empty"));
  }
  return s;
}

bool Bool(const YAML::Node& map, const char* key, absl::string_view where,
          bool default_value) {
  const YAML::Node value = map[key];
  if (!value) return default_value;
  bool out = false;
  if (!value.IsScalar() || !YAML::convert<bool>::decode(value, out)) {
    Fail(value, absl::StrCat(where, ": \"", key, "\" must be true or false"));
  }
  return out;
}

int Int(const YAML::Node& map, const char* key, absl::string_view where,
        int default_value) {
  const YAML::Node value = map[key];
  if (!value) return default_value;
  int out = 0;
  if (!value.IsScalar() || !YAML::convert<int>::decode(value, out)) {
    Fail(value, absl::StrCat(where, ": \"", key, "\" must be an integer"));
  }
  return out;
}

// Returns the sequence at `key` (an empty node if absent).
YAML::Node Seq(const YAML::Node& map, const char* key,
               absl::string_view where) {
  const YAML::Node value = map[key];
  if (!value || value.IsNull()) return YAML::Node(YAML::NodeType::Sequence);
  if (!value.IsSequence()) {
    Fail(value, absl::StrCat(where, ": \"", key, "\" must be a list"));
  }
  return value;
}

std::vector<std::string> StrList(const YAML::Node& map, const char* key,
                                 absl::string_view where) {
  std::vector<std::string> out;
  for (const auto& item : Seq(map, key, where)) {
    if (!item.IsScalar()) {
      Fail(item, absl::StrCat(where, ": \"", key, "\" must list strings"));
    }
    out.push_back(item.as<std::string>());
  }
  return out;
}

Fixture ParseRoot(const YAML::Node& root) {
  Fixture f;
  CheckKeys(root, "the fixture",
            {"token_lifetime_seconds", "rotate_refresh_tokens", "organizations",
             "apps", "users", "design_center_projects", "exchange_assets",
             "cloudhub_applications"});
  f.token_lifetime_seconds =
      Int(root, "token_lifetime_seconds", "the fixture", 3600);
  if (f.token_lifetime_seconds <= 0) {
    Fail(root["token_lifetime_seconds"],
         "token_lifetime_seconds must be positive");
  }
  f.rotate_refresh_tokens =
      Bool(root, "rotate_refresh_tokens", "the fixture", true);

  std::set<std::string> org_ids, env_ids, client_ids, user_ids;
  std::map<std::string, std::string> env_org;  // env id -> org id
  for (const auto& o : Seq(root, "organizations", "the fixture")) {
    CheckKeys(o, "an organization", {"id", "name", "environments"});
    OrgFixture org;
    org.id = Str(o, "id", "an organization", true);
    org.name = Str(o, "name", "organization " + org.id, true);
    if (!org_ids.insert(org.id).second) {
      Fail(o, absl::StrCat("duplicate organization id \"", org.id, "\""));
    }
    const std::string where = "an environment of organization " + org.id;
    for (const auto& e : Seq(o, "environments", where)) {
      CheckKeys(e, where, {"id", "name", "is_production", "type"});
      EnvironmentFixture env;
      env.id = Str(e, "id", where, true);
      env.name = Str(e, "name", where, true);
      env.is_production = Bool(e, "is_production", where, false);
      env.type = Str(e, "type", where, false);
      if (env.type.empty())
        env.type = env.is_production ? "production" : "sandbox";
      if (!env_ids.insert(env.id).second) {
        Fail(e, absl::StrCat("duplicate environment id \"", env.id, "\""));
      }
      env_org[env.id] = org.id;
      org.environments.push_back(std::move(env));
    }
    f.organizations.push_back(std::move(org));
  }
  auto check_org = [&](const YAML::Node& node, const std::string& org,
                       absl::string_view where) {
    if (!org.empty() && org_ids.count(org) == 0) {
      Fail(node, absl::StrCat(where, ": unknown organization \"", org,
                              "\" (not under organizations)"));
    }
  };
  auto check_env = [&](const YAML::Node& node, const std::string& env,
                       absl::string_view where) {
    if (!env.empty() && env_ids.count(env) == 0) {
      Fail(node, absl::StrCat(where, ": unknown environment \"", env, "\""));
    }
  };

  std::set<std::string> usernames;
  for (const auto& u : Seq(root, "users", "the fixture")) {
    CheckKeys(u, "a user", {"id", "username", "org_id", "password", "org_ids"});
    UserFixture user;
    user.id = Str(u, "id", "a user", true);
    const std::string where = "user " + user.id;
    user.username = Str(u, "username", where, true);
    user.org_id = Str(u, "org_id", where, true);
    check_org(u, user.org_id, where);
    user.password = Str(u, "password", where, false);
    user.org_ids = StrList(u, "org_ids", where);
    for (const std::string& org : user.org_ids) {
      check_org(u["org_ids"], org, where + ", org_ids");
    }
    if (std::find(user.org_ids.begin(), user.org_ids.end(), user.org_id) ==
        user.org_ids.end()) {
      user.org_ids.insert(user.org_ids.begin(), user.org_id);
    }
    if (!user_ids.insert(user.id).second) {
      Fail(u, absl::StrCat("duplicate user id \"", user.id, "\""));
    }
    if (!usernames.insert(user.username).second) {
      Fail(u, absl::StrCat("duplicate username \"", user.username, "\""));
    }
    f.users.push_back(std::move(user));
  }

  static const std::set<std::string> kGrantTypes = {
      "client_credentials", "authorization_code", "refresh_token"};
  for (const auto& a : Seq(root, "apps", "the fixture")) {
    CheckKeys(a, "an app",
              {"client_id", "client_secret", "name", "org_id", "grant_types",
               "scopes", "redirect_uris", "audience", "rotate_refresh_tokens",
               "refresh_token_lifetime_seconds"});
    AppFixture app;
    app.client_id = Str(a, "client_id", "an app", true);
    const std::string where = "app " + app.client_id;
    app.client_secret = Str(a, "client_secret", where, true);
    app.name = Str(a, "name", where, false);
    if (app.name.empty()) app.name = app.client_id;
    app.org_id = Str(a, "org_id", where, true);
    check_org(a, app.org_id, where);
    app.grant_types = StrList(a, "grant_types", where);
    if (app.grant_types.empty()) app.grant_types = {"client_credentials"};
    for (const auto& g : app.grant_types) {
      if (kGrantTypes.count(g) == 0) {
        Fail(a["grant_types"],
             absl::StrCat(where, ": unsupported grant type \"", g,
                          "\" (use client_credentials, authorization_code or "
                          "refresh_token)"));
      }
    }
    for (const auto& s : Seq(a, "scopes", where)) {
      ScopeGrant grant;
      if (s.IsScalar()) {
        grant.scope = s.as<std::string>();
      } else {
        CheckKeys(s, "a scope of " + where, {"scope", "org", "env"});
        grant.scope = Str(s, "scope", "a scope of " + where, true);
        grant.org = Str(s, "org", "a scope of " + where, false);
        grant.env = Str(s, "env", "a scope of " + where, false);
        check_org(s, grant.org, "a scope of " + where);
        check_env(s, grant.env, "a scope of " + where);
      }
      if (grant.scope.empty()) Fail(s, where + ": empty scope");
      app.scopes.push_back(std::move(grant));
    }
    app.redirect_uris = StrList(a, "redirect_uris", where);
    for (const std::string& uri : app.redirect_uris) {
      // RFC 6749 3.1.2: absolute, no fragment.
      if (!(absl::StartsWith(uri, "http://") ||
            absl::StartsWith(uri, "https://")) ||
          uri.find('#') != std::string::npos) {
        Fail(a["redirect_uris"],
             absl::StrCat(where, ": redirect URI \"", uri,
                          "\" must be an absolute http(s) URI without a "
                          "fragment"));
      }
    }
    const std::string audience = Str(a, "audience", where, false);
    if (audience == "org_members") {
      app.audience = Audience::kOrgMembers;
    } else if (!audience.empty() && audience != "all_users") {
      Fail(a["audience"], absl::StrCat(where,
                                       ": audience must be all_users or "
                                       "org_members"));
    }
    if (a["rotate_refresh_tokens"]) {
      app.rotate_refresh_tokens =
          Bool(a, "rotate_refresh_tokens", where, f.rotate_refresh_tokens);
    }
    app.refresh_token_lifetime_seconds =
        Int(a, "refresh_token_lifetime_seconds", where,
            static_cast<int>(kDefaultRefreshTokenLifetimeSeconds));
    if (app.refresh_token_lifetime_seconds <= 0) {
      Fail(a["refresh_token_lifetime_seconds"],
           absl::StrCat(where,
                        ": refresh_token_lifetime_seconds must be positive"));
    }
    if (!client_ids.insert(app.client_id).second) {
      Fail(a, absl::StrCat("duplicate client_id \"", app.client_id, "\""));
    }
    f.apps.push_back(std::move(app));
  }

  for (const auto& p : Seq(root, "design_center_projects", "the fixture")) {
    const char* where = "a design center project";
    CheckKeys(p, where, {"id", "name", "org_id", "owner_id"});
    DesignCenterProjectFixture project;
    project.id = Str(p, "id", where, true);
    project.name = Str(p, "name", where, true);
    project.org_id = Str(p, "org_id", where, true);
    project.owner_id = Str(p, "owner_id", where, false);
    check_org(p, project.org_id, where);
    f.design_center_projects.push_back(std::move(project));
  }
  for (const auto& x : Seq(root, "exchange_assets", "the fixture")) {
    const char* where = "an exchange asset";
    CheckKeys(x, where, {"group_id", "asset_id", "version", "name", "org_id"});
    ExchangeAssetFixture asset;
    asset.group_id = Str(x, "group_id", where, true);
    asset.asset_id = Str(x, "asset_id", where, true);
    asset.version = Str(x, "version", where, true);
    asset.name = Str(x, "name", where, false);
    if (asset.name.empty()) asset.name = asset.asset_id;
    asset.org_id = Str(x, "org_id", where, false);
    if (asset.org_id.empty()) asset.org_id = asset.group_id;
    f.exchange_assets.push_back(std::move(asset));
  }
  for (const auto& c : Seq(root, "cloudhub_applications", "the fixture")) {
    const char* where = "a cloudhub application";
    CheckKeys(c, where, {"domain", "status", "org_id", "env_id"});
    CloudHubAppFixture app;
    app.domain = Str(c, "domain", where, true);
    app.status = Str(c, "status", where, false);
    if (app.status.empty()) app.status = "STARTED";
    app.env_id = Str(c, "env_id", where, true);
    check_env(c, app.env_id, where);
    app.org_id = Str(c, "org_id", where, false);
    if (app.org_id.empty()) app.org_id = env_org[app.env_id];
    check_org(c, app.org_id, where);
    f.cloudhub_applications.push_back(std::move(app));
  }
  return f;
}

}  // namespace

absl::StatusOr<Fixture> ParseFixture(absl::string_view yaml,
                                     absl::string_view name_for_errors) {
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root || root.IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_for_errors, ": the fixture is empty"));
    }
    return ParseRoot(root);
  } catch (const FixtureError& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_for_errors, ": ", e.message));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_for_errors, ": invalid YAML: ", e.what()));
  }
}

absl::StatusOr<Fixture> LoadFixtureFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read fixture file ", path,
                     ": check the path (--fixture) and its permissions"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseFixture(buffer.str(), path);
}

}  // namespace tokenbroker::emulator
