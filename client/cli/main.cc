// tokenbrokerctl: parses the command line, connects and runs one command.
// See `tokenbrokerctl help`.

#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "client/cli/args.h"
#include "client/cli/commands.h"
#include "client/cli/io.h"
#include "client/cli/stub.h"

namespace tokenbroker::cli {
namespace {

std::optional<std::string> GetEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

// --data: @FILE, - (stdin) or a literal.
absl::StatusOr<std::string> ReadBody(const std::string& data) {
  if (data == "-") return ReadAll(std::cin);
  if (!data.empty() && data[0] == '@') return ReadFile(data.substr(1));
  return data;
}

int Run(const std::vector<std::string>& args) {
  absl::StatusOr<Invocation> invocation = ParseArgs(args, GetEnv);
  if (!invocation.ok()) {
    std::cerr << "tokenbrokerctl: " << invocation.status().message() << "\n";
    return kExitUsage;
  }
  if (invocation->help) {
    std::cout << HelpText(invocation->help_topic);
    return kExitOk;
  }
  if (invocation->call_data) {
    absl::StatusOr<std::string> body = ReadBody(*invocation->call_data);
    if (!body.ok()) {
      std::cerr << "tokenbrokerctl: --data: " << body.status().message()
                << "\n";
      return kExitUsage;
    }
    invocation->call.body = *std::move(body);
  }
  absl::StatusOr<std::unique_ptr<BrokerStub>> stub =
      MakeGrpcBrokerStub(invocation->connection);
  if (!stub.ok()) {
    std::cerr << "tokenbrokerctl: " << stub.status().message() << "\n";
    return kExitUsage;
  }
  // -o FILE: opened before the RPC so that an unwritable path costs no call;
  // removed again unless the command succeeds.
  std::unique_ptr<OutputFile> output;
  if (invocation->call_output && *invocation->call_output != "-") {
    absl::StatusOr<std::unique_ptr<OutputFile>> file =
        OutputFile::Open(*invocation->call_output);
    if (!file.ok()) {
      std::cerr << "tokenbrokerctl: -o: " << file.status().message() << "\n";
      return kExitUsage;
    }
    output = *std::move(file);
  }

  const std::string& command = invocation->command;
  absl::Status status;
  if (command == "token") {
    status = RunToken(**stub, invocation->token, std::cout);
  } else if (command == "watch") {
    status = RunWatch(**stub, invocation->watch, absl::Now, std::cout);
  } else if (command == "apps") {
    status = RunApps(**stub, invocation->apps, std::cout);
  } else if (command == "refresh") {
    status = RunRefresh(**stub, invocation->refresh, std::cout);
  } else if (command == "revoke") {
    status = RunRevoke(**stub, invocation->revoke, std::cout);
  } else if (command == "connect") {
    status = RunConnect(**stub, invocation->connect, absl::Now, absl::SleepFor,
                        std::cout);
  } else if (command == "reload") {
    status = RunReload(**stub, std::cout);
  } else if (command == "call") {
    status = RunCall(**stub, invocation->call, std::cout,
                     output != nullptr ? &output->stream() : nullptr);
    if (status.ok() && output != nullptr) status = output->Commit();
  }
  std::cout.flush();
  if (!status.ok()) {
    std::cerr << FormatError(status) << "\n";
    return ExitCodeFor(status);
  }
  if (!std::cout) {
    std::cerr << "tokenbrokerctl: error writing to stdout\n";
    return kExitError;
  }
  return kExitOk;
}

}  // namespace
}  // namespace tokenbroker::cli

int main(int argc, char** argv) {
  return tokenbroker::cli::Run(std::vector<std::string>(argv + 1, argv + argc));
}
