#include "bench/baseline_service.h"

#include <memory>
#include <string>

#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/server_builder.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;

grpc::ServerUnaryReactor* BaselineService::Ping(
    grpc::CallbackServerContext* context, const Empty*, Empty*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* BaselineService::PingToken(
    grpc::CallbackServerContext* context, const pb::GetTokenRequest*,
    pb::GetTokenResponse* response) {
  *response = token_answer_;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

BaselineService& TheBaseline() {
  static auto* service = new BaselineService();
  return *service;
}

namespace {

class BaselinePlugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "tokenbroker_bench_baseline"; }
  void UpdateServerBuilder(grpc::ServerBuilder* builder) override {
    builder->RegisterService(&TheBaseline());
  }
  void InitServer(grpc::ServerInitializer*) override {}
  void Finish(grpc::ServerInitializer*) override {}
  void ChangeArguments(const std::string&, void*) override {}
};

std::unique_ptr<grpc::ServerBuilderPlugin> CreateBaselinePlugin() {
  return std::make_unique<BaselinePlugin>();
}

}  // namespace

void RegisterBaselineInEveryServer() {
  grpc::ServerBuilder::InternalAddPluginFactory(&CreateBaselinePlugin);
}

}  // namespace tokenbroker::bench
