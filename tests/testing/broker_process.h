#ifndef TOKENBROKER_TESTS_TESTING_BROKER_PROCESS_H_
#define TOKENBROKER_TESTS_TESTING_BROKER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tokenbroker::testing {

// The token-broker binary in a child process, as tests and benchmarks run
// it: started with posix_spawn from a config file, listening on the ports
// it writes to --port_file and --admin_port_file (the config says
// 127.0.0.1:0 for both listeners and development.insecure_plaintext), its
// stderr in a log file per run under `dir`. Restartable: each Start() is a
// new run with a new log file (and new ports).
//
// Waits (Start, Terminate, Kill) poll with a 30 s safety bound; nothing
// sleeps to let time pass. Not thread-safe, except the const accessors and
// stubs once Start() returned.
class BrokerProcess {
 public:
  // `binary`: the token-broker executable. `dir`: an existing directory of
  // this process alone (port files, logs).
  BrokerProcess(std::string binary, std::string dir);
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;
  // SIGKILL if still running.
  ~BrokerProcess();

  // Spawns the broker with --config=`config_path`, --watch_config=false and
  // `extra_args` (later flags win), and waits until it listens. The error
  // holds the run's log when it exits or does not listen in time.
  absl::Status Start(const std::string& config_path,
                     std::vector<std::string> extra_args = {});
  // SIGKILL and reap.
  absl::Status Kill();
  // SIGTERM and wait for the exit; the exit code (128 + signal if killed).
  absl::StatusOr<int> Terminate();
  // SIGSTOP / SIGCONT: a hung replica.
  absl::Status Pause();
  absl::Status Resume();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int grpc_port() const { return grpc_port_; }
  int admin_port() const { return admin_port_; }
  // "127.0.0.1:PORT" of the gRPC listener.
  std::string target() const;
  int runs() const { return runs_; }

  // A channel of its own (no subchannel shared with other channels), to the
  // current run.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  // Stubs over one channel of the current run (made by Start()).
  anypoint::tokenbroker::v1::TokenBroker::Stub& broker() const {
    return *broker_;
  }
  anypoint::tokenbroker::v1::BrokerAdmin::Stub& admin() const {
    return *admin_;
  }

  // GET `path` on the admin HTTP listener: the status code, or 0 when it
  // does not answer; the body in `body` if given.
  int AdminGet(const std::string& path, std::string* body = nullptr) const;
  // The /metrics exposition, or "" when it does not answer.
  std::string Metrics() const;

  // The log of run `run` (1-based; 0: the latest), "" if none.
  std::string Log(int run = 0) const;
  // Every run's log, each after a "---- <name> run N ----" line.
  std::string AllLogs(absl::string_view name) const;

 private:
  std::string LogPath(int run) const;

  const std::string binary_;
  const std::string dir_;
  pid_t pid_ = 0;
  int runs_ = 0;
  int grpc_port_ = 0;
  int admin_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<anypoint::tokenbroker::v1::TokenBroker::Stub> broker_;
  std::unique_ptr<anypoint::tokenbroker::v1::BrokerAdmin::Stub> admin_;
};

// The value of the sample named exactly `series` (name and labels, as
// written) in a Prometheus text exposition, or 0 when it is absent;
// `found`, if given, says whether it is there.
double MetricValue(absl::string_view exposition, absl::string_view series,
                   bool* found = nullptr);

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_BROKER_PROCESS_H_
