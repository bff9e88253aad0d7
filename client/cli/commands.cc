#include "client/cli/commands.h"

#include <algorithm>
#include <map>

#include "absl/strings/cord.h"
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

// Marks the status of ConnectTimeoutError().
constexpr absl::string_view kConnectTimeoutPayload =
    "type.googleapis.com/tokenbroker.cli.ConnectTimeout";

// Each user of `app` in `apps` by user id, with when it connected.
absl::StatusOr<std::map<std::string, absl::Time>> ConnectedUsers(
    const v1::ListAppsResponse& apps, const std::string& app) {
  for (const v1::AppInfo& info : apps.apps()) {
    if (info.name() != app) continue;
    std::map<std::string, absl::Time> users;
    for (const v1::UserGrantInfo& user : info.users()) {
      users[user.user_id()] = user.has_connected_at()
                                  ? ToTime(user.connected_at())
                                  : absl::InfinitePast();
    }
    return users;
  }
  return absl::NotFoundError(
      absl::StrCat("app ", app, " is not configured in the broker"));
}

// A connected user of `app` whose grant is not in `before`, or newer.
const v1::UserGrantInfo* NewlyConnected(
    const v1::ListAppsResponse& apps, const std::string& app,
    const std::map<std::string, absl::Time>& before) {
  for (const v1::AppInfo& info : apps.apps()) {
    if (info.name() != app) continue;
    for (const v1::UserGrantInfo& user : info.users()) {
      if (user.state() != v1::USER_GRANT_STATE_CONNECTED) continue;
      auto it = before.find(user.user_id());
      if (it == before.end() || (user.has_connected_at() &&
                                 ToTime(user.connected_at()) > it->second)) {
        return &user;
      }
    }
  }
  return nullptr;
}

// Waiting survives a broker that restarts or is briefly slow.
bool IsTransient(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
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

absl::Status ConnectTimeoutError(absl::string_view message) {
  absl::Status status = absl::DeadlineExceededError(message);
  status.SetPayload(kConnectTimeoutPayload, absl::Cord("1"));
  return status;
}

int ExitCodeFor(const absl::Status& status) {
  if (status.GetPayload(kConnectTimeoutPayload).has_value()) {
    return kExitConnectTimeout;
  }
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
  request.set_user(options.user);
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
  request.set_user(options.user);
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
  request.set_user(options.user);
  absl::StatusOr<v1::RefreshTokenResponse> response =
      stub.RefreshToken(request);
  if (!response.ok()) return response.status();
  out << "refreshed " << options.app;
  if (!options.user.empty()) out << " for " << options.user;
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
  request.set_user(options.user);
  absl::StatusOr<v1::RevokeTokenResponse> response = stub.RevokeToken(request);
  if (!response.ok()) return response.status();
  if (!options.user.empty()) {
    out << "revoked the grant of " << options.user << " to " << options.app
        << " and deleted it; dropped " << response->revoked() << " cached token"
        << (response->revoked() == 1 ? "" : "s") << "\n";
    return absl::OkStatus();
  }
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
  request.set_user(options.user);

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

absl::Status RunConnect(BrokerStub& stub, const ConnectOptions& options,
                        const Clock& clock, const Sleep& sleep,
                        std::ostream& out) {
  const bool wait = options.wait > absl::ZeroDuration();
  // The grants before the link exists, by the broker's own clock: any grant
  // newer than these is the sign-in this command waits for.
  std::map<std::string, absl::Time> before;
  if (wait) {
    absl::StatusOr<v1::ListAppsResponse> apps =
        stub.ListApps(v1::ListAppsRequest());
    if (!apps.ok()) return apps.status();
    absl::StatusOr<std::map<std::string, absl::Time>> users =
        ConnectedUsers(*apps, options.app);
    // An unknown app: CreateConnectLink says so in the broker's words.
    if (users.ok()) before = *std::move(users);
  }

  v1::CreateConnectLinkRequest request;
  request.set_app(options.app);
  absl::StatusOr<v1::CreateConnectLinkResponse> link =
      stub.CreateConnectLink(request);
  if (!link.ok()) return link.status();
  const std::string expiry = link->has_expires_at()
                                 ? FormatUtc(ToTime(link->expires_at()))
                                 : std::string("unknown");
  out << "Open this link in a browser and sign in as the user who connects "
      << options.app << " (single use, valid until " << expiry << "):\n"
      << link->url() << std::endl;  // Flushed: a script may read it now.
  if (!wait) return absl::OkStatus();

  out << "Waiting up to " << absl::FormatDuration(options.wait)
      << " for the sign-in..." << std::endl;
  const absl::Time deadline = clock() + options.wait;
  absl::Status last_error;
  while (true) {
    const absl::Duration left = deadline - clock();
    if (left > absl::ZeroDuration()) {
      sleep(std::min(options.poll_interval, left));
    }
    absl::StatusOr<v1::ListAppsResponse> apps =
        stub.ListApps(v1::ListAppsRequest());
    if (apps.ok()) {
      if (!ConnectedUsers(*apps, options.app).ok()) {
        return absl::NotFoundError(
            absl::StrCat("app ", options.app,
                         " is no longer configured in the broker (was the "
                         "configuration reloaded?)"));
      }
      const v1::UserGrantInfo* user =
          NewlyConnected(*apps, options.app, before);
      if (user != nullptr) {
        out << ConnectedLine(*user) << "\n";
        return absl::OkStatus();
      }
    } else if (IsTransient(apps.status())) {
      last_error = apps.status();
    } else {
      return apps.status();
    }
    if (clock() >= deadline) break;
  }
  std::string message = absl::StrCat(
      "no user connected ", options.app, " within ",
      absl::FormatDuration(options.wait),
      ": nobody signed in with the link, or the link expired (valid until ",
      expiry, "); run 'tokenbrokerctl connect ", options.app,
      "' for a new link");
  if (!last_error.ok()) {
    absl::StrAppend(&message,
                    " (last error while waiting: ", last_error.message(), ")");
  }
  return ConnectTimeoutError(message);
}

}  // namespace tokenbroker::cli
