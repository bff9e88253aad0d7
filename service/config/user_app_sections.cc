// The sections user apps (grant_type authorization_code) need: `oauth`, the
// browser flow, and `grant_store`, where their refresh tokens are kept; and
// the check that a config with user apps has them.

#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/value_checks.h"
#include "service/config/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace tokenbroker {
namespace config_internal {
namespace {

absl::StatusOr<StoreKeyConfig> ParseStoreKey(const YamlReader& reader,
                                             const Field& field) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(field, {"id", "file"}, &keys));
  StoreKeyConfig key;
  auto id = keys.find("id");
  auto file = keys.find("file");
  if (id == keys.end() || file == keys.end()) {
    return reader.Error(field,
                        "each key needs an id and a file, e.g. {id: k1, "
                        "file: /etc/tokenbroker/store-key/k1}");
  }
  TB_ASSIGN_OR_RETURN(key.id, reader.Token(id->second));
  if (key.id.size() > 32 || !AllCharsIn(key.id, absl::ascii_isalnum, "._-")) {
    return reader.Error(id->second,
                        "a key id is 1 to 32 letters, digits, '.', '_' or "
                        "'-'");
  }
  TB_ASSIGN_OR_RETURN(key.file, reader.Token(file->second));
  return key;
}

}  // namespace

absl::Status ParseStoreKeyList(const YamlReader& reader, const Field& list,
                               std::vector<StoreKeyConfig>* keys) {
  std::set<std::string> ids;
  TB_RETURN_IF_ERROR(reader.ForEachElement(
      list, "must be a list of {id, file} keys",
      [&](const Field& item) -> absl::Status {
        TB_ASSIGN_OR_RETURN(StoreKeyConfig key, ParseStoreKey(reader, item));
        if (!ids.insert(key.id).second) {
          return reader.Error(item,
                              absl::StrCat("duplicate key id '", key.id, "'"));
        }
        keys->push_back(std::move(key));
        return absl::OkStatus();
      }));
  if (keys->empty()) return reader.Error(list, "at least one key is required");
  return absl::OkStatus();
}

absl::Status ParseOAuthSection(const YamlReader& reader, const Field& field,
                               Config* config) {
  OAuthFlowConfig* oauth = &config->oauth;
  FieldMap keys;
  TB_RETURN_IF_ERROR(
      reader.ReadMap(field,
                     {"public_url", "state_ttl", "start_link_ttl",
                      "max_pending", "request_timeout"},
                     &keys));
  if (auto it = keys.find("public_url"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(std::string url, reader.Token(it->second));
    if (std::string problem = CheckPublicUrl(url, &oauth->public_url);
        !problem.empty()) {
      return reader.Error(it->second, problem);
    }
  }
  const std::pair<absl::string_view, absl::Duration*> durations[] = {
      {"state_ttl", &oauth->state_ttl},
      {"start_link_ttl", &oauth->start_link_ttl},
      {"request_timeout", &oauth->request_timeout}};
  for (const auto& [name, target] : durations) {
    TB_RETURN_IF_ERROR(reader.ReadOptional(keys, name, target,
                                           &YamlReader::Duration,
                                           /*allow_zero=*/false));
  }
  if (oauth->state_ttl > absl::Hours(1) ||
      oauth->start_link_ttl > absl::Hours(24)) {
    return reader.Error(field,
                        "state_ttl is at most 1h and start_link_ttl at most "
                        "24h (defaults 10m): a sign-in in progress is a "
                        "credential");
  }
  if (auto it = keys.find("max_pending"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(int64_t count,
                        reader.Count(it->second, 1, 100000, "e.g. 1000"));
    oauth->max_pending = static_cast<int>(count);
  }
  return absl::OkStatus();
}

absl::Status ParseGrantStoreSection(const YamlReader& reader,
                                    const Field& field, Config* config) {
  GrantStoreConfig* store = &config->grant_store;
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(field, {"directory", "keys"}, &keys));
  auto directory = keys.find("directory");
  if (directory == keys.end()) {
    return reader.Error(field,
                        "directory is required: where the encrypted grants "
                        "are written (a persistent volume)");
  }
  TB_ASSIGN_OR_RETURN(store->directory, reader.Token(directory->second));
  auto list = keys.find("keys");
  if (list == keys.end()) {
    return reader.Error(field,
                        "keys is required: [{id: k1, file: PATH}] (the first "
                        "encrypts, every one decrypts)");
  }
  return ParseStoreKeyList(reader, list->second, &store->keys);
}

absl::Status CheckUserApps(const YamlReader& reader, const YAML::Node& root,
                           const Config& config) {
  if (config.grant_store.enabled() && config.shared_state.enabled()) {
    return reader.Error(root.Mark(), "grant_store",
                        "must not be set with shared_state.redis: user grants "
                        "then live in Redis, shared by every replica (see "
                        "docs/operations.md, moving grants to Redis)");
  }
  for (size_t i = 0; i < config.apps.size(); ++i) {
    const AppConfig& app = config.apps[i];
    if (app.grant_type != GrantType::kAuthorizationCode) continue;
    const std::string where = absl::StrCat("apps (", app.name, ")");
    if (!config.grant_store.enabled() && !config.shared_state.enabled()) {
      return reader.Error(root.Mark(), "grant_store",
                          absl::StrCat("is required: app ", app.name,
                                       " acts on behalf of users, whose "
                                       "refresh tokens are kept encrypted in "
                                       "the grant store (or in Redis, with "
                                       "shared_state.redis)"));
    }
    const std::string& listener = config.listen.oauth_http.empty()
                                      ? config.listen.admin_http
                                      : config.listen.oauth_http;
    if (listener.empty()) {
      return reader.Error(
          root.Mark(), "listen.oauth_http",
          absl::StrCat("is required (or listen.admin_http): "
                       "app ",
                       app.name, " needs the broker's sign-in pages"));
    }
    if (app.redirect_uri.empty() && config.oauth.public_url.empty() &&
        !IsLoopbackBaseUrl(absl::StrCat("http://", listener))) {
      return reader.Error(root.Mark(), "oauth.public_url",
                          absl::StrCat("is required: the URL browsers reach "
                                       "the sign-in pages at (",
                                       where,
                                       " has no redirect_uri, and the "
                                       "listener is not on a loopback "
                                       "address)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace tokenbroker
