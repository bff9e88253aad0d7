// Example: a service that lists the environments of an Anypoint organization
// without ever holding a client secret. It asks the token broker for the
// connected app's access token (tokenbroker::Client caches it and keeps it
// fresh) and calls
//   GET {anypoint}/accounts/api/organizations/{org}/environments
// itself with libcurl.
//
// Once the broker implements TokenBroker.Call, the same request can go
// through the broker instead, and the token never reaches this process:
//   client->Get(app, "/accounts/api/organizations/" + org + "/environments");
//
// Usage:
//   list_environments --broker HOST:PORT [--plaintext | --ca FILE
//                     [--cert FILE --key FILE]] [--bearer-file FILE]
//                     --app APP --anypoint URL --org ORG_ID
// Prints "NAME<TAB>TYPE<TAB>ID" per environment. Exit codes: 0 ok, 1 error,
// 2 usage.

#include <curl/curl.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/lib/client.h"

namespace {

size_t AppendToString(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// GET `url` with the bearer token; returns the body of a 200.
absl::StatusOr<std::string> HttpGet(const std::string& url,
                                    const std::string& token) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string body;
  curl_slist* headers = curl_slist_append(
      nullptr, absl::StrCat("Authorization: Bearer ", token).c_str());
  headers = curl_slist_append(headers, "Accept: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": ", curl_easy_strerror(code)));
  }
  if (status != 200) {
    return absl::PermissionDeniedError(
        absl::StrCat("GET ", url, ": HTTP ", status, ": ", body));
  }
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--plaintext") {
      flags["plaintext"] = "1";
    } else if (arg.rfind("--", 0) == 0 && i + 1 < argc) {
      flags[arg.substr(2)] = argv[++i];
    } else {
      std::cerr << "list_environments: unexpected argument " << arg << "\n";
      return 2;
    }
  }
  for (const char* required : {"broker", "app", "anypoint", "org"}) {
    if (flags[required].empty()) {
      std::cerr << "list_environments: --" << required << " is required\n";
      return 2;
    }
  }

  tokenbroker::ClientChannelOptions channel;
  channel.target = flags["broker"];
  channel.plaintext = !flags["plaintext"].empty();
  channel.ca_file = flags["ca"];
  channel.cert_file = flags["cert"];
  channel.key_file = flags["key"];
  channel.bearer_file = flags["bearer-file"];
  channel.user_agent_prefix = "list-environments-example";
  absl::StatusOr<std::unique_ptr<tokenbroker::Client>> client =
      tokenbroker::Client::Create(channel);
  if (!client.ok()) {
    std::cerr << "list_environments: " << client.status() << "\n";
    return 2;
  }

  absl::StatusOr<tokenbroker::AccessToken> token =
      (*client)->GetToken(flags["app"], {"view:environment"});
  if (!token.ok()) {
    std::cerr << "list_environments: token: " << token.status() << "\n";
    return 1;
  }

  curl_global_init(CURL_GLOBAL_DEFAULT);
  absl::StatusOr<std::string> body =
      HttpGet(absl::StrCat(flags["anypoint"], "/accounts/api/organizations/",
                           flags["org"], "/environments"),
              token->access_token);
  curl_global_cleanup();
  if (!body.ok()) {
    std::cerr << "list_environments: " << body.status() << "\n";
    return 1;
  }
  nlohmann::json environments =
      nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
  if (environments.is_discarded() || !environments.contains("data") ||
      !environments["data"].is_array()) {
    std::cerr << "list_environments: unexpected answer from Anypoint\n";
    return 1;
  }
  for (const nlohmann::json& env : environments["data"]) {
    std::cout << env.value("name", "") << "\t" << env.value("type", "") << "\t"
              << env.value("id", "") << "\n";
  }
  return 0;
}
