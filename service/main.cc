// token-broker: serves OAuth 2.0 tokens of Anypoint connected apps over gRPC.
// This file only parses flags, wires objects and handles signals.

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/app/broker_server.h"
#include "service/common/crash_point.h"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/config/config.h"
#include "service/config/file_watcher.h"

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
ABSL_FLAG(std::string, admin_port_file, "",
          "Once listening, write the bound admin HTTP port (listen.admin_http) "
          "to this file; written before --port_file.");
ABSL_FLAG(std::string, oauth_port_file, "",
          "Once listening, write the bound port of listen.oauth_http (the "
          "OAuth sign-in pages) to this file; written before --port_file.");
ABSL_FLAG(bool, watch_config, true,
          "Reload when the config file or a secret file it names changes "
          "(inotify on their directories; sees Kubernetes volume updates).");
ABSL_FLAG(bool, check_config, false,
          "Only validate --config (syntax, keys, values) and exit: 0 if it "
          "is valid, 2 if not. Secrets and TLS files are not read.");
ABSL_FLAG(absl::Duration, watch_debounce, absl::Seconds(1),
          "How long file changes must settle before a reload.");
ABSL_FLAG(bool, allow_core_dumps, false,
          "Keep the process dumpable and the core size limit as they are, "
          "for debugging. By default the broker turns core dumps off "
          "(PR_SET_DUMPABLE 0, RLIMIT_CORE 0): a dump would hold client "
          "secrets and tokens.");

// Test-only: the crash tests of refresh-token rotation (service/common/
// crash_point.h). Hidden from --help.
ABSL_FLAG(std::string, crash_point, "",
          "Testing only: kill the process (SIGKILL) when it reaches this "
          "point of a refresh-token rotation.");

namespace tokenbroker {
namespace {

int Run() {
  ArmCrashPoint(absl::GetFlag(FLAGS_crash_point));
  // Before any secret (or client id) is read.
  const bool allow_core_dumps = absl::GetFlag(FLAGS_allow_core_dumps);
  if (absl::Status hardened = HardenProcess(allow_core_dumps); !hardened.ok()) {
    LogError(
        "cannot turn core dumps off; not starting with secrets that could "
        "be dumped (--allow_core_dumps to run anyway)",
        {{"error", std::string(hardened.message())}});
    return 1;
  }
  if (allow_core_dumps) {
    LogWarning(
        "core dumps allowed (--allow_core_dumps): a dump of this process "
        "holds client secrets and tokens; protect or delete it");
  } else {
    LogInfo("core dumps off: the process is not dumpable and RLIMIT_CORE is 0",
            {{"allow_core_dumps", false}});
  }

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
  if (absl::GetFlag(FLAGS_check_config)) {
    LogInfo("configuration is valid", {{"path", config_path}});
    return 0;
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
  sigaddset(&signals, SIGHUP);
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

  BrokerServer* broker = server->get();
  if (absl::Status http = broker->StartHttp(); !http.ok()) {
    LogError("cannot start", {{"error", std::string(http.message())}});
    return 1;
  }
  if (std::string port_file = absl::GetFlag(FLAGS_admin_port_file);
      !port_file.empty() && broker->admin_http_port() != 0) {
    std::ofstream out(port_file, std::ios::trunc);
    out << broker->admin_http_port() << "\n";
    if (!out) {
      LogError("cannot write --admin_port_file", {{"path", port_file}});
      return 1;
    }
  }
  if (std::string port_file = absl::GetFlag(FLAGS_oauth_port_file);
      !port_file.empty() && broker->oauth_http_port() != 0) {
    std::ofstream out(port_file, std::ios::trunc);
    out << broker->oauth_http_port() << "\n";
    if (!out) {
      LogError("cannot write --oauth_port_file", {{"path", port_file}});
      return 1;
    }
  }

  std::unique_ptr<FileWatcher> watcher;
  if (absl::GetFlag(FLAGS_watch_config)) {
    absl::StatusOr<std::unique_ptr<FileWatcher>> started_watcher =
        FileWatcher::Start(WatchedFiles(*broker->config().Get()),
                           absl::GetFlag(FLAGS_watch_debounce), [broker] {
                             LogInfo("config or secret files changed");
                             // ReloadFromFile() logs what it did or why not.
                             (void)broker->ReloadFromFile();
                             return WatchedFiles(*broker->config().Get());
                           });
    if (started_watcher.ok()) {
      watcher = *std::move(started_watcher);
    } else {
      LogWarning("not watching the config files",
                 {{"error", std::string(started_watcher.status().message())}});
    }
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

  std::thread signal_thread([&signals, broker] {
    while (true) {
      int signal_number = 0;
      sigwait(&signals, &signal_number);
      if (signal_number == SIGHUP) {
        LogInfo("signal received: reloading the config",
                {{"signal", "SIGHUP"}});
        (void)broker->ReloadFromFile();
        continue;
      }
      LogInfo("signal received",
              {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
      // Readiness (gRPC health and /readyz) turns false first; liveness
      // (/healthz) stays true until the process exits.
      broker->Shutdown(absl::GetFlag(FLAGS_drain_delay),
                       absl::GetFlag(FLAGS_shutdown_grace));
      return;
    }
  });
  broker->Wait();
  signal_thread.join();
  watcher.reset();
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
