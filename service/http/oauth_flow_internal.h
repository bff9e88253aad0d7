#ifndef TOKENBROKER_SERVICE_HTTP_OAUTH_FLOW_INTERNAL_H_
#define TOKENBROKER_SERVICE_HTTP_OAUTH_FLOW_INTERNAL_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/http/oauth_flow.h"
#include "service/http/oauth_pages.h"

// What the two halves of OAuthFlow share: oauth_flow.cc (links, dispatch and
// /oauth/start) and oauth_callback.cc (/oauth/callback). Include it from
// those two files only.

namespace tokenbroker {

// How a callback ended. In the order of CallbackOutcomeNames(), which names
// them for metrics and audit records.
enum class OAuthFlow::Outcome {
  kConnected,
  kDeclined,
  kAuthorizationError,
  kBadRequest,
  kUnknownState,
  kExpiredState,
  kNoCookie,
  kCookieMismatch,
  kIssuerMismatch,
  kAppUnavailable,
  kExchangeFailed,
  kNoRefreshToken,
  kScopesNarrower,
  kUserinfoFailed,
  kStoreFailed,
  kTimeout,
  kBusy,
  kUnavailable,
};

namespace internal {

// What a refused page tells the user to do; the app's name follows.
inline constexpr absl::string_view kAskForLink =
    "Ask an operator for a new link: tokenbrokerctl connect ";

inline PageText Text(std::string title, std::vector<std::string> paragraphs,
                     std::vector<std::string> items = {},
                     std::vector<std::string> after = {}) {
  return PageText{std::move(title), std::move(paragraphs), std::move(items),
                  std::move(after)};
}

}  // namespace internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_HTTP_OAUTH_FLOW_INTERNAL_H_
