// Example: a service that lists the environments of an Anypoint organization
// without ever holding a client secret or an access token. It sends
//   GET /accounts/api/organizations/{org}/environments
// through the token broker (TokenBroker.Call, via tokenbroker::Client): the
// broker adds the connected app's token and forwards the request to the
// app's control plane, and only the answer comes back.
//
// The broker must grant the caller that route on the app, for example
//   routes: ["GET /accounts/api/organizations/*/environments"]
// (config/demo.yaml does for the anonymous development caller).
//
// For an app acting on behalf of users, --user names whose token the broker
// injects (an Anypoint username or user id; the caller's grant must cover
// the user, and the user must have connected: tokenbrokerctl connect APP).
//
// Usage:
//   list_environments --broker HOST:PORT [--plaintext | --ca FILE
//                     [--cert FILE --key FILE]] [--bearer-file FILE]
//                     --app APP --org ORG_ID [--user USER]
// Prints "NAME<TAB>TYPE<TAB>ID" per environment. Exit codes: 0 ok, 1 error,
// 2 usage.

#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/lib/client.h"

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
  for (const char* required : {"broker", "app", "org"}) {
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

  tokenbroker::ClientCallRequest request;
  request.method = "GET";
  request.path = absl::StrCat("/accounts/api/organizations/", flags["org"],
                              "/environments");
  request.headers = {{"Accept", "application/json"}};
  request.scopes = {"view:environment"};
  request.user = flags["user"];  // Empty for an app acting on its own behalf.
  // A GET: the client retries it if the broker is briefly unavailable.
  absl::StatusOr<tokenbroker::ClientCallResponse> response =
      (*client)->Call(flags["app"], request);
  if (!response.ok()) {
    // The broker's verdict: unknown app, route not granted, Anypoint down...
    std::cerr << "list_environments: " << response.status() << "\n";
    return 1;
  }
  if (response->status != 200) {
    // Anypoint's answer, passed through as data.
    std::cerr << "list_environments: GET " << request.path << ": HTTP "
              << response->status << ": " << response->body << "\n";
    return 1;
  }
  nlohmann::json environments = nlohmann::json::parse(
      response->body, nullptr, /*allow_exceptions=*/false);
  if (environments.is_discarded() || !environments.contains("data") ||
      !environments["data"].is_array()) {
    std::cerr << "list_environments: unexpected answer from Anypoint\n";
    return 1;
  }
  for (const nlohmann::json& env : environments["data"]) {
    if (!env.is_object()) continue;
    std::cout << env.value("name", "") << "\t" << env.value("type", "") << "\t"
              << env.value("id", "") << "\n";
  }
  return 0;
}
