// The `callers` section: who may call the broker, how each proves it, and
// what each may do with which app (grants and Call routes).

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/value_checks.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {
namespace {

// "METHOD /path/pattern".
absl::StatusOr<RouteRule> Route(const YamlReader& reader, const Field& field) {
  TB_ASSIGN_OR_RETURN(std::string text, reader.String(field));
  constexpr absl::string_view kHint =
      "; write \"METHOD /path\", e.g. \"GET /accounts/api/organizations/*/"
      "environments\" (METHOD may be *; * matches one path segment, a final "
      "** the rest)";
  std::vector<std::string> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (parts.size() != 2) {
    return reader.Error(field,
                        absl::StrCat("'", text, "' is not a route", kHint));
  }
  RouteRule rule;
  rule.text = text;
  rule.method = parts[0];
  static const std::set<std::string>* const kMethods =
      new std::set<std::string>{"*",   "GET",   "HEAD",  "POST",
                                "PUT", "PATCH", "DELETE"};
  if (kMethods->count(rule.method) == 0) {
    return reader.Error(field, absl::StrCat("'", rule.method,
                                            "' is not GET, HEAD, POST, PUT, "
                                            "PATCH, DELETE or *",
                                            kHint));
  }
  absl::string_view path = parts[1];
  if (!absl::ConsumePrefix(&path, "/") ||
      path.find_first_of("?#%\\") != absl::string_view::npos) {
    return reader.Error(field,
                        absl::StrCat("'", parts[1],
                                     "' must be a plain path starting with '/' "
                                     "(no query, fragment, '%' or '\\')",
                                     kHint));
  }
  rule.segments = absl::StrSplit(path, '/');
  for (size_t i = 0; i < rule.segments.size(); ++i) {
    const std::string& segment = rule.segments[i];
    if (segment == "." || segment == "..") {
      return reader.Error(field, absl::StrCat("'", parts[1],
                                              "' must not contain . or .. "
                                              "segments"));
    }
    if (segment == "**" && i + 1 != rule.segments.size()) {
      return reader.Error(field, absl::StrCat("'", parts[1],
                                              "': ** is allowed only as the "
                                              "last segment"));
    }
    if (segment != "*" && segment != "**" && absl::StrContains(segment, '*')) {
      return reader.Error(field, absl::StrCat("'", parts[1],
                                              "': * must stand alone in a "
                                              "segment"));
    }
  }
  return rule;
}

// Reads a grant's scopes: a subset of `app`'s (or "profile"), or "*" alone.
absl::Status ReadGrantScopes(const YamlReader& reader, const Field& field,
                             const AppConfig& app, AppGrant* grant) {
  TB_ASSIGN_OR_RETURN(grant->scopes, reader.TokenList(field));
  std::sort(grant->scopes.begin(), grant->scopes.end());
  grant->scopes.erase(std::unique(grant->scopes.begin(), grant->scopes.end()),
                      grant->scopes.end());
  if (std::binary_search(grant->scopes.begin(), grant->scopes.end(), "*")) {
    if (grant->scopes.size() != 1) {
      return reader.Error(field, "'*' (every scope of the app) stands alone");
    }
    grant->scopes.clear();
    grant->all_scopes = true;
  }
  for (const std::string& scope : grant->scopes) {
    if (scope != "profile" &&
        !std::binary_search(app.scopes.begin(), app.scopes.end(), scope)) {
      return reader.Error(
          field,
          absl::StrCat("scope '", scope, "' is not among app ", app.name,
                       "'s scopes [", absl::StrJoin(app.scopes, " "), "]"));
    }
  }
  return absl::OkStatus();
}

// Reads a grant's users of a user app: usernames or user ids, or "*" alone.
absl::Status ReadGrantUsers(const YamlReader& reader, const Field& field,
                            const AppConfig& app, AppGrant* grant) {
  if (app.grant_type != GrantType::kAuthorizationCode) {
    return reader.Error(field,
                        absl::StrCat("applies only to apps acting on behalf "
                                     "of users; app ",
                                     app.name, " acts on its own behalf"));
  }
  TB_ASSIGN_OR_RETURN(grant->users, reader.TokenList(field));
  std::sort(grant->users.begin(), grant->users.end());
  grant->users.erase(std::unique(grant->users.begin(), grant->users.end()),
                     grant->users.end());
  if (std::binary_search(grant->users.begin(), grant->users.end(), "*")) {
    if (grant->users.size() != 1) {
      return reader.Error(field, "'*' (every connected user) stands alone");
    }
    grant->users.clear();
    grant->all_users = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<AppGrant> ParseGrant(const YamlReader& reader,
                                    const Field& field,
                                    const std::vector<AppConfig>& apps) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field, {"app", "scopes", "get_token", "routes", "users"}, &keys));
  AppGrant grant;
  auto it = keys.find("app");
  if (it == keys.end()) {
    return reader.Error(field, "app is required: the name of a configured app");
  }
  TB_ASSIGN_OR_RETURN(grant.app, reader.Token(it->second));
  auto app = std::find_if(apps.begin(), apps.end(), [&](const AppConfig& a) {
    return a.name == grant.app;
  });
  if (app == apps.end()) {
    return reader.Error(it->second, absl::StrCat("'", grant.app,
                                                 "' is not an app of this "
                                                 "config (see apps)"));
  }
  if (it = keys.find("scopes"); it != keys.end()) {
    TB_RETURN_IF_ERROR(ReadGrantScopes(reader, it->second, *app, &grant));
  }
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "get_token", &grant.get_token,
                                         &YamlReader::Bool));
  if (it = keys.find("users"); it != keys.end()) {
    TB_RETURN_IF_ERROR(ReadGrantUsers(reader, it->second, *app, &grant));
  }
  if (it = keys.find("routes"); it != keys.end()) {
    TB_RETURN_IF_ERROR(reader.ForEachElement(
        it->second, "must be a list of \"METHOD /path\" routes",
        [&](const Field& item) -> absl::Status {
          TB_ASSIGN_OR_RETURN(RouteRule rule, Route(reader, item));
          grant.routes.push_back(std::move(rule));
          return absl::OkStatus();
        }));
  }
  return grant;
}

// Identities, key hashes and names already given, each to its caller: no
// two callers may share one.
using Owners = std::map<std::string, std::string>;

// Splits `identities` into SPIFFE ids and certificate CNs.
absl::Status ReadIdentities(const YamlReader& reader, const Field& field,
                            Owners* owners, CallerConfig* caller) {
  TB_ASSIGN_OR_RETURN(std::vector<std::string> identities,
                      reader.TokenList(field));
  for (std::string& identity : identities) {
    auto [pos, inserted] = owners->emplace("id:" + identity, caller->name);
    if (!inserted) {
      return reader.Error(
          field, absl::StrCat("identity '", identity,
                              "' is already given to caller ", pos->second));
    }
    // Anything that reads as a SPIFFE id is one, and must be a valid one: a
    // CN entry "spiffe://..." would let a certificate without SANs pose as
    // that workload.
    if (absl::StartsWithIgnoreCase(identity, "spiffe:")) {
      if (std::string problem = CheckSpiffeId(identity); !problem.empty()) {
        return reader.Error(
            field,
            absl::StrCat("'", identity, "' is not a valid SPIFFE id: ", problem,
                         "; write spiffe://TRUST-DOMAIN/PATH, e.g. "
                         "spiffe://cluster.local/ns/shop/sa/orders "
                         "(other entries are certificate CNs)"));
      }
      caller->spiffe_ids.push_back(std::move(identity));
    } else {
      caller->common_names.push_back(std::move(identity));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadBearerKeyHashes(const YamlReader& reader, const Field& field,
                                 Owners* owners, CallerConfig* caller) {
  TB_ASSIGN_OR_RETURN(caller->bearer_key_sha256, reader.TokenList(field));
  for (std::string& hash : caller->bearer_key_sha256) {
    hash = absl::AsciiStrToLower(hash);
    if (!IsSha256Hex(hash)) {
      return reader.Error(field,
                          "each entry must be the 64 hex digits of a key's "
                          "SHA-256 (sha256sum KEYFILE), never the key itself");
    }
    auto [pos, inserted] = owners->emplace("key:" + hash, caller->name);
    if (!inserted) {
      return reader.Error(
          field,
          absl::StrCat("a key hash is already given to caller ", pos->second));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CallerConfig> ParseCaller(const YamlReader& reader,
                                         const Field& field,
                                         const std::vector<AppConfig>& apps,
                                         Owners* owners) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field, {"name", "identities", "bearer_key_sha256", "admin", "grants"},
      &keys));
  CallerConfig caller;
  auto it = keys.find("name");
  if (it == keys.end()) {
    return reader.Error(field, "name is required (used in audit records)");
  }
  TB_ASSIGN_OR_RETURN(caller.name, reader.Token(it->second));
  if (!IsValidName(caller.name)) {
    return reader.Error(it->second,
                        absl::StrCat("'", caller.name,
                                     "' is not a valid caller name; use 1 to "
                                     "64 letters, digits, '.', '_' or '-'"));
  }
  if (!owners->emplace("name:" + caller.name, caller.name).second) {
    return reader.Error(
        it->second, absl::StrCat("duplicate caller name '", caller.name, "'"));
  }
  if (it = keys.find("identities"); it != keys.end()) {
    TB_RETURN_IF_ERROR(ReadIdentities(reader, it->second, owners, &caller));
  }
  if (it = keys.find("bearer_key_sha256"); it != keys.end()) {
    TB_RETURN_IF_ERROR(
        ReadBearerKeyHashes(reader, it->second, owners, &caller));
  }
  TB_RETURN_IF_ERROR(
      reader.ReadOptional(keys, "admin", &caller.admin, &YamlReader::Bool));
  if (it = keys.find("grants"); it != keys.end()) {
    std::set<std::string> granted;
    TB_RETURN_IF_ERROR(reader.ForEachElement(
        it->second, "must be a list of grants ('- app: ...')",
        [&](const Field& item) -> absl::Status {
          TB_ASSIGN_OR_RETURN(AppGrant grant, ParseGrant(reader, item, apps));
          if (!granted.insert(grant.app).second) {
            return reader.Error(item,
                                absl::StrCat("app ", grant.app,
                                             " is granted twice; merge the "
                                             "grants"));
          }
          caller.grants.push_back(std::move(grant));
          return absl::OkStatus();
        }));
  }
  return caller;
}

}  // namespace

absl::Status ParseCallersSection(const YamlReader& reader, const Field& field,
                                 Config* config) {
  Owners owners;
  return reader.ForEachElement(
      field,
      absl::StrCat("must be a list of callers (each item starting with "
                   "'- name: ...'); got ",
                   Describe(field.node)),
      [&](const Field& item) -> absl::Status {
        TB_ASSIGN_OR_RETURN(CallerConfig caller,
                            ParseCaller(reader, item, config->apps, &owners));
        config->callers.push_back(std::move(caller));
        return absl::OkStatus();
      });
}

}  // namespace config_internal
}  // namespace tokenbroker
