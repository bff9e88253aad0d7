#include "service/config/config.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

// Local to this file: every helper below returns a Status and the parser
// stops at the first error, which keeps each message specific.
#define TB_CONFIG_RETURN_IF_ERROR(expr)      \
  do {                                       \
    absl::Status tb_status_ = (expr);        \
    if (!tb_status_.ok()) return tb_status_; \
  } while (false)

#define TB_CONFIG_ASSIGN_OR_RETURN(lhs, expr)               \
  do {                                                      \
    auto tb_status_or_ = (expr);                            \
    if (!tb_status_or_.ok()) return tb_status_or_.status(); \
    lhs = *std::move(tb_status_or_);                        \
  } while (false)

namespace tokenbroker {
namespace {

constexpr absl::string_view kUsBaseUrl = "https://anypoint.mulesoft.com";
constexpr absl::string_view kEuBaseUrl = "https://eu1.anypoint.mulesoft.com";
constexpr absl::string_view kGovBaseUrl = "https://gov.anypoint.mulesoft.com";

// A value in the document together with where it was written and its key
// path ("apps[1].client_secret"). `mark` is the key's position, which is the
// line a reader looks for; for list elements it is the element's own.
struct Field {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;
};

using FieldMap = std::map<std::string, Field>;

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null (an empty value)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
    default:
      return "nothing";
  }
}

bool HasWhitespaceOrControl(absl::string_view s) {
  for (char c : s) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      return true;
    }
  }
  return false;
}

bool IsValidAppName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidEnvName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0])))
    return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

bool IsValidPort(absl::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  int value = 0;
  return absl::SimpleAtoi(port, &value) && value >= 0 && value <= 65535;
}

bool IsValidHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

bool IsValidIpv6Literal(absl::string_view host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' &&
        c != '.') {
      return false;
    }
  }
  return absl::StrContains(host, ':');
}

// Checks "host:port" or "[v6]:port" (the port optional when
// `port_required` is false). Returns an explanation, or empty if valid.
std::string CheckHostPort(absl::string_view authority, bool port_required) {
  absl::string_view host;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return "an IPv6 address must be closed with ']'";
    }
    host = authority.substr(1, close - 1);
    absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return "expected ':PORT' after ']'";
      has_port = true;
      port = rest.substr(1);
    }
    if (!IsValidIpv6Literal(host)) return "the IPv6 address is not valid";
  } else {
    size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos) {
      has_port = true;
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (absl::StrContains(host, ':')) {
        return "an IPv6 address must be written in brackets, as [ADDR]:PORT";
      }
    } else {
      host = authority;
    }
    if (!IsValidHostName(host)) {
      return "the host must be a name or IPv4 address (letters, digits, '.', "
             "'-')";
    }
  }
  if (port_required && !has_port) return "a port is required, as HOST:PORT";
  if (has_port && !IsValidPort(port)) {
    return "the port must be a number from 0 to 65535";
  }
  return "";
}

// Edit distance, for "did you mean" on unknown keys.
size_t Distance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Counts the "---" document markers that follow content: each starts
// another YAML document.
int ExtraDocuments(absl::string_view text) {
  int extra = 0;
  bool content = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(line);
    if (trimmed == "---" || absl::StartsWith(trimmed, "--- ")) {
      if (content) ++extra;
      content = true;  // What follows a marker belongs to its document.
      continue;
    }
    absl::string_view body = absl::StripLeadingAsciiWhitespace(trimmed);
    if (!body.empty() && body[0] != '#' && body[0] != '%') content = true;
  }
  return extra;
}

class Parser {
 public:
  explicit Parser(absl::string_view path) : path_(path) {}

  absl::StatusOr<Config> Parse(absl::string_view yaml_text) {
    // YAML::LoadAll() of yaml-cpp 0.7 loops forever on some malformed input
    // (the fuzzer found ",r"), so load one document and look for a second
    // one by its "---" marker.
    if (int extra = ExtraDocuments(yaml_text); extra > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": the file holds ", extra + 1,
                       " YAML documents; put the whole configuration in one"));
    }
    YAML::Node document;
    try {
      document = YAML::Load(std::string(yaml_text));
    } catch (const YAML::Exception& e) {
      // yaml-cpp's messages are fixed texts ("end of map not found"), they
      // never quote the document, so they cannot leak a secret.
      return absl::InvalidArgumentError(
          absl::StrCat(Where(e.mark), " YAML syntax error: ", e.msg,
                       "; check the indentation and quoting near this line"));
    }
    if (document.IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_,
                       ":1: apps: the configuration is empty; at least one app "
                       "is required under apps"));
    }
    try {
      return ParseRoot(document);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(e.mark), " cannot read the configuration: ", e.msg));
    }
  }

 private:
  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return absl::StrCat(path_, ":");
    return absl::StrCat(path_, ":", mark.line + 1, ":");
  }

  absl::Status Error(const YAML::Mark& mark, absl::string_view key_path,
                     absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(mark), " ", key_path, ": ", what));
  }
  absl::Status Error(const Field& field, absl::string_view what) const {
    return Error(field.mark, field.path, what);
  }

  // Checks that `field` is a map whose keys are all in `allowed`, and fills
  // `out` with its entries.
  absl::Status ReadMap(const Field& field,
                       const std::vector<absl::string_view>& allowed,
                       FieldMap* out) const {
    if (!field.node.IsMap()) {
      return Error(field, absl::StrCat("must be a map with the keys ",
                                       absl::StrJoin(allowed, ", "), "; got ",
                                       Describe(field.node)));
    }
    for (const auto& entry : field.node) {
      const YAML::Node& key = entry.first;
      std::string prefix = field.path.empty() ? "" : field.path + ".";
      if (!key.IsScalar()) {
        return Error(
            key.Mark(), field.path.empty() ? "(top level)" : field.path,
            absl::StrCat("keys must be plain names; got ", Describe(key)));
      }
      const std::string& name = key.Scalar();
      std::string path = prefix + name;
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string hint;
        for (absl::string_view candidate : allowed) {
          if (Distance(name, candidate) <= 2) {
            hint = absl::StrCat(" (did you mean ", candidate, "?)");
            break;
          }
        }
        return Error(
            key.Mark(), path,
            absl::StrCat("unknown key", hint, "; allowed keys here are: ",
                         absl::StrJoin(allowed, ", ")));
      }
      if (out->count(name) != 0) {
        return Error(
            key.Mark(), path,
            absl::StrCat("duplicate key (first given on line ",
                         (*out)[name].mark.line + 1, "); keep only one"));
      }
      (*out)[name] = Field{entry.second, key.Mark(), path};
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const Field& field) const {
    if (!field.node.IsScalar()) {
      return Error(
          field, absl::StrCat("must be a string; got ", Describe(field.node)));
    }
    return field.node.Scalar();
  }

  // A string with no whitespace or control characters, not empty.
  absl::StatusOr<std::string> Token(const Field& field) const {
    std::string value;
    TB_CONFIG_ASSIGN_OR_RETURN(value, String(field));
    if (value.empty()) return Error(field, "must not be empty");
    if (HasWhitespaceOrControl(value)) {
      return Error(field, absl::StrCat("'", value,
                                       "' must not contain whitespace or "
                                       "control characters"));
    }
    return value;
  }

  absl::StatusOr<bool> Bool(const Field& field) const {
    bool value = false;
    if (!field.node.IsScalar() ||
        !YAML::convert<bool>::decode(field.node, value)) {
      return Error(field, absl::StrCat("must be true or false; got ",
                                       field.node.IsScalar()
                                           ? "'" + field.node.Scalar() + "'"
                                           : Describe(field.node)));
    }
    return value;
  }

  absl::StatusOr<double> Double(const Field& field) const {
    double value = 0;
    if (!field.node.IsScalar() ||
        !absl::SimpleAtod(field.node.Scalar(), &value)) {
      return Error(field, absl::StrCat("must be a number; got ",
                                       field.node.IsScalar()
                                           ? "'" + field.node.Scalar() + "'"
                                           : Describe(field.node)));
    }
    return value;
  }

  absl::StatusOr<absl::Duration> Duration(const Field& field,
                                          bool allow_zero) const {
    std::string text;
    TB_CONFIG_ASSIGN_OR_RETURN(text, String(field));
    absl::string_view trimmed = absl::StripAsciiWhitespace(text);
    if (!trimmed.empty() &&
        trimmed.find_first_not_of("0123456789.+-") == absl::string_view::npos) {
      return Error(field,
                   absl::StrCat("'", trimmed, "' has no unit; add one, e.g. \"",
                                trimmed, "s\" (units: ms, s, m, h)"));
    }
    absl::Duration value;
    if (!absl::ParseDuration(trimmed, &value)) {
      return Error(field, absl::StrCat("'", trimmed,
                                       "' is not a duration; write e.g. "
                                       "\"250ms\", \"30s\", \"5m\" or \"1h\""));
    }
    if (value == absl::InfiniteDuration() || value < absl::ZeroDuration() ||
        (!allow_zero && value == absl::ZeroDuration())) {
      return Error(field, absl::StrCat("'", trimmed, "' must be ",
                                       allow_zero ? "zero or more" : "positive",
                                       " and finite"));
    }
    return value;
  }

  template <typename T>
  absl::StatusOr<T> Enum(
      const Field& field,
      const std::vector<std::pair<absl::string_view, T>>& choices) const {
    std::string value;
    TB_CONFIG_ASSIGN_OR_RETURN(value, String(field));
    std::vector<absl::string_view> names;
    for (const auto& [name, result] : choices) {
      if (value == name) return result;
      names.push_back(name);
    }
    return Error(field, absl::StrCat("'", value, "' is not one of ",
                                     absl::StrJoin(names, ", ")));
  }

  absl::StatusOr<std::vector<std::string>> TokenList(const Field& field) const {
    if (!field.node.IsSequence()) {
      return Error(field, absl::StrCat("must be a list of strings, e.g. "
                                       "[a, b]; got ",
                                       Describe(field.node)));
    }
    std::vector<std::string> values;
    for (size_t i = 0; i < field.node.size(); ++i) {
      const YAML::Node element = field.node[i];
      Field item{element, element.Mark(),
                 absl::StrCat(field.path, "[", i, "]")};
      if (item.mark.is_null()) item.mark = field.mark;
      std::string value;
      TB_CONFIG_ASSIGN_OR_RETURN(value, Token(item));
      values.push_back(std::move(value));
    }
    return values;
  }

  absl::StatusOr<std::string> UrlPath(const Field& field) const {
    std::string value;
    TB_CONFIG_ASSIGN_OR_RETURN(value, Token(field));
    if (value[0] != '/' || absl::StartsWith(value, "//")) {
      return Error(field, absl::StrCat("'", value,
                                       "' must be a path starting with a "
                                       "single '/', e.g. /accounts/api/v2/"
                                       "oauth2/token"));
    }
    if (absl::StrContains(value, '?') || absl::StrContains(value, '#')) {
      return Error(field, absl::StrCat("'", value,
                                       "' must be a plain path with no "
                                       "query or fragment"));
    }
    return value;
  }

  // http(s)://host[:port] with no path, query or userinfo. Returns it
  // normalized: lower-case scheme, no trailing slash.
  absl::StatusOr<std::string> BaseUrl(const Field& field) const {
    std::string value;
    TB_CONFIG_ASSIGN_OR_RETURN(value, Token(field));
    constexpr absl::string_view kHint =
        "; write http(s)://HOST[:PORT], e.g. https://anypoint.mulesoft.com";
    absl::string_view rest = value;
    std::string scheme;
    size_t sep = rest.find("://");
    if (sep != absl::string_view::npos) {
      scheme = absl::AsciiStrToLower(rest.substr(0, sep));
      rest.remove_prefix(sep + 3);
    }
    if (scheme != "http" && scheme != "https") {
      return Error(field, absl::StrCat("'", value,
                                       "' must start with https:// or "
                                       "http://",
                                       kHint));
    }
    while (absl::ConsumeSuffix(&rest, "/")) {
    }
    if (rest.find_first_of("/?#") != absl::string_view::npos) {
      return Error(field, absl::StrCat("'", value,
                                       "' must not have a path, query or "
                                       "fragment (endpoint paths are set with "
                                       "token_path, revoke_path and "
                                       "authorize_path)"));
    }
    if (absl::StrContains(rest, '@')) {
      // Do not echo it: userinfo may hold a password.
      return Error(field, absl::StrCat("must not contain user information "
                                       "(user:password@)",
                                       kHint));
    }
    std::string problem = CheckHostPort(rest, /*port_required=*/false);
    if (!problem.empty()) {
      return Error(field, absl::StrCat("'", value, "': ", problem, kHint));
    }
    return absl::StrCat(scheme, "://", rest);
  }

  // A SecretRef: a plain string, or a map with one of file, env, value.
  // `secret` says whether it holds a secret (then an inline value is refused
  // unless development.allow_inline_secrets). No message quotes a value.
  absl::StatusOr<SecretRef> Secret(const Field& field, bool secret) const {
    const std::string inline_refused = absl::StrCat(
        "inline secrets are refused; use {file: PATH} or {env: NAME} (or set "
        "development.allow_inline_secrets: true for local development)");
    SecretRef ref;
    if (field.node.IsScalar()) {
      if (secret && !allow_inline_secrets_) return Error(field, inline_refused);
      ref.value = field.node.Scalar();
      if (ref.value.empty()) return Error(field, "must not be empty");
      return ref;
    }
    if (!field.node.IsMap()) {
      return Error(field,
                   absl::StrCat("must be ", secret ? "" : "a string or ",
                                "a map {file: PATH} or {env: NAME}; got ",
                                Describe(field.node)));
    }
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(ReadMap(field, {"file", "env", "value"}, &keys));
    if (keys.size() != 1) {
      return Error(field, "give exactly one of file, env or value");
    }
    const auto& [kind, source] = *keys.begin();
    if (!source.node.IsScalar()) {
      return Error(source, absl::StrCat("must be a string; got ",
                                        Describe(source.node)));
    }
    if (kind == "file") {
      TB_CONFIG_ASSIGN_OR_RETURN(ref.file, String(source));
      if (ref.file.empty()) return Error(source, "must be a file path");
    } else if (kind == "env") {
      TB_CONFIG_ASSIGN_OR_RETURN(ref.env, String(source));
      if (!IsValidEnvName(ref.env)) {
        return Error(source, absl::StrCat("'", ref.env,
                                          "' is not an environment variable "
                                          "name ([A-Za-z_][A-Za-z0-9_]*)"));
      }
    } else {
      if (secret && !allow_inline_secrets_) return Error(field, inline_refused);
      ref.value = source.node.Scalar();
      if (ref.value.empty()) return Error(source, "must not be empty");
    }
    return ref;
  }

  absl::Status ParseListen(const Field& field, ListenConfig* listen) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field, {"grpc", "tls", "admin_http", "probe_grpc"}, &keys));
    for (const auto& [name, target] :
         std::vector<std::pair<absl::string_view, std::string*>>{
             {"admin_http", &listen->admin_http},
             {"probe_grpc", &listen->probe_grpc}}) {
      auto it = keys.find(std::string(name));
      if (it == keys.end()) continue;
      TB_CONFIG_ASSIGN_OR_RETURN(*target, String(it->second));
      if (target->empty()) continue;
      std::string problem = CheckHostPort(*target, /*port_required=*/true);
      if (!problem.empty()) {
        return Error(it->second,
                     absl::StrCat("'", *target, "': ", problem,
                                  "; write HOST:PORT or [IPV6]:PORT, or \"\" "
                                  "to disable this listener"));
      }
    }
    if (auto it = keys.find("tls"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(ParseTls(it->second, &listen->tls));
    }
    if (auto it = keys.find("grpc"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(listen->grpc, Token(it->second));
      absl::string_view address = listen->grpc;
      if (absl::ConsumePrefix(&address, "unix:")) {
        if (address.empty()) {
          return Error(it->second,
                       "unix: needs a socket path, e.g. "
                       "unix:/run/token-broker.sock");
        }
      } else {
        std::string problem = CheckHostPort(address, /*port_required=*/true);
        if (!problem.empty()) {
          return Error(it->second,
                       absl::StrCat("'", listen->grpc, "': ", problem,
                                    "; write HOST:PORT, [IPV6]:PORT or "
                                    "unix:PATH"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseTls(const Field& field, TlsConfig* tls) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field, {"cert_file", "key_file", "client_ca_file"}, &keys));
    for (const auto& [name, target] :
         std::vector<std::pair<absl::string_view, std::string*>>{
             {"cert_file", &tls->cert_file},
             {"key_file", &tls->key_file},
             {"client_ca_file", &tls->client_ca_file}}) {
      if (auto it = keys.find(std::string(name)); it != keys.end()) {
        TB_CONFIG_ASSIGN_OR_RETURN(*target, Token(it->second));
      }
    }
    if (tls->cert_file.empty() || tls->key_file.empty()) {
      return Error(field,
                   "cert_file and key_file are both required (PEM files of "
                   "the broker's certificate chain and private key)");
    }
    return absl::OkStatus();
  }

  absl::Status ParseAudit(const Field& field, AuditConfig* audit) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(ReadMap(field, {"path", "fail_closed"}, &keys));
    if (auto it = keys.find("path"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(audit->path, Token(it->second));
    }
    if (auto it = keys.find("fail_closed"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(audit->fail_closed, Bool(it->second));
      // Without a path nothing is written, so nothing could ever fail: the
      // operator asked for a guarantee the broker would not give.
      if (audit->fail_closed && audit->path.empty()) {
        return Error(it->second,
                     "fail_closed needs audit.path (a file, or \"-\" for "
                     "stdout): without it no record is written");
      }
    }
    return absl::OkStatus();
  }

  // "METHOD /path/pattern".
  absl::StatusOr<RouteRule> Route(const Field& field) const {
    std::string text;
    TB_CONFIG_ASSIGN_OR_RETURN(text, String(field));
    constexpr absl::string_view kHint =
        "; write \"METHOD /path\", e.g. \"GET /accounts/api/organizations/*/"
        "environments\" (METHOD may be *; * matches one path segment, a final "
        "** the rest)";
    std::vector<std::string> parts =
        absl::StrSplit(text, ' ', absl::SkipEmpty());
    if (parts.size() != 2) {
      return Error(field, absl::StrCat("'", text, "' is not a route", kHint));
    }
    RouteRule rule;
    rule.text = text;
    rule.method = parts[0];
    static const std::set<std::string>* const kMethods =
        new std::set<std::string>{"*",   "GET",   "HEAD",  "POST",
                                  "PUT", "PATCH", "DELETE"};
    if (kMethods->count(rule.method) == 0) {
      return Error(field, absl::StrCat("'", rule.method,
                                       "' is not GET, HEAD, POST, PUT, "
                                       "PATCH, DELETE or *",
                                       kHint));
    }
    absl::string_view path = parts[1];
    if (!absl::ConsumePrefix(&path, "/") ||
        path.find_first_of("?#%\\") != absl::string_view::npos) {
      return Error(field,
                   absl::StrCat("'", parts[1],
                                "' must be a plain path starting with '/' "
                                "(no query, fragment, '%' or '\\')",
                                kHint));
    }
    rule.segments = absl::StrSplit(path, '/');
    for (size_t i = 0; i < rule.segments.size(); ++i) {
      const std::string& segment = rule.segments[i];
      if (segment == "." || segment == "..") {
        return Error(field, absl::StrCat("'", parts[1],
                                         "' must not contain . or .. "
                                         "segments"));
      }
      if (segment == "**" && i + 1 != rule.segments.size()) {
        return Error(field, absl::StrCat("'", parts[1],
                                         "': ** is allowed only as the last "
                                         "segment"));
      }
      if (segment != "*" && segment != "**" &&
          absl::StrContains(segment, '*')) {
        return Error(field, absl::StrCat("'", parts[1],
                                         "': * must stand alone in a "
                                         "segment"));
      }
    }
    return rule;
  }

  absl::StatusOr<AppGrant> ParseGrant(
      const Field& field, const std::vector<AppConfig>& apps) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field, {"app", "scopes", "get_token", "routes"}, &keys));
    AppGrant grant;
    auto it = keys.find("app");
    if (it == keys.end()) {
      return Error(field, "app is required: the name of a configured app");
    }
    TB_CONFIG_ASSIGN_OR_RETURN(grant.app, Token(it->second));
    auto app = std::find_if(apps.begin(), apps.end(), [&](const AppConfig& a) {
      return a.name == grant.app;
    });
    if (app == apps.end()) {
      return Error(it->second, absl::StrCat("'", grant.app,
                                            "' is not an app of this config "
                                            "(see apps)"));
    }
    if (it = keys.find("scopes"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(grant.scopes, TokenList(it->second));
      std::sort(grant.scopes.begin(), grant.scopes.end());
      grant.scopes.erase(std::unique(grant.scopes.begin(), grant.scopes.end()),
                         grant.scopes.end());
      if (std::binary_search(grant.scopes.begin(), grant.scopes.end(), "*")) {
        if (grant.scopes.size() != 1) {
          return Error(it->second, "'*' (every scope of the app) stands alone");
        }
        grant.scopes.clear();
        grant.all_scopes = true;
      }
      for (const std::string& scope : grant.scopes) {
        if (scope != "profile" &&
            !std::binary_search(app->scopes.begin(), app->scopes.end(),
                                scope)) {
          return Error(it->second,
                       absl::StrCat("scope '", scope, "' is not among app ",
                                    app->name, "'s scopes [",
                                    absl::StrJoin(app->scopes, " "), "]"));
        }
      }
    }
    if (it = keys.find("get_token"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(grant.get_token, Bool(it->second));
    }
    if (it = keys.find("routes"); it != keys.end()) {
      if (!it->second.node.IsSequence()) {
        return Error(it->second, "must be a list of \"METHOD /path\" routes");
      }
      for (size_t i = 0; i < it->second.node.size(); ++i) {
        const YAML::Node element = it->second.node[i];
        Field item{element, element.Mark(),
                   absl::StrCat(it->second.path, "[", i, "]")};
        if (item.mark.is_null()) item.mark = it->second.mark;
        RouteRule rule;
        TB_CONFIG_ASSIGN_OR_RETURN(rule, Route(item));
        grant.routes.push_back(std::move(rule));
      }
    }
    return grant;
  }

  absl::Status ParseCallers(const Field& field,
                            const std::vector<AppConfig>& apps,
                            std::vector<CallerConfig>* callers) const {
    if (!field.node.IsSequence()) {
      return Error(field, absl::StrCat("must be a list of callers (each item "
                                       "starting with '- name: ...'); got ",
                                       Describe(field.node)));
    }
    std::map<std::string, std::string> owners;  // Identity or key -> caller.
    for (size_t i = 0; i < field.node.size(); ++i) {
      const YAML::Node element = field.node[i];
      Field item{element, element.Mark(),
                 absl::StrCat(field.path, "[", i, "]")};
      if (item.mark.is_null()) item.mark = field.mark;
      FieldMap keys;
      TB_CONFIG_RETURN_IF_ERROR(ReadMap(
          item, {"name", "identities", "bearer_key_sha256", "admin", "grants"},
          &keys));
      CallerConfig caller;
      auto it = keys.find("name");
      if (it == keys.end()) {
        return Error(item, "name is required (used in audit records)");
      }
      TB_CONFIG_ASSIGN_OR_RETURN(caller.name, Token(it->second));
      if (!IsValidAppName(caller.name)) {
        return Error(it->second,
                     absl::StrCat("'", caller.name,
                                  "' is not a valid caller name; use 1 to 64 "
                                  "letters, digits, '.', '_' or '-'"));
      }
      if (owners.count("name:" + caller.name) != 0) {
        return Error(it->second,
                     absl::StrCat("duplicate caller name '", caller.name, "'"));
      }
      owners["name:" + caller.name] = caller.name;
      if (it = keys.find("identities"); it != keys.end()) {
        std::vector<std::string> identities;
        TB_CONFIG_ASSIGN_OR_RETURN(identities, TokenList(it->second));
        for (std::string& identity : identities) {
          auto [pos, inserted] = owners.emplace("id:" + identity, caller.name);
          if (!inserted) {
            return Error(
                it->second,
                absl::StrCat("identity '", identity,
                             "' is already given to caller ", pos->second));
          }
          // Anything that reads as a SPIFFE id is one, and must be a valid
          // one: a CN entry "spiffe://..." would let a certificate without
          // SANs pose as that workload.
          if (absl::StartsWithIgnoreCase(identity, "spiffe:")) {
            if (std::string problem = CheckSpiffeId(identity);
                !problem.empty()) {
              return Error(
                  it->second,
                  absl::StrCat("'", identity,
                               "' is not a valid SPIFFE id: ", problem,
                               "; write spiffe://TRUST-DOMAIN/PATH, e.g. "
                               "spiffe://cluster.local/ns/shop/sa/orders "
                               "(other entries are certificate CNs)"));
            }
            caller.spiffe_ids.push_back(std::move(identity));
          } else {
            caller.common_names.push_back(std::move(identity));
          }
        }
      }
      if (it = keys.find("bearer_key_sha256"); it != keys.end()) {
        TB_CONFIG_ASSIGN_OR_RETURN(caller.bearer_key_sha256,
                                   TokenList(it->second));
        for (std::string& hash : caller.bearer_key_sha256) {
          hash = absl::AsciiStrToLower(hash);
          if (hash.size() != 64 ||
              hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
            return Error(it->second,
                         "each entry must be the 64 hex digits of a key's "
                         "SHA-256 (sha256sum KEYFILE), never the key itself");
          }
          auto [pos, inserted] = owners.emplace("key:" + hash, caller.name);
          if (!inserted) {
            return Error(it->second,
                         absl::StrCat("a key hash is already given to caller ",
                                      pos->second));
          }
        }
      }
      if (it = keys.find("admin"); it != keys.end()) {
        TB_CONFIG_ASSIGN_OR_RETURN(caller.admin, Bool(it->second));
      }
      if (it = keys.find("grants"); it != keys.end()) {
        if (!it->second.node.IsSequence()) {
          return Error(it->second, "must be a list of grants ('- app: ...')");
        }
        std::set<std::string> granted;
        for (size_t j = 0; j < it->second.node.size(); ++j) {
          const YAML::Node g = it->second.node[j];
          Field grant_field{g, g.Mark(),
                            absl::StrCat(it->second.path, "[", j, "]")};
          if (grant_field.mark.is_null()) grant_field.mark = it->second.mark;
          AppGrant grant;
          TB_CONFIG_ASSIGN_OR_RETURN(grant, ParseGrant(grant_field, apps));
          if (!granted.insert(grant.app).second) {
            return Error(grant_field,
                         absl::StrCat("app ", grant.app,
                                      " is granted twice; merge the grants"));
          }
          caller.grants.push_back(std::move(grant));
        }
      }
      callers->push_back(std::move(caller));
    }
    return absl::OkStatus();
  }

  absl::Status ParseUpstream(const Field& field,
                             UpstreamConfig* upstream) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field,
                {"ca_file", "connect_timeout", "request_timeout",
                 "max_request_bytes", "max_response_bytes"},
                &keys));
    for (const auto& [name, target] :
         std::vector<std::pair<absl::string_view, int64_t*>>{
             {"max_request_bytes", &upstream->max_request_bytes},
             {"max_response_bytes", &upstream->max_response_bytes}}) {
      auto it = keys.find(std::string(name));
      if (it == keys.end()) continue;
      std::string text;
      TB_CONFIG_ASSIGN_OR_RETURN(text, String(it->second));
      int64_t value = 0;
      if (!absl::SimpleAtoi(text, &value) || value < 1024 ||
          value > (int64_t{1} << 30)) {
        return Error(it->second,
                     absl::StrCat("'", text,
                                  "' must be a number of bytes between 1024 "
                                  "and 1073741824, e.g. 8388608 for 8 MiB"));
      }
      *target = value;
    }
    if (auto it = keys.find("ca_file"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(upstream->ca_file, String(it->second));
    }
    if (auto it = keys.find("connect_timeout"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(upstream->connect_timeout,
                                 Duration(it->second, false));
    }
    if (auto it = keys.find("request_timeout"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(upstream->request_timeout,
                                 Duration(it->second, false));
    }
    return absl::OkStatus();
  }

  // A whole number in [min, max]; `example` completes the error message.
  absl::StatusOr<int64_t> Count(const Field& field, int64_t min, int64_t max,
                                absl::string_view example) const {
    std::string text;
    TB_CONFIG_ASSIGN_OR_RETURN(text, String(field));
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
      return Error(field, absl::StrCat("'", text,
                                       "' must be a whole number "
                                       "between ",
                                       min, " and ", max, ", e.g. ", example));
    }
    return value;
  }

  absl::Status ParseLimits(const Field& field, LimitsConfig* limits) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field,
                {"max_calls_in_flight", "max_calls_per_caller",
                 "max_watches_per_caller", "max_stream_buffer_bytes",
                 "max_stream_lifetime"},
                &keys));
    const std::pair<absl::string_view, int*> counts[] = {
        {"max_calls_in_flight", &limits->max_calls_in_flight},
        {"max_calls_per_caller", &limits->max_calls_per_caller},
        {"max_watches_per_caller", &limits->max_watches_per_caller}};
    for (const auto& [name, target] : counts) {
      if (auto it = keys.find(std::string(name)); it != keys.end()) {
        int64_t value;
        TB_CONFIG_ASSIGN_OR_RETURN(value, Count(it->second, 1, 1000000, "128"));
        *target = static_cast<int>(value);
      }
    }
    if (auto it = keys.find("max_stream_buffer_bytes"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(
          limits->max_stream_buffer_bytes,
          Count(it->second, 1 << 20, int64_t{64} << 30, "268435456"));
    }
    if (auto it = keys.find("max_stream_lifetime"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(limits->max_stream_lifetime,
                                 Duration(it->second, false));
    }
    return absl::OkStatus();
  }

  absl::Status ParseCache(const Field& field, CachePolicy* cache) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field,
                {"min_ttl", "refresh_fraction", "refresh_jitter",
                 "backoff_base", "backoff_max", "rejected_retry",
                 "idle_evict_after", "default_lifetime", "min_lifetime",
                 "max_lifetime", "fetch_timeout", "max_waiters_per_key"},
                &keys));
    if (auto it = keys.find("max_waiters_per_key"); it != keys.end()) {
      int64_t value;
      TB_CONFIG_ASSIGN_OR_RETURN(value, Count(it->second, 1, 1000000, "1024"));
      cache->max_waiters_per_key = static_cast<int>(value);
    }
    const std::vector<std::pair<absl::string_view, absl::Duration*>> durations =
        {{"min_ttl", &cache->min_ttl},
         {"backoff_base", &cache->backoff_base},
         {"backoff_max", &cache->backoff_max},
         {"rejected_retry", &cache->rejected_retry},
         {"idle_evict_after", &cache->idle_evict_after},
         {"default_lifetime", &cache->default_lifetime},
         {"min_lifetime", &cache->min_lifetime},
         {"max_lifetime", &cache->max_lifetime},
         {"fetch_timeout", &cache->fetch_timeout}};
    for (const auto& [name, target] : durations) {
      if (auto it = keys.find(std::string(name)); it != keys.end()) {
        TB_CONFIG_ASSIGN_OR_RETURN(
            *target, Duration(it->second, /*allow_zero=*/name == "min_ttl"));
      }
    }
    if (auto it = keys.find("refresh_fraction"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(cache->refresh_fraction, Double(it->second));
      if (!(cache->refresh_fraction > 0 && cache->refresh_fraction < 1)) {
        return Error(it->second,
                     "must be between 0 and 1 exclusive, e.g. 0.66 (refresh "
                     "at two thirds of the token lifetime)");
      }
    }
    if (auto it = keys.find("refresh_jitter"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(cache->refresh_jitter, Double(it->second));
      if (!(cache->refresh_jitter >= 0 && cache->refresh_jitter < 0.5)) {
        return Error(it->second,
                     "must be at least 0 and less than 0.5, e.g. 0.1");
      }
    }
    // Cross-field checks name the key that was written, or the cache map
    // when both sides are defaults (which cannot conflict).
    auto where = [&](absl::string_view a, absl::string_view b) {
      for (absl::string_view name : {a, b}) {
        if (auto it = keys.find(std::string(name)); it != keys.end()) {
          return it->second;
        }
      }
      return field;
    };
    if (cache->min_ttl >= cache->max_lifetime) {
      return Error(
          where("min_ttl", "max_lifetime"),
          absl::StrCat("cache.min_ttl (", absl::FormatDuration(cache->min_ttl),
                       ") must be less than cache.max_lifetime (",
                       absl::FormatDuration(cache->max_lifetime), ")"));
    }
    if (cache->min_ttl >= cache->default_lifetime) {
      return Error(
          where("min_ttl", "default_lifetime"),
          absl::StrCat("cache.min_ttl (", absl::FormatDuration(cache->min_ttl),
                       ") must be less than cache.default_lifetime (",
                       absl::FormatDuration(cache->default_lifetime), ")"));
    }
    if (cache->default_lifetime > cache->max_lifetime) {
      return Error(
          where("default_lifetime", "max_lifetime"),
          absl::StrCat("cache.default_lifetime (",
                       absl::FormatDuration(cache->default_lifetime),
                       ") must not exceed cache.max_lifetime (",
                       absl::FormatDuration(cache->max_lifetime), ")"));
    }
    if (cache->min_lifetime > cache->default_lifetime) {
      return Error(
          where("min_lifetime", "default_lifetime"),
          absl::StrCat("cache.min_lifetime (",
                       absl::FormatDuration(cache->min_lifetime),
                       ") must not exceed cache.default_lifetime (",
                       absl::FormatDuration(cache->default_lifetime), ")"));
    }
    if (cache->backoff_base > cache->backoff_max) {
      return Error(where("backoff_base", "backoff_max"),
                   absl::StrCat("cache.backoff_base (",
                                absl::FormatDuration(cache->backoff_base),
                                ") must not exceed cache.backoff_max (",
                                absl::FormatDuration(cache->backoff_max), ")"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseDevelopment(const Field& field,
                                DevelopmentConfig* development) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(field, {"allow_inline_secrets", "insecure_plaintext"}, &keys));
    if (auto it = keys.find("allow_inline_secrets"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(development->allow_inline_secrets,
                                 Bool(it->second));
    }
    if (auto it = keys.find("insecure_plaintext"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(development->insecure_plaintext,
                                 Bool(it->second));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<AppConfig> ParseApp(const Field& field) const {
    FieldMap keys;
    TB_CONFIG_RETURN_IF_ERROR(ReadMap(
        field,
        {"name", "control_plane", "base_url", "grant_type", "client_id",
         "client_secret", "scopes", "org_id", "environment_ids", "token_path",
         "revoke_path", "authorize_path", "send_scope", "client_auth"},
        &keys));
    AppConfig app;
    auto it = keys.find("name");
    if (it == keys.end()) {
      return Error(field,
                   "name is required (letters, digits, '.', '_', '-'; "
                   "at most 64)");
    }
    TB_CONFIG_ASSIGN_OR_RETURN(app.name, String(it->second));
    if (!IsValidAppName(app.name)) {
      return Error(it->second,
                   absl::StrCat("'", app.name,
                                "' is not a valid app name; use 1 to 64 "
                                "letters, digits, '.', '_' or '-'"));
    }

    auto control_plane = keys.find("control_plane");
    auto base_url = keys.find("base_url");
    if (control_plane != keys.end() && base_url != keys.end()) {
      return Error(base_url->second,
                   "give either control_plane or base_url, not both");
    }
    if (control_plane != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(
          app.control_plane,
          Enum<std::string>(control_plane->second,
                            {{"us", "us"}, {"eu", "eu"}, {"gov", "gov"}}));
      app.base_url = ControlPlaneBaseUrl(app.control_plane);
    } else if (base_url != keys.end()) {
      app.control_plane = "custom";
      TB_CONFIG_ASSIGN_OR_RETURN(app.base_url, BaseUrl(base_url->second));
    } else {
      return Error(field.mark, field.path + ".control_plane",
                   "one of control_plane (us, eu, gov) or base_url is "
                   "required");
    }

    if (it = keys.find("grant_type"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(
          app.grant_type,
          Enum<GrantType>(
              it->second,
              {{"client_credentials", GrantType::kClientCredentials},
               {"authorization_code", GrantType::kAuthorizationCode}}));
    }
    if (it = keys.find("client_id"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.client_id,
                                 Secret(it->second, /*secret=*/false));
    } else {
      return Error(field.mark, field.path + ".client_id",
                   "is required: the connected app's client id, as a string "
                   "or {file: PATH} or {env: NAME}");
    }
    if (it = keys.find("client_secret"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.client_secret,
                                 Secret(it->second, /*secret=*/true));
    } else {
      return Error(field.mark, field.path + ".client_secret",
                   "is required: {file: PATH} or {env: NAME}");
    }
    if (it = keys.find("scopes"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.scopes, TokenList(it->second));
      std::sort(app.scopes.begin(), app.scopes.end());
      app.scopes.erase(std::unique(app.scopes.begin(), app.scopes.end()),
                       app.scopes.end());
    }
    if (it = keys.find("org_id"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.org_id, Token(it->second));
    }
    if (it = keys.find("environment_ids"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.environment_ids, TokenList(it->second));
    }
    if (it = keys.find("token_path"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.token_path, UrlPath(it->second));
    }
    if (it = keys.find("revoke_path"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.revoke_path, UrlPath(it->second));
    }
    if (it = keys.find("authorize_path"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.authorize_path, UrlPath(it->second));
    }
    if (it = keys.find("send_scope"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(app.send_scope, Bool(it->second));
    }
    if (it = keys.find("client_auth"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(
          app.client_auth,
          Enum<ClientAuthMethod>(
              it->second,
              {{"client_secret_post", ClientAuthMethod::kClientSecretPost},
               {"client_secret_basic", ClientAuthMethod::kClientSecretBasic}}));
    }
    return app;
  }

  absl::Status ParseApps(const Field& field, std::vector<AppConfig>* apps) {
    if (!field.node.IsSequence()) {
      return Error(field, absl::StrCat("must be a list of apps (each item "
                                       "starting with '- name: ...'); got ",
                                       Describe(field.node)));
    }
    if (field.node.size() == 0) {
      return Error(field, "at least one app is required");
    }
    std::map<std::string, int> lines;  // App name -> line, for duplicates.
    for (size_t i = 0; i < field.node.size(); ++i) {
      const YAML::Node element = field.node[i];
      Field item{element, element.Mark(),
                 absl::StrCat(field.path, "[", i, "]")};
      if (item.mark.is_null()) item.mark = field.mark;
      AppConfig app;
      TB_CONFIG_ASSIGN_OR_RETURN(app, ParseApp(item));
      YAML::Mark name_mark = element["name"].Mark();
      if (name_mark.is_null()) name_mark = item.mark;
      if (auto [pos, inserted] = lines.emplace(app.name, name_mark.line + 1);
          !inserted) {
        return Error(name_mark, item.path + ".name",
                     absl::StrCat("duplicate app name '", app.name,
                                  "' (first used on line ", pos->second,
                                  "); app names must be unique"));
      }
      apps->push_back(std::move(app));
    }
    std::sort(
        apps->begin(), apps->end(),
        [](const AppConfig& a, const AppConfig& b) { return a.name < b.name; });
    return absl::OkStatus();
  }

  absl::StatusOr<Config> ParseRoot(const YAML::Node& root) {
    Config config;
    config.path = path_;
    FieldMap keys;
    Field root_field{root, root.Mark(), ""};
    if (!root.IsMap()) {
      return Error(root.Mark(), "(top level)",
                   absl::StrCat("must be a map with keys such as listen, "
                                "cache and apps; got ",
                                Describe(root)));
    }
    TB_CONFIG_RETURN_IF_ERROR(
        ReadMap(root_field,
                {"listen", "log_level", "upstream", "cache", "development",
                 "apps", "callers", "audit", "limits"},
                &keys));
    // development first: it decides whether inline secrets are accepted.
    if (auto it = keys.find("development"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(
          ParseDevelopment(it->second, &config.development));
    }
    allow_inline_secrets_ = config.development.allow_inline_secrets;
    if (auto it = keys.find("listen"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(ParseListen(it->second, &config.listen));
    }
    if (auto it = keys.find("log_level"); it != keys.end()) {
      TB_CONFIG_ASSIGN_OR_RETURN(
          config.log_level,
          Enum<std::string>(it->second, {{"debug", "debug"},
                                         {"info", "info"},
                                         {"warning", "warning"},
                                         {"error", "error"}}));
    }
    if (auto it = keys.find("upstream"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(ParseUpstream(it->second, &config.upstream));
    }
    if (auto it = keys.find("cache"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(ParseCache(it->second, &config.cache));
    }
    if (auto it = keys.find("limits"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(ParseLimits(it->second, &config.limits));
    }
    auto apps = keys.find("apps");
    if (apps == keys.end()) {
      return Error(root.Mark(), "apps",
                   "is required: a list with at least one connected app");
    }
    TB_CONFIG_RETURN_IF_ERROR(ParseApps(apps->second, &config.apps));
    if (auto it = keys.find("callers"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(
          ParseCallers(it->second, config.apps, &config.callers));
    }
    if (auto it = keys.find("audit"); it != keys.end()) {
      TB_CONFIG_RETURN_IF_ERROR(ParseAudit(it->second, &config.audit));
    }
    return config;
  }

  std::string path_;
  bool allow_inline_secrets_ = false;
};

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
               a.revoke_path, a.authorize_path, a.send_scope, a.client_auth) !=
      std::tie(b.name, b.base_url, b.grant_type, b.client_id, b.client_secret,
               b.scopes, b.org_id, b.environment_ids, b.token_path,
               b.revoke_path, b.authorize_path, b.send_scope, b.client_auth)) {
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
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(id->data()), id->size(),
           digest);
    OPENSSL_cleanse(id->data(), id->size());
    app.client_id_sha256 = absl::BytesToHexString(absl::string_view(
        reinterpret_cast<const char*>(digest), sizeof(digest)));
  }
}

const AppGrant* CallerConfig::FindGrant(absl::string_view app) const {
  for (const AppGrant& grant : grants) {
    if (grant.app == app) return &grant;
  }
  return nullptr;
}

absl::StatusOr<Config> ParseConfig(absl::string_view yaml_text,
                                   absl::string_view path) {
  return Parser(path).Parse(yaml_text);
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config file ", path, " is a directory; give the path of a YAML file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int error = errno;
    std::string reason = std::strerror(error);
    if (error == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("config file ", path, " not found: ", reason,
                       "; check the path (see config/broker.example.yaml)"));
    }
    return absl::InvalidArgumentError(absl::StrCat("cannot read config file ",
                                                   path, ": ", reason,
                                                   "; check its permissions"));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file ", path, ": read error"));
  }
  absl::StatusOr<Config> config = ParseConfig(content.str(), path);
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

#undef TB_CONFIG_ASSIGN_OR_RETURN
#undef TB_CONFIG_RETURN_IF_ERROR
