// The `listen` section: the gRPC, admin and probe listeners, and TLS.

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/value_checks.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {
namespace {

absl::Status ParseTls(const YamlReader& reader, const Field& field,
                      TlsConfig* tls) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field, {"cert_file", "key_file", "client_ca_file"}, &keys));
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "cert_file", &tls->cert_file,
                                         &YamlReader::Token));
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "key_file", &tls->key_file,
                                         &YamlReader::Token));
  TB_RETURN_IF_ERROR(reader.ReadOptional(
      keys, "client_ca_file", &tls->client_ca_file, &YamlReader::Token));
  if (tls->cert_file.empty() || tls->key_file.empty()) {
    return reader.Error(field,
                        "cert_file and key_file are both required (PEM files "
                        "of the broker's certificate chain and private key)");
  }
  return absl::OkStatus();
}

// HOST:PORT, [IPV6]:PORT or unix:PATH.
absl::Status ReadGrpcAddress(const YamlReader& reader, const Field& field,
                             std::string* grpc) {
  TB_ASSIGN_OR_RETURN(*grpc, reader.Token(field));
  absl::string_view address = *grpc;
  if (absl::ConsumePrefix(&address, "unix:")) {
    if (address.empty()) {
      return reader.Error(field,
                          "unix: needs a socket path, e.g. "
                          "unix:/run/token-broker.sock");
    }
    return absl::OkStatus();
  }
  if (std::string problem = CheckHostPort(address, /*port_required=*/true);
      !problem.empty()) {
    return reader.Error(field, absl::StrCat("'", *grpc, "': ", problem,
                                            "; write HOST:PORT, [IPV6]:PORT "
                                            "or unix:PATH"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseListenSection(const YamlReader& reader, const Field& field,
                                Config* config) {
  ListenConfig* listen = &config->listen;
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field, {"grpc", "tls", "admin_http", "oauth_http", "probe_grpc"}, &keys));
  // Plain-HTTP and probe listeners: HOST:PORT, or "" to disable one.
  const std::pair<absl::string_view, std::string*> listeners[] = {
      {"admin_http", &listen->admin_http},
      {"oauth_http", &listen->oauth_http},
      {"probe_grpc", &listen->probe_grpc}};
  for (const auto& [name, target] : listeners) {
    auto it = keys.find(std::string(name));
    if (it == keys.end()) continue;
    TB_ASSIGN_OR_RETURN(*target, reader.String(it->second));
    if (target->empty()) continue;
    if (std::string problem = CheckHostPort(*target, /*port_required=*/true);
        !problem.empty()) {
      return reader.Error(
          it->second, absl::StrCat("'", *target, "': ", problem,
                                   "; write HOST:PORT or [IPV6]:PORT, or \"\" "
                                   "to disable this listener"));
    }
  }
  if (auto it = keys.find("tls"); it != keys.end()) {
    TB_RETURN_IF_ERROR(ParseTls(reader, it->second, &listen->tls));
  }
  if (auto it = keys.find("grpc"); it != keys.end()) {
    TB_RETURN_IF_ERROR(ReadGrpcAddress(reader, it->second, &listen->grpc));
  }
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace tokenbroker
