#include "tests/testing/broker_fixture.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "service/config/config.h"

namespace tokenbroker::testing {
namespace {

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

}  // namespace

std::string BrokerFixture::ListenYaml() const {
  return "listen:\n  grpc: 127.0.0.1:0\n"
         "development:\n  insecure_plaintext: true\n";
}

std::string BrokerFixture::CallersYaml() const {
  return "callers:\n"
         "  - name: anonymous\n"
         "    admin: true\n"
         "    grants:\n"
         "      - {app: design-center, scopes: ['*'], routes: ['* /**']}\n"
         "      - {app: exchange-reader, scopes: ['*'], routes: ['* /**']}\n"
         "      - {app: wrong-secret, scopes: ['*'], routes: ['* /**']}\n";
}

std::string BrokerFixture::AppsYaml() const {
  return absl::StrCat(
      "apps:\n"
      "  - name: design-center\n"
      "    base_url: ",
      emulator_->base_url(),
      "\n"
      "    client_id: design-center-app\n"
      "    client_secret: {file: ",
      secrets_dir_,
      "/dc}\n"
      "    scopes: [view:design_center, view:environment, read:exchange]\n"
      "  - name: exchange-reader\n"
      "    base_url: ",
      emulator_->base_url(),
      "\n"
      "    client_id: exchange-reader\n"
      "    client_secret: {file: ",
      secrets_dir_,
      "/ex}\n"
      "    scopes: [read:exchange]\n"
      "  - name: wrong-secret\n"
      "    base_url: ",
      emulator_->base_url(),
      "\n"
      "    client_id: design-center-app\n"
      "    client_secret: {file: ",
      secrets_dir_,
      "/wrong}\n"
      "    scopes: [view:design_center]\n");
}

std::shared_ptr<grpc::ChannelCredentials> BrokerFixture::ChannelCredentials()
    const {
  return grpc::InsecureChannelCredentials();
}

std::string BrokerFixture::ConfigYaml() const {
  return absl::StrCat(ListenYaml(), "cache:\n", "  fetch_timeout: 10s\n",
                      CacheYaml(), AppsYaml(), CallersYaml(), ExtraYaml());
}

void BrokerFixture::WriteConfigFile(const std::string& yaml) const {
  WriteFile(config_path_, yaml);
}

void BrokerFixture::SetUp() {
  ::testing::internal::CaptureStderr();
  capturing_stderr_ = true;
  absl::StatusOr<emulator::Fixture> fixture = emulator::LoadFixtureFile(
      absl::StrCat(TOKENBROKER_SOURCE_DIR, "/emulator/fixtures/demo.yaml"));
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  emulator_ = std::make_unique<emulator::Emulator>(*std::move(fixture));
  ASSERT_TRUE(emulator_->Start({}).ok());

  char dir_template[] = "/tmp/tokenbroker-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  secrets_dir_ = dir_template;
  WriteFile(secrets_dir_ + "/dc", "dc-secret-please-rotate\n");
  WriteFile(secrets_dir_ + "/ex", "exchange-reader-fake-secret");
  WriteFile(secrets_dir_ + "/wrong", "not-the-secret");

  config_path_ = secrets_dir_ + "/broker.yaml";
  WriteConfigFile(ConfigYaml());
  absl::StatusOr<Config> config = LoadConfigFile(config_path_);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<BrokerServer>> broker =
      BrokerServer::Create(*std::move(config), deps_);
  ASSERT_TRUE(broker.ok()) << broker.status();
  broker_ = *std::move(broker);
  ASSERT_TRUE(broker_->Start("127.0.0.1:0").ok());

  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_->port()),
                                 ChannelCredentials());
  stub_ = anypoint::tokenbroker::v1::TokenBroker::NewStub(channel_);
  admin_ = anypoint::tokenbroker::v1::BrokerAdmin::NewStub(channel_);
}

void BrokerFixture::TearDown() {
  stub_.reset();
  admin_.reset();
  channel_.reset();
  broker_.reset();
  if (emulator_ != nullptr) emulator_->Stop();
  if (!secrets_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(secrets_dir_, ignored);
  }

  if (!capturing_stderr_) return;
  logged_ = ::testing::internal::GetCapturedStderr();
  const std::string& logged = logged_;
  // Echo what was captured so failures stay debuggable.
  std::fputs(logged.c_str(), stderr);
  for (const char* secret : {"dc-secret-please-rotate",
                             "exchange-reader-fake-secret", "not-the-secret"}) {
    EXPECT_EQ(logged.find(secret), std::string::npos)
        << "a client secret appeared in the logs";
  }
  for (const std::string& token : tokens_seen_) {
    EXPECT_EQ(logged.find(token), std::string::npos)
        << "an access token appeared in the logs";
  }
}

grpc::Status BrokerFixture::GetToken(
    const std::string& app,
    anypoint::tokenbroker::v1::GetTokenResponse* response,
    std::vector<std::string> scopes) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  anypoint::tokenbroker::v1::GetTokenRequest request;
  request.set_app(app);
  for (const std::string& scope : scopes) request.add_scopes(scope);
  grpc::Status status = stub_->GetToken(&context, request, response);
  if (status.ok()) tokens_seen_.push_back(response->access_token());
  return status;
}

int64_t BrokerFixture::TokenRequests(const std::string& client_id) const {
  emulator::Counters counters = emulator_->GetCounters();
  auto it = counters.token_requests_by_client.find(client_id);
  return it == counters.token_requests_by_client.end() ? 0 : it->second;
}

}  // namespace tokenbroker::testing
