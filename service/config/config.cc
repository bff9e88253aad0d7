// ParseConfig and LoadConfigFile: the top level of a configuration file,
// which hands each key to its section's parser (sections.h), and the
// helpers of config.h.

#include "service/config/config.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "service/common/read_file.h"
#include "service/common/status_macros.h"
#include "service/common/token_fingerprint.h"
#include "service/config/sections.h"
#include "service/config/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace tokenbroker {
namespace {

using config_internal::Field;
using config_internal::FieldMap;
using config_internal::SectionParser;
using config_internal::YamlReader;

constexpr absl::string_view kUsBaseUrl = "https://anypoint.mulesoft.com";
constexpr absl::string_view kEuBaseUrl = "https://eu1.anypoint.mulesoft.com";
constexpr absl::string_view kGovBaseUrl = "https://gov.anypoint.mulesoft.com";

// When a section is parsed. The order decides which error is reported when
// several keys are wrong, and lets a section use what an earlier stage left
// in the Config.
enum class Stage {
  kFirst,      // development: decides whether apps may hold inline secrets.
  kServer,     // Sections that need no other.
  kApps,       // apps.
  kAfterApps,  // Sections that name apps (callers' grants).
};

struct Section {
  absl::string_view key;
  Stage stage;
  SectionParser parse;
  // The message when the key is missing; empty: the key is optional.
  absl::string_view required;
};

// The top-level keys, in the order error messages list them.
constexpr Section kSections[] = {
    {"listen", Stage::kServer, config_internal::ParseListenSection, ""},
    {"log_level", Stage::kServer, config_internal::ParseLogLevelSection, ""},
    {"upstream", Stage::kServer, config_internal::ParseUpstreamSection, ""},
    {"cache", Stage::kServer, config_internal::ParseCacheSection, ""},
    {"development", Stage::kFirst, config_internal::ParseDevelopmentSection,
     ""},
    {"apps", Stage::kApps, config_internal::ParseAppsSection,
     "is required: a list with at least one connected app"},
    {"callers", Stage::kAfterApps, config_internal::ParseCallersSection, ""},
    {"audit", Stage::kAfterApps, config_internal::ParseAuditSection, ""},
    {"limits", Stage::kServer, config_internal::ParseLimitsSection, ""},
    {"oauth", Stage::kServer, config_internal::ParseOAuthSection, ""},
    {"grant_store", Stage::kServer, config_internal::ParseGrantStoreSection,
     ""},
    {"shared_state", Stage::kServer, config_internal::ParseSharedStateSection,
     ""},
};

constexpr Stage kStages[] = {Stage::kFirst, Stage::kServer, Stage::kApps,
                             Stage::kAfterApps};

absl::StatusOr<Config> ParseRoot(const YamlReader& reader,
                                 const YAML::Node& root) {
  if (!root.IsMap()) {
    return reader.Error(root.Mark(), "(top level)",
                        absl::StrCat("must be a map with keys such as listen, "
                                     "cache and apps; got ",
                                     config_internal::Describe(root)));
  }
  std::vector<absl::string_view> allowed;
  for (const Section& section : kSections) allowed.push_back(section.key);
  FieldMap keys;
  TB_RETURN_IF_ERROR(
      reader.ReadMap(Field{root, root.Mark(), ""}, allowed, &keys));
  Config config;
  config.path = reader.file_path();
  for (Stage stage : kStages) {
    for (const Section& section : kSections) {
      if (section.stage != stage) continue;
      auto it = keys.find(std::string(section.key));
      if (it != keys.end()) {
        TB_RETURN_IF_ERROR(section.parse(reader, it->second, &config));
      } else if (!section.required.empty()) {
        return reader.Error(root.Mark(), section.key, section.required);
      }
    }
  }
  TB_RETURN_IF_ERROR(config_internal::CheckUserApps(reader, root, config));
  return config;
}

// A ReadFile() error in this file's words: NOT_FOUND for a missing file,
// else INVALID_ARGUMENT. Only a file over ReadFile's size bound gets no
// hint about permissions.
absl::Status ConfigFileError(const std::string& path,
                             const absl::Status& status) {
  absl::string_view reason = status.message();
  absl::ConsumePrefix(&reason, absl::StrCat("cannot read ", path, ": "));
  if (absl::IsNotFound(status)) {
    return absl::NotFoundError(
        absl::StrCat("config file ", path, " not found: ", reason,
                     "; check the path (see config/broker.example.yaml)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot read config file ", path, ": ", reason,
      absl::IsInvalidArgument(status) ? "" : "; check its permissions"));
}

}  // namespace

const AppConfig* Config::FindApp(absl::string_view name) const {
  auto it = std::lower_bound(
      apps.begin(), apps.end(), name,
      [](const AppConfig& app, absl::string_view n) { return app.name < n; });
  if (it != apps.end() && it->name == name) return &*it;
  return nullptr;
}

bool SameApp(const AppConfig& before, const AppConfig& after) {
  const AppConfig& a = before;
  const AppConfig& b = after;
  if (std::tie(a.name, a.base_url, a.grant_type, a.client_id, a.client_secret,
               a.scopes, a.org_id, a.environment_ids, a.token_path,
               a.revoke_path, a.authorize_path, a.send_scope, a.client_auth,
               a.redirect_uri, a.pkce, a.authorize_params, a.issuer,
               a.userinfo_path) !=
      std::tie(b.name, b.base_url, b.grant_type, b.client_id, b.client_secret,
               b.scopes, b.org_id, b.environment_ids, b.token_path,
               b.revoke_path, b.authorize_path, b.send_scope, b.client_auth,
               b.redirect_uri, b.pkce, b.authorize_params, b.issuer,
               b.userinfo_path)) {
    return false;
  }
  // The same reference may now resolve to another app's client id (a file
  // switched to another connected app): its tokens are not this app's. An id
  // unknown at either time cannot be shown to be the same.
  if (a.client_id_sha256.has_value() || b.client_id_sha256.has_value()) {
    return a.client_id_sha256.has_value() && b.client_id_sha256.has_value() &&
           !a.client_id_sha256->empty() &&
           *a.client_id_sha256 == *b.client_id_sha256;
  }
  return true;
}

void FingerprintClientIds(Config* config) {
  for (AppConfig& app : config->apps) {
    absl::StatusOr<std::string> id = ResolveSecret(app.client_id);
    if (!id.ok()) {
      app.client_id_sha256 = "";
      continue;
    }
    app.client_id_sha256 = Sha256Hex(*id);
    OPENSSL_cleanse(id->data(), id->size());
  }
}

bool Config::HasUserApps() const {
  return std::any_of(apps.begin(), apps.end(), [](const AppConfig& app) {
    return app.grant_type == GrantType::kAuthorizationCode;
  });
}

std::string RedirectUri(const AppConfig& app, absl::string_view public_url) {
  if (!app.redirect_uri.empty()) return app.redirect_uri;
  return absl::StrCat(public_url, "/oauth/callback");
}

std::string IssuerOf(const AppConfig& app) {
  if (!app.issuer.empty()) return app.issuer;
  return absl::StrCat(app.base_url, "/accounts/api/v2/oauth2");
}

const AppGrant* CallerConfig::FindGrant(absl::string_view app) const {
  for (const AppGrant& grant : grants) {
    if (grant.app == app) return &grant;
  }
  return nullptr;
}

absl::StatusOr<Config> ParseConfig(absl::string_view yaml_text,
                                   absl::string_view path) {
  YamlReader reader(path);
  TB_ASSIGN_OR_RETURN(YAML::Node document, reader.Load(yaml_text));
  if (document.IsNull()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ":1: apps: the configuration is empty; at least one app "
                     "is required under apps"));
  }
  try {
    return ParseRoot(reader, document);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        reader.Where(e.mark), " cannot read the configuration: ", e.msg));
  }
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config file ", path, " is a directory; give the path of a YAML file"));
  }
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return ConfigFileError(path, text.status());
  absl::StatusOr<Config> config = ParseConfig(*text, path);
  if (config.ok()) FingerprintClientIds(&*config);
  return config;
}

std::string ControlPlaneBaseUrl(absl::string_view name) {
  if (name == "us") return std::string(kUsBaseUrl);
  if (name == "eu") return std::string(kEuBaseUrl);
  if (name == "gov") return std::string(kGovBaseUrl);
  return "";
}

}  // namespace tokenbroker
