// anypoint-emulator: serves a fixture as a local Anypoint Platform.
//
//   anypoint-emulator --fixture emulator/fixtures/demo.yaml
//       --listen 127.0.0.1:0 --port_file /tmp/emulator.port
//
// Prints one JSON line to stdout once listening:
//   {"msg":"listening","address":"127.0.0.1:PORT"}
// and JSON logs (one line per request, never a token or secret) to stderr.
// Exits 0 on SIGTERM or SIGINT, 1 on bad flags or fixture, 2 if it cannot
// bind.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, fixture, "",
          "YAML fixture to serve (e.g. emulator/fixtures/demo.yaml)");
ABSL_FLAG(std::string, listen, "127.0.0.1:8081",
          "HOST:PORT to listen on; port 0 picks a free port");
ABSL_FLAG(int, token_lifetime_seconds, 0,
          "if > 0, overrides the fixture's token_lifetime_seconds");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound port is written to this file once listening");
ABSL_FLAG(std::string, issuer, "",
          "the OAuth issuer (discovery's issuer, the iss of authorization "
          "responses); default http://HOST:PORT/accounts/api/v2/oauth2 of "
          "--listen. Set it to the URL clients use when that differs");

namespace {

void LogLine(const std::string& level, const std::string& msg,
             nlohmann::json fields = nlohmann::json::object()) {
  fields["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                  absl::UTCTimeZone());
  fields["level"] = level;
  fields["msg"] = msg;
  std::cerr << fields.dump(-1, ' ', false,
                           nlohmann::json::error_handler_t::replace)
            << std::endl;
}

bool ParseListen(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::SimpleAtoi(listen.substr(colon + 1), port) && *port >= 0 &&
         *port <= 65535;
}

// Written to a temporary file and renamed, so a script polling for the file
// never reads a partial port.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << port << "\n";
    if (!out.good()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Local stand-in for Anypoint Platform with fault injection.\n"
      "Usage: anypoint-emulator --fixture FILE [--listen HOST:PORT] "
      "[--token_lifetime_seconds N] [--port_file PATH] [--issuer URL]");
  absl::ParseCommandLine(argc, argv);

  const std::string fixture_path = absl::GetFlag(FLAGS_fixture);
  if (fixture_path.empty()) {
    LogLine("error",
            "--fixture is required (e.g. emulator/fixtures/demo.yaml)");
    return 1;
  }
  std::string host;
  int port = 0;
  if (!ParseListen(absl::GetFlag(FLAGS_listen), &host, &port)) {
    LogLine("error", "--listen must be HOST:PORT, e.g. 127.0.0.1:8081",
            {{"listen", absl::GetFlag(FLAGS_listen)}});
    return 1;
  }
  absl::StatusOr<tokenbroker::emulator::Fixture> fixture =
      tokenbroker::emulator::LoadFixtureFile(fixture_path);
  if (!fixture.ok()) {
    LogLine("error", "cannot load the fixture",
            {{"error", std::string(fixture.status().message())}});
    return 1;
  }
  if (absl::GetFlag(FLAGS_token_lifetime_seconds) > 0) {
    fixture->token_lifetime_seconds =
        absl::GetFlag(FLAGS_token_lifetime_seconds);
  }

  // Block the stop signals before any thread starts, so that every thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  tokenbroker::emulator::Emulator emulator(*std::move(fixture));
  tokenbroker::emulator::Options options;
  options.host = host;
  options.port = port;
  options.log_requests = true;
  options.issuer = absl::GetFlag(FLAGS_issuer);
  const absl::Status started = emulator.Start(options);
  if (!started.ok()) {
    LogLine("error", "cannot start",
            {{"error", std::string(started.message())}});
    return 2;
  }
  const std::string address = absl::StrCat(
      host.find(':') != std::string::npos ? "[" + host + "]" : host, ":",
      emulator.port());
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty() && !WritePortFile(port_file, emulator.port())) {
    LogLine("error", "cannot write --port_file", {{"path", port_file}});
    emulator.Stop();
    return 1;
  }
  std::cout << nlohmann::json{{"msg", "listening"}, {"address", address}}.dump()
            << std::endl;
  LogLine("info", "listening",
          {{"address", address}, {"fixture", fixture_path}});

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LogLine("info", "stopping", {{"signal", signal_number}});
  emulator.Stop();
  LogLine("info", "stopped");
  return 0;
}
