#ifndef TOKENBROKER_BENCH_BROKER_HARNESS_H_
#define TOKENBROKER_BENCH_BROKER_HARNESS_H_

#include <memory>
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

// The in-process broker of the rpc, call and coalesce scenarios: the
// emulator and the broker (audit to a file, as in production, unless
// `audit` is false) on loopback, plaintext, and one client channel to it.
// Apps: design-center (grants every route), coalesce-a and coalesce-b (one
// client id, for cold keys). Exits the process if anything fails to start.
class InProcessBroker {
 public:
  explicit InProcessBroker(bool audit);
  ~InProcessBroker();
  InProcessBroker(const InProcessBroker&) = delete;
  InProcessBroker& operator=(const InProcessBroker&) = delete;

  emulator::Emulator& emulator() { return *emulator_; }
  ::anypoint::tokenbroker::v1::TokenBroker::Stub& broker() {
    return *broker_stub_;
  }
  Baseline::Stub& baseline() { return *baseline_stub_; }
  grpc::health::v1::Health::Stub& health() { return *health_stub_; }

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
