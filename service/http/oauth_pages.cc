#include "service/http/oauth_pages.h"

#include "absl/strings/str_cat.h"

namespace tokenbroker {
namespace {

constexpr absl::string_view kPageHead =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, "
    "initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">"
    "<style>body{font-family:system-ui,sans-serif;max-width:40em;"
    "margin:3em auto;padding:0 1em;line-height:1.5;color:#222}"
    "h1{font-size:1.4em}li{font-family:monospace}</style><title>";

void AppendElement(absl::string_view tag, absl::string_view text,
                   std::string* out) {
  absl::StrAppend(out, "<", tag, ">", HtmlEscape(text), "</", tag, ">\n");
}

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\t':
      case '\n':
      case '\r':
        out += c;
        break;
      default:
        if ((c >= 0 && c < 0x20) || c == 0x7f) {
          out += "&#xFFFD;";
        } else {
          out += c;
        }
    }
  }
  return out;
}

const std::vector<std::pair<std::string, std::string>>& PageSecurityHeaders() {
  static const auto* const kHeaders =
      new std::vector<std::pair<std::string, std::string>>{
          {"Cache-Control", "no-store"},
          {"Pragma", "no-cache"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Content-Type-Options", "nosniff"},
          {"X-Frame-Options", "DENY"},
          {"Content-Security-Policy",
           "default-src 'none'; style-src 'unsafe-inline'; "
           "frame-ancestors 'none'; form-action 'none'"},
      };
  return *kHeaders;
}

PageResponse RenderPage(int status, const PageText& text) {
  PageResponse page;
  page.status = status;
  page.headers = PageSecurityHeaders();
  page.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
  std::string& body = page.body;
  absl::StrAppend(&body, kPageHead, HtmlEscape(text.title),
                  " - Anypoint token broker</title></head><body>\n");
  AppendElement("h1", text.title, &body);
  for (const std::string& paragraph : text.paragraphs) {
    AppendElement("p", paragraph, &body);
  }
  if (!text.items.empty()) {
    body += "<ul>\n";
    for (const std::string& item : text.items) AppendElement("li", item, &body);
    body += "</ul>\n";
  }
  for (const std::string& paragraph : text.after) {
    AppendElement("p", paragraph, &body);
  }
  body += "</body></html>\n";
  return page;
}

PageResponse RedirectPage(std::string location) {
  PageResponse page;
  page.status = 302;
  page.headers = PageSecurityHeaders();
  page.headers.emplace_back("Location", std::move(location));
  return page;
}

}  // namespace tokenbroker
