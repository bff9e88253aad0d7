#include "service/upstream/client_auth.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"
#include "service/upstream/oauth_response.h"

namespace tokenbroker {

absl::StatusOr<std::string> ResolveAppSecret(const AppConfig& app,
                                             const SecretRef& ref,
                                             absl::string_view what) {
  absl::StatusOr<std::string> value = ResolveSecret(ref);
  if (value.ok()) return value;
  // ResolveSecret's messages name the file or variable, never the value.
  return absl::FailedPreconditionError(absl::StrCat(
      "app \"", app.name, "\": ", what, ": ", value.status().message()));
}

absl::StatusOr<HttpRequest> BuildClientAuthFormPost(
    const AppConfig& app, absl::string_view path, OAuthFormFields fields,
    absl::Duration timeout, absl::string_view user_agent) {
  // Each stays in its StatusOr (not moved out, which could leave a short
  // secret's bytes behind): ClearSecret() below clears the one buffer.
  absl::StatusOr<std::string> client_id =
      ResolveAppSecret(app, app.client_id, "client id");
  TB_RETURN_IF_ERROR(client_id.status());
  absl::StatusOr<std::string> client_secret =
      ResolveAppSecret(app, app.client_secret, "client secret");
  TB_RETURN_IF_ERROR(client_secret.status());

  HttpRequest request;
  request.method = "POST";
  request.url = absl::StrCat(app.base_url, path);
  request.timeout = timeout;
  request.headers = {
      {"Accept", "application/json"},
      {"Content-Type", "application/x-www-form-urlencoded"},
      {"User-Agent", std::string(user_agent)},
  };
  // Every buffer below that holds the secret is this function's: each is
  // sized before it is filled (a reallocation would leave a copy in freed
  // memory) and cleared once used. The request itself then belongs to the
  // HttpClient.
  switch (app.client_auth) {
    case ClientAuthMethod::kClientSecretPost:
      fields.reserve(fields.size() + 2);
      fields.emplace_back("client_id", *client_id);
      fields.emplace_back("client_secret", *client_secret);
      break;
    case ClientAuthMethod::kClientSecretBasic: {
      // RFC 6749 2.3.1: both are form-encoded before Basic encoding.
      std::string id = FormEncodeComponent(*client_id);
      std::string secret = FormEncodeComponent(*client_secret);
      std::string pair;
      pair.reserve(id.size() + 1 + secret.size());
      pair.append(id).append(":").append(secret);
      std::string encoded;
      absl::Base64Escape(pair, &encoded);
      std::string header;
      header.reserve(6 + encoded.size());
      header.append("Basic ").append(encoded);
      request.headers.reserve(request.headers.size() + 1);
      request.headers.emplace_back("Authorization", std::move(header));
      for (std::string* buffer : {&id, &secret, &pair, &encoded}) {
        ClearSecret(buffer);
      }
      break;
    }
  }
  request.body = FormEncode(fields);
  for (auto& field : fields) ClearSecret(&field.second);
  ClearSecret(&*client_id);
  ClearSecret(&*client_secret);
  return request;
}

absl::Status UpstreamTransportError(absl::string_view app,
                                    absl::string_view endpoint,
                                    const absl::Status& status) {
  std::string message = absl::StrCat("app \"", app, "\": ", endpoint,
                                     " request failed: ", status.message());
  switch (status.code()) {
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(message);
    case absl::StatusCode::kCancelled:
      return absl::CancelledError(message);
    case absl::StatusCode::kInvalidArgument:
      return absl::FailedPreconditionError(
          absl::StrCat(message, "; check the app's base_url"));
    case absl::StatusCode::kFailedPrecondition:
      return absl::FailedPreconditionError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace tokenbroker
