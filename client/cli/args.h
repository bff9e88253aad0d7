// The command line of tokenbrokerctl: parsing and help texts.
#ifndef TOKENBROKER_CLIENT_CLI_ARGS_H_
#define TOKENBROKER_CLIENT_CLI_ARGS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/commands.h"
#include "client/cli/stub.h"

namespace tokenbroker::cli {

// A parsed command line. Only the options of `command` are meaningful.
struct Invocation {
  // "token", "watch", "apps", "refresh", "revoke", "connect", "reload",
  // "call" or "help".
  std::string command;
  // Print help for `help_topic` (a command, or "" for the overview) and exit 0.
  bool help = false;
  std::string help_topic;

  ConnectionOptions connection;
  TokenOptions token;
  WatchOptions watch;
  AppsOptions apps;
  RefreshOptions refresh;
  RevokeOptions revoke;
  ConnectOptions connect;
  // `call.body` is left empty; `call_data` holds the --data argument
  // (@FILE, - for stdin, or a literal) for the caller to read, and
  // `call_output` the -o argument (a file for the body; - for stdout).
  CallOptions call;
  std::optional<std::string> call_data;
  std::optional<std::string> call_output;
};

// Looks up an environment variable; a parameter so that tests control it.
using GetEnvFn = std::function<std::optional<std::string>(const char* name)>;

// Parses `args` (without argv[0]). Flags are `--name value` or `--name=value`;
// global flags are accepted before or after the command, command flags only
// after it; `--` ends flags. Unset connection flags fall back to the
// TOKENBROKER_* environment variables. Errors: INVALID_ARGUMENT with a message
// for the user (a usage error, exit code 2).
absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& args,
                                     const GetEnvFn& getenv);

// The help text for `topic` (a command name, or "" for the overview). Unknown
// topics get the overview.
std::string HelpText(const std::string& topic);

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_ARGS_H_
