// token-broker: serves OAuth 2.0 tokens of Anypoint connected apps over gRPC.
// This file only parses flags, wires objects and handles signals.

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/common/log.h"
#include "service/config/config.h"
#include "service/grpc/server.h"

ABSL_FLAG(std::string, config, "", "Path of the broker's YAML configuration.");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address (host:port); overrides listen.grpc.");
ABSL_FLAG(std::string, port_file, "",
          "Once listening, write the bound gRPC port to this file (for "
          "scripts that listen on port 0).");
ABSL_FLAG(std::string, log_level, "",
          "debug, info, warning or error; overrides log_level.");
ABSL_FLAG(absl::Duration, drain_delay, absl::ZeroDuration(),
          "On SIGTERM/SIGINT, how long to report NOT_SERVING before the "
          "listener closes (let load balancers notice).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "How long in-flight RPCs may run after the listener closes.");

namespace tokenbroker {
namespace {

int Run() {
  std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) {
    LogError("--config is required: the path of the broker's YAML file");
    return 2;
  }
  absl::StatusOr<Config> config = LoadConfigFile(config_path);
  if (!config.ok()) {
    LogError("invalid configuration",
             {{"error", std::string(config.status().message())}});
    return 2;
  }
  std::string level_name = absl::GetFlag(FLAGS_log_level).empty()
                               ? config->log_level
                               : absl::GetFlag(FLAGS_log_level);
  LogLevel level;
  if (!ParseLogLevel(level_name, &level)) {
    LogError("--log_level must be debug, info, warning or error");
    return 2;
  }
  SetLogLevel(level);

  // Signals are taken by one thread with sigwait(); block them everywhere
  // else before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<BrokerServer>> server =
      BrokerServer::Create(*std::move(config));
  if (!server.ok()) {
    LogError("cannot start", {{"error", server.status().ToString()}});
    return 1;
  }
  absl::Status started = (*server)->Start(absl::GetFlag(FLAGS_listen));
  if (!started.ok()) {
    LogError("cannot start", {{"error", std::string(started.message())}});
    return 1;
  }

  if (std::string port_file = absl::GetFlag(FLAGS_port_file);
      !port_file.empty()) {
    std::ofstream out(port_file, std::ios::trunc);
    out << (*server)->port() << "\n";
    if (!out) {
      LogError("cannot write --port_file", {{"path", port_file}});
      return 1;
    }
  }

  std::thread signal_thread([&signals, &server] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    LogInfo("signal received",
            {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
    (*server)->Shutdown(absl::GetFlag(FLAGS_drain_delay),
                        absl::GetFlag(FLAGS_shutdown_grace));
  });
  (*server)->Wait();
  signal_thread.join();
  return 0;
}

}  // namespace
}  // namespace tokenbroker

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves OAuth 2.0 access tokens of Anypoint connected apps over gRPC.\n"
      "Usage: token-broker --config FILE [--listen HOST:PORT] "
      "[--log_level LEVEL]");
  absl::ParseCommandLine(argc, argv);
  tokenbroker::InstallGrpcLogBridge();
  return tokenbroker::Run();
}
