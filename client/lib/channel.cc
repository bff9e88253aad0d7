#include "client/lib/channel.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace tokenbroker {
namespace {

absl::StatusOr<std::string> ReadFileFor(absl::string_view what,
                                        const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": error reading ", path));
  }
  return content.str();
}

absl::StatusOr<std::string> ResolveBearerKey(
    const ClientChannelOptions& options) {
  std::string key;
  std::string source = "bearer key";
  if (!options.bearer_key.empty()) {
    key = std::string(absl::StripAsciiWhitespace(options.bearer_key));
  } else if (!options.bearer_file.empty()) {
    absl::StatusOr<std::string> content =
        ReadFileFor("bearer file", options.bearer_file);
    if (!content.ok()) return content.status();
    key = std::string(absl::StripAsciiWhitespace(*content));
    source = absl::StrCat("bearer file ", options.bearer_file);
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, " is empty"));
    }
  } else {
    return std::string();
  }
  // gRPC rejects metadata values outside printable ASCII; say so up front
  // rather than failing every call with INTERNAL.
  for (char c : key) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, " must hold one key of printable ASCII"));
    }
  }
  return key;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const ClientChannelOptions& options) {
  const bool tls_files = !options.ca_file.empty() ||
                         !options.cert_file.empty() ||
                         !options.key_file.empty();
  if (options.plaintext) {
    if (tls_files) {
      return absl::InvalidArgumentError(
          "plaintext conflicts with a CA, certificate or key file");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its key go together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadFileFor("CA file", options.ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadFileFor("certificate file", options.cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFileFor("key file", options.key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

std::string LoadBalancingServiceConfig(const std::string& policy) {
  return absl::StrCat(R"({"loadBalancingConfig":[{")", policy, R"(":{}}]})");
}

absl::StatusOr<ClientConnection> MakeClientConnection(
    const ClientChannelOptions& options) {
  if (!options.load_balancing_policy.empty() &&
      options.load_balancing_policy != "round_robin" &&
      options.load_balancing_policy != "pick_first") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown load balancing policy \"", options.load_balancing_policy,
        "\"; use round_robin or pick_first"));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeCredentials(options);
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<std::string> bearer_key = ResolveBearerKey(options);
  if (!bearer_key.ok()) return bearer_key.status();

  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  if (!options.user_agent_prefix.empty()) {
    arguments.SetUserAgentPrefix(options.user_agent_prefix);
  }
  if (!options.load_balancing_policy.empty()) {
    arguments.SetServiceConfigJSON(
        LoadBalancingServiceConfig(options.load_balancing_policy));
  }
  ClientConnection connection;
  connection.channel =
      grpc::CreateCustomChannel(options.target, *credentials, arguments);
  connection.target = options.target;
  connection.bearer_key = *std::move(bearer_key);
  return connection;
}

}  // namespace tokenbroker
