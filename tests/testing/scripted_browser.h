#ifndef TOKENBROKER_TESTS_TESTING_SCRIPTED_BROWSER_H_
#define TOKENBROKER_TESTS_TESTING_SCRIPTED_BROWSER_H_

// A scripted browser for integration tests that have no Chromium: enough of
// a browser to walk an OAuth authorization code flow through the broker's
// start and callback pages and the emulator's sign-in and consent pages.
//
// What it does like a browser:
// - a cookie jar per host:port (a real browser shares cookies across ports
//   of a host; tests here want them apart). Set-Cookie name=value with Path
//   (default: the request path's directory), HttpOnly (kept, irrelevant
//   without scripts), SameSite (Strict: sent only when every URL of the
//   navigation so far is on the target's site; Lax, also the default: also
//   on cross-site GET navigations, not on cross-site POSTs; None: always),
//   Max-Age <= 0 deletes. Secure is ignored (loopback counts as a secure
//   context, as in Chromium). No Domain cookies, no expiry by time.
// - follows 301/302/303 (as GET) and 307/308 (same method and body), at
//   most 10, on loopback hosts only (127.0.0.0/8, localhost, ::1); http only.
// - finds a <form> by its action and submits it (POST form-urlencoded, or
//   GET) with its hidden inputs plus the given fields; the Referer of the
//   page is not sent (like Referrer-Policy: no-referrer).
//
// Caveat (Debian's cpp-httplib 0.11.4): its client URL-decodes response
// header values, so a Location or Set-Cookie value with %26, %3D, %23, %25
// or %2B reaches this class already decoded (and ambiguous). Spaces and
// non-ASCII are percent-encoded again before a redirect is followed.
//
// Errors (absl::Status): kInvalidArgument for a URL it cannot or will not
// fetch (not http, not loopback, malformed), kUnavailable when the server
// cannot be reached, kFailedPrecondition after too many redirects,
// kNotFound when a form is not on the page. Any HTTP answer, 4xx and 5xx
// included, is a BrowserResponse, not an error.
//
// Not thread-safe: one browser per test thread.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "httplib.h"

namespace tokenbroker::testing {

struct BrowserResponse {
  int status = 0;
  std::string url;  // the final URL, after redirects
  std::string body;
  httplib::Headers headers;
  // Every URL requested for this navigation, in order (the final one last).
  std::vector<std::string> chain;
};

// One <form> of a page.
struct HtmlForm {
  std::string method;  // "get" or "post", lower case
  std::string action;  // as written (HTML-unescaped)
  // Hidden inputs and inputs with a value, in document order.
  std::vector<std::pair<std::string, std::string>> inputs;
  // name=value of each submit button that has a name.
  std::vector<std::pair<std::string, std::string>> buttons;
};

// The forms of an HTML page (a tolerant scan, not a full HTML parser).
std::vector<HtmlForm> ParseForms(absl::string_view html);

class ScriptedBrowser {
 public:
  ScriptedBrowser() = default;

  // Navigates to `url` (as if typed: no initiator) and follows redirects.
  absl::StatusOr<BrowserResponse> Get(const std::string& url);

  // Submits the form of `page` whose action is `action` (as written in the
  // page, or resolved to the same absolute URL), with its hidden inputs and
  // `fields` (which override inputs of the same name), then follows
  // redirects. A clicked button is a field: {"decision", "approve"}.
  absl::StatusOr<BrowserResponse> SubmitForm(
      const BrowserResponse& page, const std::string& action,
      const std::vector<std::pair<std::string, std::string>>& fields);

  // The emulator's sign-in and consent, as a person would do them: GET
  // `start_url` (e.g. the broker's /oauth/start link or an authorize URL),
  // sign in on the sign-in form, press Approve or Deny on the consent form,
  // and follow the redirect wherever it points (the client's callback).
  // Returns the last response: where the flow stopped if a page had no next
  // form (the sign-in page again after a wrong password, an error page, a
  // callback reached with an error).
  absl::StatusOr<BrowserResponse> SignInAndConsent(const std::string& start_url,
                                                   const std::string& username,
                                                   const std::string& password,
                                                   bool approve);

  // The value of the cookie `name` held for `host_port` ("127.0.0.1:8080"),
  // or "" if none.
  std::string CookieValue(const std::string& host_port,
                          const std::string& name) const;
  void ClearCookies() { jar_.clear(); }

 private:
  struct Cookie {
    std::string value;
    std::string path = "/";
    std::string same_site = "lax";  // "strict", "lax" or "none"
    bool http_only = false;
  };

  // Sends one request after another along redirects. `initiator_site` is
  // the site of the page that started the navigation ("" if typed).
  absl::StatusOr<BrowserResponse> Navigate(std::string method, std::string url,
                                           std::string body,
                                           std::string content_type,
                                           std::string initiator_site);

  // host:port -> cookie name -> cookie
  std::map<std::string, std::map<std::string, Cookie>> jar_;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_SCRIPTED_BROWSER_H_
