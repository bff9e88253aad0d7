#ifndef TOKENBROKER_SERVICE_UPSTREAM_CLIENT_AUTH_H_
#define TOKENBROKER_SERVICE_UPSTREAM_CLIENT_AUTH_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/config/config.h"
#include "service/upstream/http_client.h"

// What every request of the broker to an app's OAuth endpoints (token,
// revoke) shares: the client authentication of RFC 6749 2.3.1 as the app
// configures it, and one mapping of transport failures. Pure functions,
// thread-safe.

namespace tokenbroker {

using OAuthFormFields = std::vector<std::pair<std::string, std::string>>;

// Resolves `ref` of `app` (ResolveSecret). Errors: FAILED_PRECONDITION
// naming the app, `what` ("client id") and the file or variable, never the
// value.
absl::StatusOr<std::string> ResolveAppSecret(const AppConfig& app,
                                             const SecretRef& ref,
                                             absl::string_view what);

// A POST of `fields` (application/x-www-form-urlencoded) to base_url +
// `path`, with the app's client authentication: client_id and client_secret
// as two more fields (client_secret_post) or an `Authorization: Basic`
// header (client_secret_basic, both form-encoded first). Accepts JSON.
// The values of `fields` are cleared once encoded (they may be secrets:
// a code, a refresh token), as is every buffer that held the client secret.
// Errors: FAILED_PRECONDITION if a credential cannot be resolved.
absl::StatusOr<HttpRequest> BuildClientAuthFormPost(
    const AppConfig& app, absl::string_view path, OAuthFormFields fields,
    absl::Duration timeout, absl::string_view user_agent);

// The status for a failed exchange with `endpoint` ("token", "revoke",
// "userinfo") of `app` (a transport error of HttpClient): DEADLINE_EXCEEDED
// and CANCELLED are kept, INVALID_ARGUMENT (a malformed URL) and
// FAILED_PRECONDITION become FAILED_PRECONDITION, anything else UNAVAILABLE.
absl::Status UpstreamTransportError(absl::string_view app,
                                    absl::string_view endpoint,
                                    const absl::Status& status);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_CLIENT_AUTH_H_
