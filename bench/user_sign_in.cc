#include "bench/user_sign_in.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "service/http/pending_flows.h"
#include "service/store/file_grant_store.h"
#include "service/store/sealed_box.h"
#include "tests/emulator/callback_server.h"
#include "tests/testing/scripted_browser.h"

namespace tokenbroker::bench {
namespace {

using nlohmann::json;

constexpr char kOAuthPath[] = "/accounts/api/v2/oauth2";

std::string Encode(const std::string& value) {
  return httplib::detail::encode_query_param(value);
}

// The JSON object of a 200 answer, or an error naming `step` and `user`
// (the HTTP status only: an answer may quote what was sent).
absl::StatusOr<json> JsonAnswer(const httplib::Result& res,
                                absl::string_view step,
                                absl::string_view user) {
  if (!res || res->status != 200) {
    return absl::UnavailableError(
        absl::StrCat(step, " for ", user, " failed: ",
                     res ? absl::StrCat("HTTP ", res->status)
                         : httplib::to_string(res.error())));
  }
  json body = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return absl::InternalError(
        absl::StrCat(step, " for ", user, ": the answer is not JSON"));
  }
  return body;
}

// One user's flow; `callback` is where the emulator sends the browser back.
absl::StatusOr<UserGrant> SignIn(emulator::Emulator& emulator,
                                 const UserAppClient& client,
                                 emulator::CallbackServer& callback,
                                 const UserCredentials& user) {
  absl::StatusOr<std::string> verifier = RandomUrlToken();
  absl::StatusOr<std::string> state = RandomUrlToken(16);
  if (!verifier.ok() || !state.ok()) {
    return absl::InternalError("no random bytes for PKCE and state");
  }
  const std::string authorize = absl::StrCat(
      emulator.base_url(), kOAuthPath,
      "/authorize?response_type=code&client_id=", Encode(client.client_id),
      "&redirect_uri=", Encode(callback.callback_url()),
      "&scope=", Encode(client.scope + " offline_access"), "&state=", *state,
      "&code_challenge=", PkceS256Challenge(*verifier),
      "&code_challenge_method=S256");
  const size_t before = callback.callbacks().size();
  testing::ScriptedBrowser browser;
  absl::StatusOr<testing::BrowserResponse> last = browser.SignInAndConsent(
      authorize, user.username, user.password, /*approve=*/true);
  if (!last.ok()) return last.status();
  std::vector<emulator::CallbackServer::Callback> callbacks =
      callback.callbacks();
  if (callbacks.size() != before + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("the sign-in of ", user.username,
                     " did not reach the callback (HTTP ", last->status, ")"));
  }
  std::map<std::string, std::string>& query = callbacks.back().query;
  if (query["state"] != *state || query["code"].empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the callback of ", user.username, " has no code or another state"));
  }

  httplib::Client http("127.0.0.1", emulator.port());
  http.set_read_timeout(10, 0);
  absl::StatusOr<json> tokens = JsonAnswer(
      http.Post(absl::StrCat(kOAuthPath, "/token"),
                absl::StrCat("grant_type=authorization_code&code=",
                             Encode(query["code"]),
                             "&redirect_uri=", Encode(callback.callback_url()),
                             "&client_id=", Encode(client.client_id),
                             "&client_secret=", Encode(client.client_secret),
                             "&code_verifier=", *verifier),
                "application/x-www-form-urlencoded"),
      "the code exchange", user.username);
  if (!tokens.ok()) return tokens.status();
  if (!(*tokens)["refresh_token"].is_string() ||
      !(*tokens)["access_token"].is_string()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the code exchange for ", user.username, " gave no refresh token"));
  }
  absl::StatusOr<json> info = JsonAnswer(
      http.Get(absl::StrCat(kOAuthPath, "/userinfo"),
               {{"Authorization",
                 "Bearer " + (*tokens)["access_token"].get<std::string>()}}),
      "userinfo", user.username);
  if (!info.ok()) return info.status();

  UserGrant grant;
  grant.app = client.app;
  grant.user_id = info->value("sub", "");
  grant.username = info->value("preferred_username", user.username);
  grant.refresh_token = (*tokens)["refresh_token"].get<std::string>();
  // The scopes granted (RFC 6749 5.1: absent means as requested).
  std::string granted = tokens->value("scope", client.scope);
  for (absl::string_view scope :
       absl::StrSplit(granted, ' ', absl::SkipEmpty())) {
    if (scope != "offline_access") grant.scopes.emplace_back(scope);
  }
  std::sort(grant.scopes.begin(), grant.scopes.end());
  grant.connected_at = absl::Now();
  grant.updated_at = grant.connected_at;
  return grant;
}

}  // namespace

absl::StatusOr<std::vector<UserGrant>> SignInUsers(
    emulator::Emulator& emulator, const UserAppClient& client,
    const std::vector<UserCredentials>& users) {
  emulator::CallbackServer callback;
  if (absl::Status added =
          emulator.AddRedirectUri(client.client_id, callback.callback_url());
      !added.ok()) {
    return added;
  }
  std::vector<UserGrant> grants;
  for (const UserCredentials& user : users) {
    absl::StatusOr<UserGrant> grant = SignIn(emulator, client, callback, user);
    if (!grant.ok()) return grant.status();
    grants.push_back(*std::move(grant));
  }
  return grants;
}

absl::Status SeedGrantStore(const std::string& directory,
                            const std::string& key_id,
                            const std::string& key_file,
                            const std::vector<UserGrant>& grants) {
  absl::StatusOr<SealKey> key = ReadSealKeyFile(key_id, key_file);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::shared_ptr<const KeyRing>> ring =
      KeyRing::Create({*std::move(key)});
  if (!ring.ok()) return ring.status();
  absl::StatusOr<std::unique_ptr<FileGrantStore>> store =
      FileGrantStore::Open(directory, *std::move(ring));
  if (!store.ok()) return store.status();
  for (const UserGrant& grant : grants) {
    if (absl::Status put = (*store)->Put(grant); !put.ok()) return put;
  }
  return absl::OkStatus();  // The store closes here, and unlocks.
}

}  // namespace tokenbroker::bench
