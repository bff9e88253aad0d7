// The `apps` section: the connected apps and where their credentials come
// from.

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/value_checks.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {
namespace {

absl::StatusOr<std::string> UrlPath(const YamlReader& reader,
                                    const Field& field) {
  TB_ASSIGN_OR_RETURN(std::string value, reader.Token(field));
  if (std::string problem = CheckUrlPath(value); !problem.empty()) {
    return reader.Error(field, problem);
  }
  return value;
}

// Returns the URL normalized: lower-case scheme, no trailing slash.
absl::StatusOr<std::string> BaseUrl(const YamlReader& reader,
                                    const Field& field) {
  TB_ASSIGN_OR_RETURN(std::string value, reader.Token(field));
  std::string normalized;
  if (std::string problem = CheckBaseUrl(value, &normalized);
      !problem.empty()) {
    return reader.Error(field, problem);
  }
  return normalized;
}

// A SecretRef: a plain string, or a map with one of file, env, value.
// `secret` says whether it holds a secret (then an inline value is refused
// unless `allow_inline_secrets`). No message quotes a value.
absl::StatusOr<SecretRef> Secret(const YamlReader& reader, const Field& field,
                                 bool secret, bool allow_inline_secrets) {
  constexpr absl::string_view kInlineRefused =
      "inline secrets are refused; use {file: PATH} or {env: NAME} (or set "
      "development.allow_inline_secrets: true for local development)";
  const bool refuse_inline = secret && !allow_inline_secrets;
  SecretRef ref;
  if (field.node.IsScalar()) {
    if (refuse_inline) return reader.Error(field, kInlineRefused);
    ref.value = field.node.Scalar();
    if (ref.value.empty()) return reader.Error(field, "must not be empty");
    return ref;
  }
  if (!field.node.IsMap()) {
    return reader.Error(field,
                        absl::StrCat("must be ", secret ? "" : "a string or ",
                                     "a map {file: PATH} or {env: NAME}; got ",
                                     Describe(field.node)));
  }
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(field, {"file", "env", "value"}, &keys));
  if (keys.size() != 1) {
    return reader.Error(field, "give exactly one of file, env or value");
  }
  const auto& [kind, source] = *keys.begin();
  if (!source.node.IsScalar()) {
    return reader.Error(
        source, absl::StrCat("must be a string; got ", Describe(source.node)));
  }
  if (kind == "file") {
    TB_ASSIGN_OR_RETURN(ref.file, reader.String(source));
    if (ref.file.empty()) return reader.Error(source, "must be a file path");
  } else if (kind == "env") {
    TB_ASSIGN_OR_RETURN(ref.env, reader.String(source));
    if (!IsValidEnvName(ref.env)) {
      return reader.Error(source,
                          absl::StrCat("'", ref.env,
                                       "' is not an environment variable "
                                       "name ([A-Za-z_][A-Za-z0-9_]*)"));
    }
  } else {
    if (refuse_inline) return reader.Error(field, kInlineRefused);
    ref.value = source.node.Scalar();
    if (ref.value.empty()) return reader.Error(source, "must not be empty");
  }
  return ref;
}

// Sets app->control_plane and app->base_url from one of the two keys.
absl::Status ReadControlPlane(const YamlReader& reader, const Field& field,
                              const FieldMap& keys, AppConfig* app) {
  auto control_plane = keys.find("control_plane");
  auto base_url = keys.find("base_url");
  if (control_plane != keys.end() && base_url != keys.end()) {
    return reader.Error(base_url->second,
                        "give either control_plane or base_url, not both");
  }
  if (control_plane != keys.end()) {
    TB_ASSIGN_OR_RETURN(
        app->control_plane,
        reader.Enum<std::string>(control_plane->second,
                                 {{"us", "us"}, {"eu", "eu"}, {"gov", "gov"}}));
    app->base_url = ControlPlaneBaseUrl(app->control_plane);
  } else if (base_url != keys.end()) {
    app->control_plane = "custom";
    TB_ASSIGN_OR_RETURN(app->base_url, BaseUrl(reader, base_url->second));
  } else {
    return reader.Error(field.mark, field.path + ".control_plane",
                        "one of control_plane (us, eu, gov) or base_url is "
                        "required");
  }
  return absl::OkStatus();
}

// Authorize parameters the broker sets itself; `authorize_params` may not.
bool IsReservedAuthorizeParam(absl::string_view name) {
  for (absl::string_view reserved :
       {"response_type", "client_id", "redirect_uri", "scope", "state",
        "code_challenge", "code_challenge_method"}) {
    if (name == reserved) return true;
  }
  return false;
}

// The keys only user apps (grant_type authorization_code) take.
constexpr absl::string_view kUserAppKeys[] = {
    "redirect_uri", "pkce", "authorize_params", "issuer", "userinfo_path"};

// Reads the user-app keys of `keys` into `app` (its grant type is known).
absl::Status ReadUserAppKeys(const YamlReader& reader, const FieldMap& keys,
                             AppConfig* app) {
  if (app->grant_type != GrantType::kAuthorizationCode) {
    for (absl::string_view key : kUserAppKeys) {
      if (auto it = keys.find(std::string(key)); it != keys.end()) {
        return reader.Error(it->second,
                            "applies only to apps acting on behalf of users "
                            "(grant_type: authorization_code)");
      }
    }
    return absl::OkStatus();
  }
  if (auto it = keys.find("redirect_uri"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(app->redirect_uri, reader.Token(it->second));
    if (std::string problem = CheckRedirectUri(app->redirect_uri);
        !problem.empty()) {
      return reader.Error(it->second, problem);
    }
  }
  TB_RETURN_IF_ERROR(
      reader.ReadOptional(keys, "pkce", &app->pkce, &YamlReader::Bool));
  TB_RETURN_IF_ERROR(
      reader.ReadOptional(keys, "issuer", &app->issuer, &YamlReader::Token));
  if (auto it = keys.find("userinfo_path"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(app->userinfo_path, UrlPath(reader, it->second));
  }
  if (auto it = keys.find("authorize_params"); it != keys.end()) {
    const Field& params = it->second;
    if (!params.node.IsMap()) {
      return reader.Error(params,
                          "must be a map of parameter names to values, e.g. "
                          "{prompt: consent}");
    }
    for (const auto& entry : params.node) {
      const std::string name = entry.first.Scalar();
      Field value{entry.second, entry.second.Mark(),
                  absl::StrCat(params.path, ".", name)};
      if (name.empty() || !AllCharsIn(name, absl::ascii_isalnum, "_-.")) {
        return reader.Error(value,
                            "parameter names may hold only letters, digits, "
                            "'_', '-' and '.'");
      }
      if (IsReservedAuthorizeParam(name)) {
        return reader.Error(value,
                            "is set by the broker itself and cannot be "
                            "configured");
      }
      TB_ASSIGN_OR_RETURN(std::string text, reader.Token(value));
      app->authorize_params.emplace_back(name, std::move(text));
    }
    std::sort(app->authorize_params.begin(), app->authorize_params.end());
  }
  return absl::OkStatus();
}

// Sorts `values` and removes repeats.
void SortUnique(std::vector<std::string>* values) {
  std::sort(values->begin(), values->end());
  values->erase(std::unique(values->begin(), values->end()), values->end());
}

absl::StatusOr<AppConfig> ParseApp(const YamlReader& reader, const Field& field,
                                   bool allow_inline_secrets) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field,
      {"name", "control_plane", "base_url", "grant_type", "client_id",
       "client_secret", "scopes", "org_id", "environment_ids", "token_path",
       "revoke_path", "authorize_path", "send_scope", "client_auth",
       "redirect_uri", "pkce", "authorize_params", "issuer", "userinfo_path"},
      &keys));
  AppConfig app;
  auto it = keys.find("name");
  if (it == keys.end()) {
    return reader.Error(field,
                        "name is required (letters, digits, '.', '_', '-'; "
                        "at most 64)");
  }
  TB_ASSIGN_OR_RETURN(app.name, reader.String(it->second));
  if (!IsValidName(app.name)) {
    return reader.Error(it->second,
                        absl::StrCat("'", app.name,
                                     "' is not a valid app name; use 1 to 64 "
                                     "letters, digits, '.', '_' or '-'"));
  }
  TB_RETURN_IF_ERROR(ReadControlPlane(reader, field, keys, &app));
  if (it = keys.find("grant_type"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(
        app.grant_type,
        reader.Enum<GrantType>(
            it->second,
            {{"client_credentials", GrantType::kClientCredentials},
             {"authorization_code", GrantType::kAuthorizationCode}}));
  }
  if (it = keys.find("client_id"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(
        app.client_id,
        Secret(reader, it->second, /*secret=*/false, allow_inline_secrets));
  } else {
    return reader.Error(field.mark, field.path + ".client_id",
                        "is required: the connected app's client id, as a "
                        "string or {file: PATH} or {env: NAME}");
  }
  if (it = keys.find("client_secret"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(
        app.client_secret,
        Secret(reader, it->second, /*secret=*/true, allow_inline_secrets));
  } else {
    return reader.Error(field.mark, field.path + ".client_secret",
                        "is required: {file: PATH} or {env: NAME}");
  }
  if (it = keys.find("scopes"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(app.scopes, reader.TokenList(it->second));
    SortUnique(&app.scopes);
  }
  TB_RETURN_IF_ERROR(
      reader.ReadOptional(keys, "org_id", &app.org_id, &YamlReader::Token));
  TB_RETURN_IF_ERROR(reader.ReadOptional(
      keys, "environment_ids", &app.environment_ids, &YamlReader::TokenList));
  const std::pair<absl::string_view, std::string*> paths[] = {
      {"token_path", &app.token_path},
      {"revoke_path", &app.revoke_path},
      {"authorize_path", &app.authorize_path}};
  for (const auto& [name, target] : paths) {
    if (it = keys.find(std::string(name)); it != keys.end()) {
      TB_ASSIGN_OR_RETURN(*target, UrlPath(reader, it->second));
    }
  }
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "send_scope", &app.send_scope,
                                         &YamlReader::Bool));
  if (it = keys.find("client_auth"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(
        app.client_auth,
        reader.Enum<ClientAuthMethod>(
            it->second,
            {{"client_secret_post", ClientAuthMethod::kClientSecretPost},
             {"client_secret_basic", ClientAuthMethod::kClientSecretBasic}}));
  }
  TB_RETURN_IF_ERROR(ReadUserAppKeys(reader, keys, &app));
  return app;
}

}  // namespace

absl::Status ParseAppsSection(const YamlReader& reader, const Field& field,
                              Config* config) {
  if (field.node.IsSequence() && field.node.size() == 0) {
    return reader.Error(field, "at least one app is required");
  }
  std::vector<AppConfig>* apps = &config->apps;
  std::map<std::string, int> lines;  // App name -> line, for duplicates.
  TB_RETURN_IF_ERROR(reader.ForEachElement(
      field,
      absl::StrCat("must be a list of apps (each item starting with "
                   "'- name: ...'); got ",
                   Describe(field.node)),
      [&](const Field& item) -> absl::Status {
        TB_ASSIGN_OR_RETURN(
            AppConfig app,
            ParseApp(reader, item, config->development.allow_inline_secrets));
        YAML::Mark name_mark = item.node["name"].Mark();
        if (name_mark.is_null()) name_mark = item.mark;
        if (auto [pos, inserted] = lines.emplace(app.name, name_mark.line + 1);
            !inserted) {
          return reader.Error(
              name_mark, item.path + ".name",
              absl::StrCat("duplicate app name '", app.name,
                           "' (first used on line ", pos->second,
                           "); app names must be unique"));
        }
        apps->push_back(std::move(app));
        return absl::OkStatus();
      }));
  std::sort(
      apps->begin(), apps->end(),
      [](const AppConfig& a, const AppConfig& b) { return a.name < b.name; });
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace tokenbroker
