#include "client/cli/stub.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "client/lib/broker_rpc.h"
#include "client/lib/channel.h"
#include "client/lib/client.h"
#include "client/lib/retry_loop.h"
#include "service/common/backoff_policy.h"

namespace tokenbroker::cli {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;
using client_internal::FromGrpcStatus;
using client_internal::PrepareContext;
using client_internal::RpcDescription;

class GrpcBrokerStub final : public BrokerStub {
 public:
  GrpcBrokerStub(ClientConnection connection, absl::Duration timeout)
      : connection_(std::move(connection)),
        broker_(v1::TokenBroker::NewStub(connection_.channel)),
        admin_(v1::BrokerAdmin::NewStub(connection_.channel)),
        timeout_(timeout) {}

  absl::StatusOr<v1::GetTokenResponse> GetToken(
      const v1::GetTokenRequest& request) override {
    constexpr absl::string_view kRpc = "TokenBroker.GetToken";
    absl::StatusOr<v1::GetTokenResponse> token = Unary<v1::GetTokenResponse>(
        kRpc, [&](grpc::ClientContext* c, auto* response) {
          return broker_->GetToken(c, request, response);
        });
    if (!token.ok()) return token;
    // Never print the app's own token for a user's (an older broker ignores
    // the field).
    absl::Status whose =
        client_internal::CheckTokenUser(request.user(), *token, Describe(kRpc));
    if (!whose.ok()) return whose;
    return token;
  }

  absl::Status WatchToken(
      const v1::WatchTokenRequest& request,
      const std::function<bool(const v1::GetTokenResponse&)>& on_token)
      override {
    grpc::ClientContext context;  // The stream has no deadline.
    PrepareContext(connection_, absl::InfiniteFuture(), &context);
    std::unique_ptr<grpc::ClientReader<v1::GetTokenResponse>> reader =
        broker_->WatchToken(&context, request);
    v1::GetTokenResponse token;
    while (reader->Read(&token)) {
      if (!on_token(token)) {
        context.TryCancel();
        reader->Finish();  // CANCELLED, by us: not an error.
        return absl::OkStatus();
      }
    }
    return FromGrpcStatus(reader->Finish(), Describe("TokenBroker.WatchToken"));
  }

  absl::StatusOr<v1::CallResponse> Call(
      const v1::CallRequest& request) override {
    return Unary<v1::CallResponse>("TokenBroker.Call",
                                   [&](grpc::ClientContext* c, auto* response) {
                                     return broker_->Call(c, request, response);
                                   });
  }

  absl::Status CallStream(
      const v1::CallRequest& request,
      const std::function<absl::Status(const v1::CallStreamResponse&)>&
          on_message) override {
    grpc::ClientContext context;
    PrepareContext(connection_, absl::Now() + timeout_, &context);
    std::unique_ptr<grpc::ClientReader<v1::CallStreamResponse>> reader =
        broker_->CallStream(&context, request);
    v1::CallStreamResponse message;
    while (reader->Read(&message)) {
      absl::Status handled = on_message(message);
      if (!handled.ok()) {
        context.TryCancel();
        reader->Finish();  // CANCELLED, by us.
        return handled;
      }
    }
    return FromGrpcStatus(reader->Finish(), Describe("TokenBroker.CallStream"));
  }

  absl::StatusOr<v1::ListAppsResponse> ListApps(
      const v1::ListAppsRequest& request) override {
    return Unary<v1::ListAppsResponse>(
        "BrokerAdmin.ListApps", [&](grpc::ClientContext* c, auto* response) {
          return admin_->ListApps(c, request, response);
        });
  }

  absl::StatusOr<v1::RefreshTokenResponse> RefreshToken(
      const v1::RefreshTokenRequest& request) override {
    return Unary<v1::RefreshTokenResponse>(
        "BrokerAdmin.RefreshToken",
        [&](grpc::ClientContext* c, auto* response) {
          return admin_->RefreshToken(c, request, response);
        });
  }

  absl::StatusOr<v1::RevokeTokenResponse> RevokeToken(
      const v1::RevokeTokenRequest& request) override {
    return Unary<v1::RevokeTokenResponse>(
        "BrokerAdmin.RevokeToken", [&](grpc::ClientContext* c, auto* response) {
          return admin_->RevokeToken(c, request, response);
        });
  }

  absl::StatusOr<v1::ReloadConfigResponse> ReloadConfig(
      const v1::ReloadConfigRequest& request) override {
    return Unary<v1::ReloadConfigResponse>(
        "BrokerAdmin.ReloadConfig",
        [&](grpc::ClientContext* c, auto* response) {
          return admin_->ReloadConfig(c, request, response);
        });
  }

  absl::StatusOr<v1::CreateConnectLinkResponse> CreateConnectLink(
      const v1::CreateConnectLinkRequest& request) override {
    return Unary<v1::CreateConnectLinkResponse>(
        "BrokerAdmin.CreateConnectLink",
        [&](grpc::ClientContext* c, auto* response) {
          return admin_->CreateConnectLink(c, request, response);
        });
  }

 private:
  template <typename Response, typename Rpc>
  absl::StatusOr<Response> Unary(absl::string_view rpc_name, Rpc rpc) {
    const absl::Time deadline = absl::Now() + timeout_;
    const RpcDescription description = Describe(rpc_name);
    // tokenbrokerctl tries each RPC once: the script that runs it decides
    // about retries from the exit code (kExitUnavailable). To retry here,
    // pass client_internal::RetryPolicyFor(options, idempotent) instead.
    const RetryPolicy once;
    ExponentialBackoffPolicy backoff =
        client_internal::BackoffPolicyFor(ClientRetryOptions());
    return RetryLoop(once, backoff, deadline, RetryClock(), [&] {
      return client_internal::UnaryAttempt<Response>(connection_, deadline,
                                                     description, rpc);
    });
  }

  RpcDescription Describe(absl::string_view rpc_name) const {
    RpcDescription description;
    description.rpc_name = rpc_name;
    description.target = connection_.target;
    description.timeout = timeout_;
    description.caller = "tokenbrokerctl";
    description.deadline_hint = "; raise --timeout if the broker is slow";
    return description;
  }

  const ClientConnection connection_;
  std::unique_ptr<v1::TokenBroker::Stub> broker_;
  std::unique_ptr<v1::BrokerAdmin::Stub> admin_;
  const absl::Duration timeout_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerStub>> MakeGrpcBrokerStub(
    const ConnectionOptions& options) {
  // The client library's channel setup, so that the CLI connects exactly as
  // services using tokenbroker::Client do.
  ClientChannelOptions channel;
  channel.target = options.addr;
  channel.plaintext = options.plaintext;
  channel.ca_file = options.ca_file;
  channel.cert_file = options.cert_file;
  channel.key_file = options.key_file;
  channel.bearer_file = options.bearer_file;
  channel.user_agent_prefix = "tokenbrokerctl";
  absl::StatusOr<ClientConnection> connection = MakeClientConnection(channel);
  if (!connection.ok()) return connection.status();
  return std::make_unique<GrpcBrokerStub>(*std::move(connection),
                                          options.timeout);
}

}  // namespace tokenbroker::cli
