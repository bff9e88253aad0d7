#include "bench/broker_harness.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "service/config/config.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string TempDir() {
  char dir_template[] = "/tmp/tokenbroker-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return dir_template;
}

emulator::Fixture DemoFixture() {
  absl::StatusOr<emulator::Fixture> fixture = emulator::LoadFixtureFile(
      absl::StrCat(TOKENBROKER_SOURCE_DIR, "/emulator/fixtures/demo.yaml"));
  if (!fixture.ok()) {
    std::cerr << fixture.status() << "\n";
    std::exit(1);
  }
  return *std::move(fixture);
}

InProcessBroker::InProcessBroker(BrokerSetup setup) {
  emulator_ = std::make_unique<emulator::Emulator>(
      setup.fixture.has_value() ? *std::move(setup.fixture) : DemoFixture());
  if (!emulator_->Start({}).ok()) std::exit(1);
  dir_ = TempDir();
  BrokerExtras extras;
  if (setup.extras) extras = setup.extras(*emulator_, dir_);
  WriteFile(dir_ + "/dc", "dc-secret-please-rotate\n");
  WriteFile(dir_ + "/ex", "exchange-reader-fake-secret\n");
  std::string base = emulator_->base_url();
  std::string yaml = absl::StrCat(
      "listen:\n  grpc: 127.0.0.1:0\n"
      "development:\n  insecure_plaintext: true\n"
      "cache:\n  fetch_timeout: 10s\n",
      extras.cache,
      "apps:\n"
      "  - name: design-center\n    base_url: ",
      base, "\n    client_id: design-center-app\n",
      "    client_secret: {file: ", dir_, "/dc}\n",
      "    scopes: [view:design_center, view:environment, read:exchange]\n");
  for (const char* name : {"coalesce-a", "coalesce-b"}) {
    absl::StrAppend(&yaml, "  - name: ", name, "\n    base_url: ", base,
                    "\n    client_id: exchange-reader\n",
                    "    client_secret: {file: ", dir_, "/ex}\n",
                    "    scopes: [read:exchange]\n");
  }
  absl::StrAppend(
      &yaml, extras.apps,
      "callers:\n  - name: anonymous\n    grants:\n"
      "      - {app: design-center, scopes: ['*'], routes: ['* /**']}\n"
      "      - {app: coalesce-a, scopes: ['*']}\n"
      "      - {app: coalesce-b, scopes: ['*']}\n",
      extras.grants, extras.sections);
  if (setup.audit) {
    absl::StrAppend(&yaml, "audit:\n  path: ", dir_, "/audit.log\n");
  }
  WriteFile(dir_ + "/broker.yaml", yaml);
  absl::StatusOr<Config> config = LoadConfigFile(dir_ + "/broker.yaml");
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    std::exit(1);
  }
  absl::StatusOr<std::unique_ptr<BrokerServer>> broker =
      BrokerServer::Create(*std::move(config));
  if (!broker.ok() || !(*broker)->Start("127.0.0.1:0").ok()) {
    std::cerr << "cannot start the broker\n";
    std::exit(1);
  }
  broker_ = *std::move(broker);
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_->port()),
                                 grpc::InsecureChannelCredentials());
  broker_stub_ = pb::TokenBroker::NewStub(channel_);
  baseline_stub_ = Baseline::NewStub(channel_);
  health_stub_ = grpc::health::v1::Health::NewStub(channel_);
}

InProcessBroker::~InProcessBroker() {
  broker_stub_.reset();
  baseline_stub_.reset();
  health_stub_.reset();
  channel_.reset();
  broker_.reset();
  emulator_->Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace tokenbroker::bench
