#include "emulator/pages.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "httplib.h"

namespace tokenbroker::emulator::internal {
namespace {

// Minimal styling; no script, nothing loaded from elsewhere.
constexpr char kStyle[] =
    "body{font-family:sans-serif;max-width:32em;margin:3em auto;color:#222}"
    "label{display:block;margin-top:1em}input{width:100%;padding:.4em}"
    "button{margin-top:1.2em;margin-right:.6em;padding:.5em 1.4em}"
    ".error{color:#b00020;font-weight:bold}";

std::string Page(absl::string_view title, absl::string_view body) {
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>",
      HtmlEscape(title), "</title>\n<style>", kStyle,
      "</style>\n</head>\n<body>\n", body, "</body>\n</html>\n");
}

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
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
      default:
        out += c;
    }
  }
  return out;
}

std::string SignInPage(absl::string_view app_name, absl::string_view txn,
                       absl::string_view error) {
  std::string body = absl::StrCat(
      "<h1>Sign in to Anypoint Platform</h1>\n<p>to continue to <strong>",
      HtmlEscape(app_name), "</strong></p>\n");
  if (!error.empty()) {
    absl::StrAppend(&body, "<p class=\"error\" role=\"alert\">",
                    HtmlEscape(error), "</p>\n");
  }
  absl::StrAppend(
      &body, "<form method=\"post\" action=\"", kLoginPath, "\">\n",
      "<input type=\"hidden\" name=\"txn\" value=\"", HtmlEscape(txn),
      "\">\n<label for=\"username\">Username</label>\n"
      "<input id=\"username\" name=\"username\">\n"
      "<label for=\"password\">Password</label>\n"
      "<input id=\"password\" type=\"password\" name=\"password\">\n"
      "<button type=\"submit\">Sign in</button>\n</form>\n");
  return Page("Sign in to Anypoint Platform", body);
}

std::string ConsentPage(absl::string_view app_name, absl::string_view username,
                        const std::vector<std::string>& scopes,
                        absl::string_view txn) {
  const std::string question =
      absl::StrCat("Allow ", app_name, " to access your Anypoint account?");
  std::string body = absl::StrCat(
      "<h1>", HtmlEscape(question),
      "</h1>\n<p>Signed in as <strong id=\"signed-in-user\">",
      HtmlEscape(username), "</strong></p>\n<p><strong>", HtmlEscape(app_name),
      "</strong> will be able to:</p>\n<ul>\n");
  for (const std::string& scope : scopes) {
    absl::StrAppend(&body, "<li>", HtmlEscape(scope), "</li>\n");
  }
  absl::StrAppend(
      &body, "</ul>\n<form method=\"post\" action=\"", kConsentPath, "\">\n",
      "<input type=\"hidden\" name=\"txn\" value=\"", HtmlEscape(txn),
      "\">\n<button type=\"submit\" name=\"decision\" value=\"approve\">"
      "Approve</button>\n"
      "<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n"
      "</form>\n");
  return Page(question, body);
}

std::string ErrorPage(absl::string_view title, absl::string_view message) {
  return Page(title, absl::StrCat("<h1>", HtmlEscape(title), "</h1>\n<p>",
                                  HtmlEscape(message), "</p>\n"));
}

void SetPage(httplib::Response& res, int status, const std::string& html) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_header("Pragma", "no-cache");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Content-Security-Policy", "frame-ancestors 'none'");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_content(html, "text/html; charset=utf-8");
}

void SetRedirect(httplib::Response& res, const std::string& location) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_redirect(location, 302);
}

}  // namespace tokenbroker::emulator::internal
