#include "client/cli/commands.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/format.h"

namespace tokenbroker::cli {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;

template <typename Repeated>
void AddAll(const std::vector<std::string>& values, Repeated* field) {
  for (const std::string& value : values) *field->Add() = value;
}

std::string JoinOrNone(
    const google::protobuf::RepeatedPtrField<std::string>& values) {
  return values.empty() ? "none" : absl::StrJoin(values, ", ");
}

void PrintHead(int status,
               const google::protobuf::RepeatedPtrField<v1::Header>& headers,
               std::ostream& out) {
  out << "HTTP " << status << "\n";
  for (const v1::Header& header : headers) {
    out << header.name() << ": " << header.value() << "\n";
  }
  out << "\n";
}

}  // namespace

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kExitDenied;
    case absl::StatusCode::kFailedPrecondition:
      return kExitPrecondition;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    default:
      return kExitError;
  }
}

std::string FormatError(const absl::Status& status) {
  return absl::StrCat(
      "tokenbrokerctl: ", absl::StatusCodeToString(status.code()), ": ",
      status.message());
}

absl::Status RunToken(BrokerStub& stub, const TokenOptions& options,
                      std::ostream& out) {
  v1::GetTokenRequest request;
  request.set_app(options.app);
  AddAll(options.scopes, request.mutable_scopes());
  request.set_min_ttl_seconds(options.min_ttl_seconds);
  absl::StatusOr<v1::GetTokenResponse> token = stub.GetToken(request);
  if (!token.ok()) return token.status();
  switch (options.output) {
    case TokenOptions::Output::kToken:
      out << token->access_token() << "\n";
      break;
    case TokenOptions::Output::kJson:
      out << DumpJson(TokenToJson(*token)) << "\n";
      break;
    case TokenOptions::Output::kFingerprint:
      out << Fingerprint(token->access_token()) << "\n";
      break;
  }
  return absl::OkStatus();
}

absl::Status RunWatch(BrokerStub& stub, const WatchOptions& options,
                      const Clock& clock, std::ostream& out) {
  v1::WatchTokenRequest request;
  request.set_app(options.app);
  AddAll(options.scopes, request.mutable_scopes());
  int64_t received = 0;
  return stub.WatchToken(request, [&](const v1::GetTokenResponse& token) {
    out << FormatUtc(clock()) << "  " << Fingerprint(token.access_token())
        << "  expires_at="
        << (token.has_expires_at() ? FormatUtc(ToTime(token.expires_at()))
                                   : std::string("unknown"))
        << std::endl;  // Flush: the watcher may be a pipe.
    ++received;
    return options.count == 0 || received < options.count;
  });
}

absl::Status RunApps(BrokerStub& stub, const AppsOptions& options,
                     std::ostream& out) {
  absl::StatusOr<v1::ListAppsResponse> apps =
      stub.ListApps(v1::ListAppsRequest());
  if (!apps.ok()) return apps.status();
  if (options.json) {
    out << DumpJson(AppsToJson(*apps)) << "\n";
  } else {
    out << AppsTable(*apps);
  }
  return absl::OkStatus();
}

absl::Status RunRefresh(BrokerStub& stub, const RefreshOptions& options,
                        std::ostream& out) {
  v1::RefreshTokenRequest request;
  request.set_app(options.app);
  AddAll(options.scopes, request.mutable_scopes());
  absl::StatusOr<v1::RefreshTokenResponse> response =
      stub.RefreshToken(request);
  if (!response.ok()) return response.status();
  out << "refreshed " << options.app;
  if (response->has_expires_at()) {
    out << ": new token valid until "
        << FormatUtc(ToTime(response->expires_at()));
  }
  out << "\n";
  return absl::OkStatus();
}

absl::Status RunRevoke(BrokerStub& stub, const RevokeOptions& options,
                       std::ostream& out) {
  v1::RevokeTokenRequest request;
  request.set_app(options.app);
  absl::StatusOr<v1::RevokeTokenResponse> response = stub.RevokeToken(request);
  if (!response.ok()) return response.status();
  out << "revoked " << response->revoked() << " cached token"
      << (response->revoked() == 1 ? "" : "s") << " of " << options.app << "\n";
  return absl::OkStatus();
}

absl::Status RunReload(BrokerStub& stub, std::ostream& out) {
  absl::StatusOr<v1::ReloadConfigResponse> response =
      stub.ReloadConfig(v1::ReloadConfigRequest());
  if (!response.ok()) return response.status();
  out << "configuration reloaded; added: " << JoinOrNone(response->added())
      << "; changed: " << JoinOrNone(response->changed())
      << "; removed: " << JoinOrNone(response->removed()) << "\n";
  return absl::OkStatus();
}

absl::Status RunCall(BrokerStub& stub, const CallOptions& options,
                     std::ostream& out, std::ostream* body) {
  std::ostream& body_out = body != nullptr ? *body : out;
  v1::CallRequest request;
  request.set_app(options.app);
  request.set_method(options.method);
  request.set_path(options.path);
  for (const auto& [name, value] : options.headers) {
    v1::Header* header = request.add_headers();
    header->set_name(name);
    header->set_value(value);
  }
  request.set_body(options.body);
  AddAll(options.scopes, request.mutable_scopes());

  if (!options.stream) {
    absl::StatusOr<v1::CallResponse> response = stub.Call(request);
    if (!response.ok()) return response.status();
    if (options.include_headers) {
      PrintHead(response->status(), response->headers(), out);
    }
    body_out << response->body();
    return absl::OkStatus();
  }

  bool head_seen = false;
  return stub.CallStream(
      request, [&](const v1::CallStreamResponse& message) -> absl::Status {
        if (!head_seen) {
          head_seen = true;
          if (options.include_headers) {
            PrintHead(message.status(), message.headers(), out);
            out.flush();
          }
        }
        if (!message.body_chunk().empty()) {
          body_out.write(
              message.body_chunk().data(),
              static_cast<std::streamsize>(message.body_chunk().size()));
          // Flushed so that a pipe reader sees the body as it arrives.
          body_out.flush();
        }
        if (!out || !body_out) {
          return absl::DataLossError(
              "writing the body failed; the download was cancelled");
        }
        return absl::OkStatus();
      });
}

}  // namespace tokenbroker::cli
