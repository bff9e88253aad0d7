#ifndef TOKENBROKER_EMULATOR_PAGES_H_
#define TOKENBROKER_EMULATOR_PAGES_H_

// The HTML pages of the emulator's authorization code flow (library-internal,
// not part of emulator.h): sign-in, consent and error pages. Their markup is
// a contract that browser tests and the scripted browser rely on; README.md
// ("The sign-in and consent pages") spells it out. Every value is
// HTML-escaped here. Pure functions; thread-safe.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "httplib.h"

namespace tokenbroker::emulator::internal {

inline constexpr char kLoginPath[] = "/accounts/api/v2/oauth2/authorize/login";
inline constexpr char kConsentPath[] =
    "/accounts/api/v2/oauth2/authorize/consent";
inline constexpr char kIncorrectCredentials[] =
    "Incorrect username or password.";

// & < > " ' as character references.
std::string HtmlEscape(absl::string_view text);

// "Sign in to Anypoint Platform": the login form carrying `txn`, with
// `error` (if not empty) shown above it.
std::string SignInPage(absl::string_view app_name, absl::string_view txn,
                       absl::string_view error);

// "Allow <app> to access your Anypoint account?": the signed-in username,
// each scope as an <li>, and one form with Approve and Deny.
std::string ConsentPage(absl::string_view app_name, absl::string_view username,
                        const std::vector<std::string>& scopes,
                        absl::string_view txn);

// A page that ends the flow without a redirect: `title` and `message`.
std::string ErrorPage(absl::string_view title, absl::string_view message);

// Sets `status` and `html` with the headers every page carries:
// Cache-Control: no-store, X-Frame-Options: DENY,
// Content-Security-Policy: frame-ancestors 'none', Referrer-Policy:
// no-referrer.
void SetPage(httplib::Response& res, int status, const std::string& html);

// Adds the same no-store and no-referrer headers to a redirect.
void SetRedirect(httplib::Response& res, const std::string& location);

}  // namespace tokenbroker::emulator::internal

#endif  // TOKENBROKER_EMULATOR_PAGES_H_
