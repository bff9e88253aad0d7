#ifndef TOKENBROKER_SERVICE_HTTP_OAUTH_PAGES_H_
#define TOKENBROKER_SERVICE_HTTP_OAUTH_PAGES_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

// The OAuth browser pages' HTTP surface, apart from the server library: the
// request and answer shapes, the handler interface the admin listener calls
// (AdminHttpHandlers::oauth), and the one page template, which escapes every
// value it is given. Pure functions; thread-safe.

namespace tokenbroker {

// A request to /oauth/..., as the listener received it.
struct PageRequest {
  std::string method;  // "GET", "HEAD", "POST", ...
  std::string path;    // Without the query string.
  std::string query;   // Raw (still percent-encoded), without '?'.
  std::vector<std::string> cookie_headers;  // The value of each Cookie header.
  std::string peer;                         // The client's address (audit).
};

// An answer: the status, headers in order (a name may repeat, as Set-Cookie
// does) and the body.
struct PageResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Serves the OAuth pages (OAuthFlow, oauth_flow.h). Handle() runs on a
// listener thread per request and may block, for a bounded time, while the
// authorization server answers. Implementations are thread-safe.
class OAuthPageHandler {
 public:
  virtual ~OAuthPageHandler() = default;
  // Answers any request whose path starts with "/oauth/".
  virtual PageResponse Handle(const PageRequest& request) = 0;
};

// What a page says. Plain text only: RenderPage() escapes all of it, so no
// value from a request or a server can become markup.
struct PageText {
  std::string title;
  std::vector<std::string> paragraphs;
  std::vector<std::string> items;  // A list after the paragraphs.
  std::vector<std::string> after;  // Paragraphs after the list.
};

// `text` with &, <, >, " and ' as character references and control
// characters other than tab, LF and CR as U+FFFD, so that it is inert in
// element content and in quoted attribute values.
std::string HtmlEscape(absl::string_view text);

// The headers every OAuth page answer carries (redirects and errors too):
// no caching, no referrer, no sniffing, no framing, and a Content-Security-
// Policy that allows nothing but inline style.
const std::vector<std::pair<std::string, std::string>>& PageSecurityHeaders();

// A complete HTML page with `status`, PageSecurityHeaders() and
// Content-Type text/html; charset=utf-8.
PageResponse RenderPage(int status, const PageText& text);

// A 302 to `location` with PageSecurityHeaders() and no body.
PageResponse RedirectPage(std::string location);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_OAUTH_PAGES_H_
