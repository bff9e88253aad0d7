#ifndef TOKENBROKER_TESTS_TESTING_BROKER_FIXTURE_H_
#define TOKENBROKER_TESTS_TESTING_BROKER_FIXTURE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "emulator/emulator.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/app/broker_server.h"

namespace tokenbroker::testing {

// Starts the Anypoint emulator (with the demo fixture) and the broker
// in-process, both on 127.0.0.1 port 0, and connects gRPC stubs to the
// broker. The broker's config has the apps
//   design-center    client credentials of "design-center-app"
//   exchange-reader  client credentials of "exchange-reader"
//   wrong-secret     "design-center-app" with a wrong secret
// whose secrets are read from files in a temporary directory.
class BrokerFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Extra YAML for the config's `cache:` section, e.g. "  min_ttl: 1s\n".
  // Override to change the cache policy before the broker starts.
  virtual std::string CacheYaml() const { return ""; }

  // The `listen:` section (and `development:` if needed): by default
  // 127.0.0.1:0 with development.insecure_plaintext (plaintext;
  // unidentified callers are "anonymous").
  virtual std::string ListenYaml() const;

  // The `callers:` section: by default "anonymous" with the admin role and
  // every scope and route of every app.
  virtual std::string CallersYaml() const;

  // The `apps:` section described above. Uses emulator_ and secrets_dir_,
  // so it is called from SetUp() (and may be from a test, to build a config
  // for ReloadConfig).
  virtual std::string AppsYaml() const;

  // More top-level sections appended to the config, e.g. "audit:\n ...".
  // secrets_dir_ is set when it is called (a place for files of the test).
  virtual std::string ExtraYaml() const { return ""; }

  // The channel credentials of channel_ (stub_, admin_): by default
  // plaintext.
  virtual std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;

  // The whole config: ListenYaml(), the cache section, AppsYaml(),
  // CallersYaml() and ExtraYaml(). SetUp() writes it to config_path_ and
  // starts the broker from that file, so that ReloadConfig re-reads it.
  std::string ConfigYaml() const;

  // Replaces the config file's content (for ReloadConfig tests).
  void WriteConfigFile(const std::string& yaml) const;

  // GetToken with a 30-second deadline. Tokens it returns are remembered
  // and TearDown() checks that none of them, and no client secret, appears
  // in anything the broker and emulator logged during the test.
  grpc::Status GetToken(const std::string& app,
                        anypoint::tokenbroker::v1::GetTokenResponse* response,
                        std::vector<std::string> scopes = {});

  // Token requests the emulator received for `client_id`.
  int64_t TokenRequests(const std::string& client_id) const;

  // Given to BrokerServer::Create by SetUp(). A derived fixture may set it in
  // its constructor, e.g. a fake clock with start_refresher = false (the
  // test then calls broker_->cache().RunDue() after advancing the clock).
  BrokerServerDeps deps_;

  std::unique_ptr<emulator::Emulator> emulator_;
  std::unique_ptr<BrokerServer> broker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<anypoint::tokenbroker::v1::TokenBroker::Stub> stub_;
  std::unique_ptr<anypoint::tokenbroker::v1::BrokerAdmin::Stub> admin_;
  std::string secrets_dir_;
  std::string config_path_;  // secrets_dir_ + "/broker.yaml".
  std::vector<std::string> tokens_seen_;
  bool capturing_stderr_ = false;
  // What the broker and emulator logged during the test; set by TearDown().
  std::string logged_;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_BROKER_FIXTURE_H_
