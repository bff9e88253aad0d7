#ifndef TOKENBROKER_BENCH_BROKER_HARNESS_H_
#define TOKENBROKER_BENCH_BROKER_HARNESS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "baseline.grpc.pb.h"
#include "emulator/emulator.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/app/broker_server.h"

namespace tokenbroker::bench {

// Writes `content` to `path` (replacing it).
void WriteFile(const std::string& path, const std::string& content);

// A new directory under /tmp; exits the process if it cannot.
std::string TempDir();

// The emulator's demo fixture (emulator/fixtures/demo.yaml); exits the
// process if it cannot be read.
emulator::Fixture DemoFixture();

// What a scenario adds to the in-process broker's config, as YAML text:
// items of the `apps:` list, items of the caller's `grants:` list, keys of
// the `cache:` map and whole top-level sections. Each is indented as it
// goes in the file (apps and grants by 2 and 6 spaces, cache keys by 2).
struct BrokerExtras {
  std::string apps;
  std::string grants;
  std::string cache;
  std::string sections;
};

// How to build an InProcessBroker.
struct BrokerSetup {
  // Audit to a file, as in production (false: no audit sink).
  bool audit = true;
  // What the emulator serves; DemoFixture() if unset.
  std::optional<emulator::Fixture> fixture;
  // Called once the emulator runs and before the broker starts, with the
  // broker's own temporary directory (where secret, key and store files
  // may go): sets the emulator up and returns the config to add. Exits the
  // process itself if it cannot.
  std::function<BrokerExtras(emulator::Emulator&, const std::string& dir)>
      extras;
};

// The in-process broker of the rpc, call, coalesce and user_refresh
// scenarios: the emulator and the broker on loopback, plaintext, and one
// client channel to it. Apps: design-center (grants every route),
// coalesce-a and coalesce-b (one client id, for cold keys), plus what
// `setup.extras` adds; one caller (anonymous) granted them all. Exits the
// process if anything fails to start.
class InProcessBroker {
 public:
  explicit InProcessBroker(bool audit)
      : InProcessBroker(BrokerSetup{audit, std::nullopt, nullptr}) {}
  explicit InProcessBroker(BrokerSetup setup);
  ~InProcessBroker();
  InProcessBroker(const InProcessBroker&) = delete;
  InProcessBroker& operator=(const InProcessBroker&) = delete;

  emulator::Emulator& emulator() { return *emulator_; }
  ::anypoint::tokenbroker::v1::TokenBroker::Stub& broker() {
    return *broker_stub_;
  }
  Baseline::Stub& baseline() { return *baseline_stub_; }
  grpc::health::v1::Health::Stub& health() { return *health_stub_; }
  BrokerServer& server() { return *broker_; }

 private:
  std::unique_ptr<emulator::Emulator> emulator_;
  std::string dir_;
  std::unique_ptr<BrokerServer> broker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::anypoint::tokenbroker::v1::TokenBroker::Stub> broker_stub_;
  std::unique_ptr<Baseline::Stub> baseline_stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
};

}  // namespace tokenbroker::bench

#endif  // TOKENBROKER_BENCH_BROKER_HARNESS_H_
