#include "tests/testing/scripted_browser.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "httplib.h"

namespace tokenbroker::testing {
namespace {

constexpr int kMaxRedirects = 10;
constexpr char kLoginAction[] = "/accounts/api/v2/oauth2/authorize/login";
constexpr char kConsentAction[] = "/accounts/api/v2/oauth2/authorize/consent";

struct Url {
  std::string host;  // lower case, without brackets
  int port = 80;
  std::string target;  // path and query, at least "/"

  std::string authority() const {
    const std::string h =
        host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return absl::StrCat(h, ":", port);
  }
  std::string site() const { return "http://" + host; }
  std::string path() const { return target.substr(0, target.find('?')); }
  std::string ToString() const {
    return absl::StrCat("http://", authority(), target);
  }
};

absl::StatusOr<Url> ParseUrl(absl::string_view text) {
  text = text.substr(0, text.find('#'));
  if (!absl::ConsumePrefix(&text, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("only http:// URLs are supported, not ", text));
  }
  const size_t slash = text.find_first_of("/?");
  absl::string_view authority = text.substr(0, slash);
  Url url;
  url.target =
      slash == absl::string_view::npos ? "/" : std::string(text.substr(slash));
  if (url.target[0] == '?') url.target = "/" + url.target;
  if (authority.empty() || authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("no host (or userinfo) in ", text));
  }
  absl::string_view port;
  if (authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad host in ", text));
    }
    url.host = std::string(authority.substr(1, close - 1));
    port = authority.substr(close + 1);
  } else {
    const size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port = authority.substr(colon);
  }
  if (!port.empty()) {
    if (!absl::ConsumePrefix(&port, ":") ||
        !absl::SimpleAtoi(port, &url.port) || url.port <= 0 ||
        url.port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in ", text));
    }
  }
  absl::AsciiStrToLower(&url.host);
  return url;
}

bool IsLoopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr addr;
  return inet_pton(AF_INET, host.c_str(), &addr) == 1 &&
         (ntohl(addr.s_addr) >> 24) == 127;
}

// Percent-encodes what may not appear in a request target (spaces, controls,
// non-ASCII and a few delimiters) and leaves existing escapes alone.
std::string SanitizeTarget(absl::string_view url) {
  std::string out;
  for (const char ch : url) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || ch == '"' || ch == '<' || ch == '>' ||
        ch == '`' || ch == '{' || ch == '}' || ch == '|' || ch == '\\' ||
        ch == '^') {
      absl::StrAppend(
          &out, "%",
          absl::AsciiStrToUpper(absl::StrCat(absl::Hex(c, absl::kZeroPad2))));
    } else {
      out += ch;
    }
  }
  return out;
}

// `ref` (absolute, scheme-relative, absolute-path or relative) against
// `base`.
std::string Resolve(const Url& base, absl::string_view ref) {
  ref = ref.substr(0, ref.find('#'));
  if (absl::StartsWithIgnoreCase(ref, "http://") ||
      absl::StartsWithIgnoreCase(ref, "https://") ||
      (ref.find(':') != absl::string_view::npos &&
       ref.find(':') < ref.find_first_of("/?"))) {
    return std::string(ref);
  }
  if (absl::StartsWith(ref, "//")) return absl::StrCat("http:", ref);
  const std::string origin = absl::StrCat("http://", base.authority());
  if (ref.empty()) return origin + base.target;
  if (ref[0] == '/') return absl::StrCat(origin, ref);
  if (ref[0] == '?') return absl::StrCat(origin, base.path(), ref);
  const std::string path = base.path();
  return absl::StrCat(origin, path.substr(0, path.rfind('/') + 1), ref);
}

std::string HtmlUnescape(absl::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    const size_t semi = text.find(';', i);
    if (semi == absl::string_view::npos || semi - i > 10) {
      out += text[i++];
      continue;
    }
    const absl::string_view entity = text.substr(i + 1, semi - i - 1);
    static const auto* const kNamed = new std::map<std::string, char>{
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    uint32_t code = 0;
    bool ok = false;
    if (auto it = kNamed->find(std::string(entity)); it != kNamed->end()) {
      code = static_cast<unsigned char>(it->second);
      ok = true;
    } else if (absl::StartsWith(entity, "#x") ||
               absl::StartsWith(entity, "#X")) {
      ok = absl::SimpleHexAtoi(entity.substr(2), &code);
    } else if (absl::StartsWith(entity, "#")) {
      ok = absl::SimpleAtoi(entity.substr(1), &code);
    }
    if (!ok || code == 0 || code > 0x7f) {
      out += text[i++];  // left as written: enough for the pages we test
      continue;
    }
    out += static_cast<char>(code);
    i = semi + 1;
  }
  return out;
}

// The attributes of the tag whose name ends at `i`; `i` moves past '>'.
std::map<std::string, std::string> ParseAttributes(absl::string_view html,
                                                   size_t& i) {
  std::map<std::string, std::string> attributes;
  auto space = [](char c) { return absl::ascii_isspace(c) || c == '/'; };
  while (i < html.size()) {
    while (i < html.size() && space(html[i])) ++i;
    if (i >= html.size()) break;
    if (html[i] == '>') {
      ++i;
      break;
    }
    const size_t name_start = i;
    while (i < html.size() && !space(html[i]) && html[i] != '=' &&
           html[i] != '>') {
      ++i;
    }
    std::string name(html.substr(name_start, i - name_start));
    absl::AsciiStrToLower(&name);
    while (i < html.size() && absl::ascii_isspace(html[i])) ++i;
    std::string value;
    if (i < html.size() && html[i] == '=') {
      ++i;
      while (i < html.size() && absl::ascii_isspace(html[i])) ++i;
      if (i < html.size() && (html[i] == '"' || html[i] == '\'')) {
        const char quote = html[i++];
        const size_t end = html.find(quote, i);
        const size_t stop = end == absl::string_view::npos ? html.size() : end;
        value = HtmlUnescape(html.substr(i, stop - i));
        i = stop + 1;
      } else {
        const size_t start = i;
        while (i < html.size() && !absl::ascii_isspace(html[i]) &&
               html[i] != '>') {
          ++i;
        }
        value = HtmlUnescape(html.substr(start, i - start));
      }
    }
    if (!name.empty()) attributes.emplace(std::move(name), std::move(value));
  }
  return attributes;
}

std::string AttrOr(const std::map<std::string, std::string>& attributes,
                   const std::string& name, const std::string& fallback) {
  auto it = attributes.find(name);
  return it == attributes.end() ? fallback : it->second;
}

std::string FormEncode(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    absl::StrAppend(&out, httplib::detail::encode_query_param(name), "=",
                    httplib::detail::encode_query_param(value));
  }
  return out;
}

// RFC 6265 5.1.4.
bool PathMatches(const std::string& cookie_path,
                 const std::string& request_path) {
  if (cookie_path == request_path) return true;
  return absl::StartsWith(request_path, cookie_path) &&
         (absl::EndsWith(cookie_path, "/") ||
          request_path[cookie_path.size()] == '/');
}

std::string DefaultCookiePath(const std::string& request_path) {
  const size_t slash = request_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return request_path.substr(0, slash);
}

bool HasForm(const BrowserResponse& page, absl::string_view action) {
  for (const HtmlForm& form : ParseForms(page.body)) {
    if (form.action == action) return true;
  }
  return false;
}

}  // namespace

std::vector<HtmlForm> ParseForms(absl::string_view html) {
  std::vector<HtmlForm> forms;
  bool in_form = false;
  size_t i = 0;
  while ((i = html.find('<', i)) != absl::string_view::npos) {
    if (html.substr(i, 4) == "<!--") {
      const size_t end = html.find("-->", i);
      i = end == absl::string_view::npos ? html.size() : end + 3;
      continue;
    }
    ++i;
    const bool closing = i < html.size() && html[i] == '/';
    if (closing) ++i;
    const size_t name_start = i;
    while (i < html.size() && absl::ascii_isalnum(html[i])) ++i;
    std::string tag(html.substr(name_start, i - name_start));
    absl::AsciiStrToLower(&tag);
    const std::map<std::string, std::string> attributes =
        ParseAttributes(html, i);
    if (tag == "form") {
      in_form = !closing;
      if (!closing) {
        HtmlForm form;
        form.method =
            absl::AsciiStrToLower(AttrOr(attributes, "method", "get"));
        form.action = AttrOr(attributes, "action", "");
        forms.push_back(std::move(form));
      }
      continue;
    }
    if (!in_form || closing || forms.empty()) continue;
    const std::string name = AttrOr(attributes, "name", "");
    if (name.empty()) continue;
    if (tag == "input") {
      const std::string type =
          absl::AsciiStrToLower(AttrOr(attributes, "type", "text"));
      if (type == "submit") {
        forms.back().buttons.emplace_back(name,
                                          AttrOr(attributes, "value", ""));
      } else if (type == "checkbox" || type == "radio") {
        if (attributes.count("checked") != 0) {
          forms.back().inputs.emplace_back(name,
                                           AttrOr(attributes, "value", "on"));
        }
      } else if (type != "button" && type != "reset" && type != "file" &&
                 type != "image") {
        forms.back().inputs.emplace_back(name, AttrOr(attributes, "value", ""));
      }
    } else if (tag == "button") {
      if (absl::AsciiStrToLower(AttrOr(attributes, "type", "submit")) ==
          "submit") {
        forms.back().buttons.emplace_back(name,
                                          AttrOr(attributes, "value", ""));
      }
    }
  }
  return forms;
}

absl::StatusOr<BrowserResponse> ScriptedBrowser::Get(const std::string& url) {
  return Navigate("GET", url, "", "", "");
}

absl::StatusOr<BrowserResponse> ScriptedBrowser::SubmitForm(
    const BrowserResponse& page, const std::string& action,
    const std::vector<std::pair<std::string, std::string>>& fields) {
  absl::StatusOr<Url> page_url = ParseUrl(page.url);
  if (!page_url.ok()) return page_url.status();
  const std::string wanted = Resolve(*page_url, action);
  for (const HtmlForm& form : ParseForms(page.body)) {
    if (form.action != action && Resolve(*page_url, form.action) != wanted) {
      continue;
    }
    std::vector<std::pair<std::string, std::string>> values = form.inputs;
    for (const auto& [name, value] : fields) {
      bool replaced = false;
      for (auto& entry : values) {
        if (entry.first == name) {
          entry.second = value;
          replaced = true;
        }
      }
      if (!replaced) values.emplace_back(name, value);
    }
    const std::string target = Resolve(*page_url, form.action);
    if (form.method == "post") {
      return Navigate("POST", target, FormEncode(values),
                      "application/x-www-form-urlencoded", page_url->site());
    }
    const std::string base = target.substr(0, target.find('?'));
    return Navigate("GET", base + "?" + FormEncode(values), "", "",
                    page_url->site());
  }
  return absl::NotFoundError(absl::StrCat("no form with action ", action,
                                          " on the page at ", page.url));
}

absl::StatusOr<BrowserResponse> ScriptedBrowser::SignInAndConsent(
    const std::string& start_url, const std::string& username,
    const std::string& password, bool approve) {
  absl::StatusOr<BrowserResponse> page = Get(start_url);
  if (!page.ok() || !HasForm(*page, kLoginAction)) return page;
  page = SubmitForm(*page, kLoginAction,
                    {{"username", username}, {"password", password}});
  if (!page.ok() || !HasForm(*page, kConsentAction)) return page;
  return SubmitForm(*page, kConsentAction,
                    {{"decision", approve ? "approve" : "deny"}});
}

std::string ScriptedBrowser::CookieValue(const std::string& host_port,
                                         const std::string& name) const {
  auto host = jar_.find(absl::AsciiStrToLower(host_port));
  if (host == jar_.end()) return "";
  auto cookie = host->second.find(name);
  return cookie == host->second.end() ? "" : cookie->second.value;
}

absl::StatusOr<BrowserResponse> ScriptedBrowser::Navigate(
    std::string method, std::string url, std::string body,
    std::string content_type, std::string initiator_site) {
  BrowserResponse out;
  std::vector<std::string> sites;
  if (!initiator_site.empty()) sites.push_back(initiator_site);
  for (int hop = 0;; ++hop) {
    absl::StatusOr<Url> parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    if (!IsLoopback(parsed->host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the scripted browser visits loopback hosts only, not ",
                       parsed->host, " (", url, ")"));
    }
    out.chain.push_back(parsed->ToString());
    sites.push_back(parsed->site());
    bool same_site = true;
    for (const std::string& site : sites) same_site &= site == parsed->site();

    httplib::Headers headers = {{"User-Agent", "tokenbroker-scripted-browser"},
                                {"Accept", "text/html,*/*"}};
    std::string cookie_header;
    for (const auto& [name, cookie] : jar_[parsed->authority()]) {
      if (!PathMatches(cookie.path, parsed->path())) continue;
      const bool send =
          cookie.same_site == "none" ||
          (cookie.same_site == "lax" && (same_site || method == "GET")) ||
          (cookie.same_site == "strict" && same_site);
      if (!send) continue;
      if (!cookie_header.empty()) cookie_header += "; ";
      absl::StrAppend(&cookie_header, name, "=", cookie.value);
    }
    if (!cookie_header.empty()) headers.emplace("Cookie", cookie_header);

    httplib::Client client(parsed->host, parsed->port);
    // As browsers do (RFC 6761 6.3): "localhost" is the loopback address,
    // never a name to look up (a machine may have no /etc/hosts entry, and
    // a DNS query would leave the machine).
    client.set_hostname_addr_map({{"localhost", "127.0.0.1"}});
    client.set_url_encode(false);
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(30, 0);
    client.set_write_timeout(5, 0);
    httplib::Result result = method == "POST"
                                 ? client.Post(parsed->target.c_str(), headers,
                                               body, content_type.c_str())
                                 : client.Get(parsed->target.c_str(), headers);
    if (!result) {
      return absl::UnavailableError(absl::StrCat(
          "cannot fetch ", url, ": ", httplib::to_string(result.error())));
    }
    for (auto [it, end] = result->headers.equal_range("Set-Cookie"); it != end;
         ++it) {
      std::vector<absl::string_view> parts = absl::StrSplit(it->second, ';');
      const absl::string_view pair = absl::StripAsciiWhitespace(parts[0]);
      const size_t eq = pair.find('=');
      if (eq == absl::string_view::npos || eq == 0) continue;
      const std::string name(absl::StripAsciiWhitespace(pair.substr(0, eq)));
      Cookie cookie;
      cookie.value =
          std::string(absl::StripAsciiWhitespace(pair.substr(eq + 1)));
      cookie.path = DefaultCookiePath(parsed->path());
      bool remove = false;
      for (size_t k = 1; k < parts.size(); ++k) {
        const absl::string_view attribute =
            absl::StripAsciiWhitespace(parts[k]);
        const size_t aeq = attribute.find('=');
        const std::string key = absl::AsciiStrToLower(attribute.substr(0, aeq));
        const std::string value = aeq == absl::string_view::npos
                                      ? ""
                                      : std::string(absl::StripAsciiWhitespace(
                                            attribute.substr(aeq + 1)));
        if (key == "path" && absl::StartsWith(value, "/")) {
          cookie.path = value;
        } else if (key == "httponly") {
          cookie.http_only = true;
        } else if (key == "samesite") {
          const std::string mode = absl::AsciiStrToLower(value);
          if (mode == "strict" || mode == "lax" || mode == "none") {
            cookie.same_site = mode;
          }
        } else if (key == "max-age") {
          int64_t seconds = 0;
          if (absl::SimpleAtoi(value, &seconds) && seconds <= 0) remove = true;
        }
      }
      auto& host_jar = jar_[parsed->authority()];
      if (remove) {
        host_jar.erase(name);
      } else {
        host_jar[name] = std::move(cookie);
      }
    }

    const int status = result->status;
    const bool redirect = status == 301 || status == 302 || status == 303 ||
                          status == 307 || status == 308;
    if (redirect && result->has_header("Location")) {
      if (hop >= kMaxRedirects) {
        return absl::FailedPreconditionError(absl::StrCat(
            "more than ", kMaxRedirects, " redirects, the last to ", url));
      }
      if (status != 307 && status != 308) {
        method = "GET";
        body.clear();
        content_type.clear();
      }
      url = Resolve(*parsed,
                    SanitizeTarget(result->get_header_value("Location")));
      continue;
    }
    out.status = status;
    out.url = parsed->ToString();
    out.body = result->body;
    out.headers = result->headers;
    return out;
  }
}

}  // namespace tokenbroker::testing
