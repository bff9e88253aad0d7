// Uses the installed client library and stubs: creates a Client for a
// broker that is not there and expects UNAVAILABLE, then builds a request
// with the generated stubs. Exit code 0 on success.
#include <iostream>

#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "client/lib/client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer HOST:PORT\n";
    return 2;
  }
  tokenbroker::ClientChannelOptions channel;
  channel.target = argv[1];
  channel.plaintext = true;
  tokenbroker::ClientOptions options;
  options.timeout = absl::Seconds(5);
  options.retry.max_attempts = 1;
  absl::StatusOr<std::unique_ptr<tokenbroker::Client>> client =
      tokenbroker::Client::Create(channel, options);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  absl::StatusOr<tokenbroker::AccessToken> token = (*client)->GetToken("any");
  if (token.status().code() != absl::StatusCode::kUnavailable) {
    std::cerr << "expected UNAVAILABLE, got " << token.status() << "\n";
    return 1;
  }
  anypoint::tokenbroker::v1::ListAppsRequest request;
  std::cout << "consumer ok: " << request.GetDescriptor()->full_name() << "\n";
  return 0;
}
