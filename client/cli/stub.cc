#include "client/cli/stub.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "client/lib/channel.h"

namespace tokenbroker::cli {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;

// Call bodies can be large; the broker enforces its own limits.
constexpr int kMaxReceiveMessageBytes = 64 << 20;

class GrpcBrokerStub final : public BrokerStub {
 public:
  GrpcBrokerStub(std::shared_ptr<grpc::Channel> channel, std::string addr,
                 std::string bearer_key, absl::Duration timeout)
      : broker_(v1::TokenBroker::NewStub(channel)),
        admin_(v1::BrokerAdmin::NewStub(channel)),
        addr_(std::move(addr)),
        bearer_key_(std::move(bearer_key)),
        timeout_(timeout) {}

  absl::StatusOr<v1::GetTokenResponse> GetToken(
      const v1::GetTokenRequest& request) override {
    return Unary<v1::GetTokenResponse>(
        "TokenBroker.GetToken", [&](grpc::ClientContext* c, auto* response) {
          return broker_->GetToken(c, request, response);
        });
  }

  absl::Status WatchToken(
      const v1::WatchTokenRequest& request,
      const std::function<bool(const v1::GetTokenResponse&)>& on_token)
      override {
    grpc::ClientContext context;
    Prepare(&context, /*with_deadline=*/false);
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
    return FromGrpc(reader->Finish(), "TokenBroker.WatchToken");
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
    Prepare(&context, /*with_deadline=*/true);
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
    return FromGrpc(reader->Finish(), "TokenBroker.CallStream");
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

 private:
  template <typename Response, typename Rpc>
  absl::StatusOr<Response> Unary(absl::string_view rpc_name, Rpc rpc) {
    grpc::ClientContext context;
    Prepare(&context, /*with_deadline=*/true);
    Response response;
    grpc::Status status = rpc(&context, &response);
    if (!status.ok()) return FromGrpc(status, rpc_name);
    return response;
  }

  void Prepare(grpc::ClientContext* context, bool with_deadline) const {
    if (with_deadline) {
      context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    }
    if (!bearer_key_.empty()) {
      context->AddMetadata("authorization",
                           absl::StrCat("Bearer ", bearer_key_));
    }
  }

  // gRPC's own messages for these cases are terse ("", "Deadline Exceeded"):
  // add what the user needs to act on them.
  absl::Status FromGrpc(const grpc::Status& status,
                        absl::string_view rpc_name) const {
    if (status.ok()) return absl::OkStatus();
    const auto code = static_cast<absl::StatusCode>(status.error_code());
    std::string message = status.error_message();
    switch (code) {
      case absl::StatusCode::kUnimplemented:
        if (message.empty()) {
          message = absl::StrCat("the broker at ", addr_,
                                 " does not implement ", rpc_name,
                                 " (is it older than this tokenbrokerctl?)");
        }
        break;
      case absl::StatusCode::kUnavailable:
        absl::StrAppend(&message, " (broker at ", addr_, ")");
        break;
      case absl::StatusCode::kDeadlineExceeded:
        absl::StrAppend(&message, " (", rpc_name, " took more than ",
                        absl::FormatDuration(timeout_),
                        "; raise --timeout if the broker is slow)");
        break;
      default:
        break;
    }
    return absl::Status(code, message);
  }

  std::unique_ptr<v1::TokenBroker::Stub> broker_;
  std::unique_ptr<v1::BrokerAdmin::Stub> admin_;
  const std::string addr_;
  const std::string bearer_key_;
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
  channel.max_receive_message_bytes = kMaxReceiveMessageBytes;
  absl::StatusOr<ClientConnection> connection = MakeClientConnection(channel);
  if (!connection.ok()) return connection.status();
  return std::make_unique<GrpcBrokerStub>(
      std::move(connection->channel), options.addr,
      std::move(connection->bearer_key), options.timeout);
}

}  // namespace tokenbroker::cli
