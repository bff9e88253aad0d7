#include "client/cli/args.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tokenbroker::cli {
namespace {

struct FlagSpec {
  absl::string_view name;
  bool takes_value;
};

struct CommandSpec {
  absl::string_view name;
  std::vector<FlagSpec> flags;
  size_t min_args;
  size_t max_args;
};

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {"addr", true}, {"plaintext", false},  {"ca", true},      {"cert", true},
      {"key", true},  {"bearer-file", true}, {"timeout", true}, {"help", false},
  };
  return *kFlags;
}

const std::vector<CommandSpec>& Commands() {
  static const auto* const kCommands = new std::vector<CommandSpec>{
      {"token",
       {{"scope", true},
        {"min-ttl", true},
        {"json", false},
        {"fingerprint", false},
        {"user", true}},
       0,
       1},
      {"watch", {{"scope", true}, {"count", true}, {"user", true}}, 1, 1},
      {"apps", {{"json", false}}, 0, 0},
      {"refresh", {{"scope", true}, {"user", true}}, 1, 1},
      {"revoke", {{"user", true}}, 1, 1},
      {"connect", {{"wait", true}, {"no-wait", false}}, 1, 1},
      {"reload", {}, 0, 0},
      {"call",
       {{"header", true},
        {"data", true},
        {"include", false},
        {"scope", true},
        {"stream", false},
        {"output", true},
        {"user", true}},
       3,
       3},
      {"help", {}, 0, 1},
  };
  return *kCommands;
}

// Single-dash aliases; curl's spellings for `call`.
const std::map<std::string, std::string>& ShortFlags() {
  static const auto* const kShort =
      new std::map<std::string, std::string>{{"-h", "help"},
                                             {"-i", "include"},
                                             {"-H", "header"},
                                             {"-d", "data"},
                                             {"-o", "output"}};
  return *kShort;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& spec : Commands()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags,
                         absl::string_view name) {
  for (const FlagSpec& spec : flags) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

absl::Status UsageError(absl::string_view message, absl::string_view command) {
  return absl::InvalidArgumentError(
      absl::StrCat(message, "\nRun 'tokenbrokerctl help",
                   command.empty() ? "" : " ", command, "' for usage."));
}

using FlagValues = std::map<std::string, std::vector<std::string>>;

bool Has(const FlagValues& flags, const std::string& name) {
  return flags.count(name) > 0;
}

// The last value of a flag given several times, as most CLIs do.
std::string Last(const FlagValues& flags, const std::string& name) {
  auto it = flags.find(name);
  return it == flags.end() ? std::string() : it->second.back();
}

std::vector<std::string> All(const FlagValues& flags, const std::string& name) {
  auto it = flags.find(name);
  return it == flags.end() ? std::vector<std::string>() : it->second;
}

bool EnvTrue(const std::optional<std::string>& value) {
  if (!value) return false;
  std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(*value));
  return v == "1" || v == "true" || v == "yes";
}

absl::Status ResolveConnection(const FlagValues& flags, const GetEnvFn& getenv,
                               const std::string& command,
                               ConnectionOptions* connection) {
  auto from = [&](const std::string& flag, const char* env) {
    if (Has(flags, flag)) return Last(flags, flag);
    std::optional<std::string> value = getenv(env);
    return value ? *value : std::string();
  };
  std::string addr = from("addr", "TOKENBROKER_ADDR");
  if (!addr.empty()) connection->addr = addr;
  connection->bearer_file = from("bearer-file", "TOKENBROKER_BEARER_FILE");

  const bool tls_flags =
      Has(flags, "ca") || Has(flags, "cert") || Has(flags, "key");
  if (Has(flags, "plaintext")) {
    if (tls_flags) {
      return UsageError("--plaintext conflicts with --ca, --cert and --key",
                        command);
    }
    // An explicit --plaintext overrides TLS files set in the environment.
    connection->plaintext = true;
    return absl::OkStatus();
  }
  connection->ca_file = from("ca", "TOKENBROKER_CA");
  connection->cert_file = from("cert", "TOKENBROKER_CERT");
  connection->key_file = from("key", "TOKENBROKER_KEY");
  const bool tls_files = !connection->ca_file.empty() ||
                         !connection->cert_file.empty() ||
                         !connection->key_file.empty();
  if (!tls_flags && EnvTrue(getenv("TOKENBROKER_PLAINTEXT"))) {
    if (tls_files) {
      return UsageError(
          "TOKENBROKER_PLAINTEXT conflicts with TOKENBROKER_CA, "
          "TOKENBROKER_CERT and TOKENBROKER_KEY; unset one side",
          command);
    }
    connection->plaintext = true;
  }
  if (connection->cert_file.empty() != connection->key_file.empty()) {
    return UsageError("--cert and --key go together", command);
  }
  return absl::OkStatus();
}

absl::Status ParseTimeout(const FlagValues& flags, const std::string& command,
                          ConnectionOptions* connection) {
  if (!Has(flags, "timeout")) return absl::OkStatus();
  double seconds = 0;
  if (!absl::SimpleAtod(Last(flags, "timeout"), &seconds) ||
      !std::isfinite(seconds) || seconds <= 0 || seconds > 86400 * 365) {
    return UsageError(absl::StrCat("--timeout wants a positive number of "
                                   "seconds, not \"",
                                   Last(flags, "timeout"), "\""),
                      command);
  }
  connection->timeout = absl::Seconds(seconds);
  return absl::OkStatus();
}

absl::Status ParseHeader(const std::string& text, const std::string& command,
                         std::pair<std::string, std::string>* header) {
  size_t colon = text.find(':');
  std::string name(absl::StripAsciiWhitespace(
      text.substr(0, colon == std::string::npos ? text.size() : colon)));
  if (colon == std::string::npos || name.empty()) {
    return UsageError(
        absl::StrCat("--header wants NAME:VALUE, not \"", text, "\""), command);
  }
  header->first = name;
  header->second =
      std::string(absl::StripAsciiWhitespace(text.substr(colon + 1)));
  return absl::OkStatus();
}

// --user: a username or user id; never empty when given.
absl::Status ParseUser(const FlagValues& flags, const std::string& command,
                       std::string* user) {
  if (!Has(flags, "user")) return absl::OkStatus();
  *user = std::string(absl::StripAsciiWhitespace(Last(flags, "user")));
  if (user->empty()) {
    return UsageError("--user wants a username or user id", command);
  }
  return absl::OkStatus();
}

// --wait: a duration such as 90s, 10m or 1h30m; a bare number is seconds.
absl::Status ParseWait(const FlagValues& flags, const std::string& command,
                       absl::Duration* wait) {
  if (Has(flags, "no-wait")) {
    if (Has(flags, "wait")) {
      return UsageError("--wait and --no-wait exclude each other", command);
    }
    *wait = absl::ZeroDuration();
    return absl::OkStatus();
  }
  if (!Has(flags, "wait")) return absl::OkStatus();
  const std::string text = Last(flags, "wait");
  absl::Duration parsed;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds) && std::isfinite(seconds)) {
    parsed = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &parsed)) {
    parsed = absl::ZeroDuration();
  }
  if (parsed <= absl::ZeroDuration() || parsed > absl::Hours(24)) {
    return UsageError(absl::StrCat("--wait wants a duration such as 90s, 10m "
                                   "or 1h (at most 24h), not \"",
                                   text, "\""),
                      command);
  }
  *wait = parsed;
  return absl::OkStatus();
}

absl::Status FillCommandOptions(const FlagValues& flags,
                                const std::vector<std::string>& args,
                                Invocation* invocation) {
  const std::string& command = invocation->command;
  if (command == "token") {
    TokenOptions& token = invocation->token;
    if (!args.empty()) token.app = args[0];
    token.scopes = All(flags, "scope");
    if (Has(flags, "json") && Has(flags, "fingerprint")) {
      return UsageError("--json and --fingerprint exclude each other", command);
    }
    if (Has(flags, "json")) token.output = TokenOptions::Output::kJson;
    if (Has(flags, "fingerprint")) {
      token.output = TokenOptions::Output::kFingerprint;
    }
    if (Has(flags, "min-ttl")) {
      int32_t ttl = 0;
      if (!absl::SimpleAtoi(Last(flags, "min-ttl"), &ttl) || ttl < 0) {
        return UsageError(absl::StrCat("--min-ttl wants whole seconds >= 0, "
                                       "not \"",
                                       Last(flags, "min-ttl"), "\""),
                          command);
      }
      token.min_ttl_seconds = ttl;
    }
    return ParseUser(flags, command, &token.user);
  } else if (command == "watch") {
    invocation->watch.app = args[0];
    invocation->watch.scopes = All(flags, "scope");
    if (Has(flags, "count")) {
      int64_t count = 0;
      if (!absl::SimpleAtoi(Last(flags, "count"), &count) || count < 1) {
        return UsageError(absl::StrCat("--count wants a number >= 1, not \"",
                                       Last(flags, "count"), "\""),
                          command);
      }
      invocation->watch.count = count;
    }
    return ParseUser(flags, command, &invocation->watch.user);
  } else if (command == "apps") {
    invocation->apps.json = Has(flags, "json");
  } else if (command == "refresh") {
    invocation->refresh.app = args[0];
    invocation->refresh.scopes = All(flags, "scope");
    return ParseUser(flags, command, &invocation->refresh.user);
  } else if (command == "revoke") {
    invocation->revoke.app = args[0];
    return ParseUser(flags, command, &invocation->revoke.user);
  } else if (command == "connect") {
    invocation->connect.app = args[0];
    return ParseWait(flags, command, &invocation->connect.wait);
  } else if (command == "call") {
    CallOptions& call = invocation->call;
    call.app = args[0];
    call.method = absl::AsciiStrToUpper(args[1]);
    call.path = args[2];
    for (const std::string& text : All(flags, "header")) {
      std::pair<std::string, std::string> header;
      absl::Status status = ParseHeader(text, command, &header);
      if (!status.ok()) return status;
      call.headers.push_back(std::move(header));
    }
    call.scopes = All(flags, "scope");
    call.include_headers = Has(flags, "include");
    call.stream = Has(flags, "stream");
    if (Has(flags, "data")) invocation->call_data = Last(flags, "data");
    if (Has(flags, "output")) {
      if (Last(flags, "output").empty()) {
        return UsageError("--output wants a file name (or - for stdout)",
                          command);
      }
      invocation->call_output = Last(flags, "output");
    }
    return ParseUser(flags, command, &call.user);
  } else if (command == "help") {
    invocation->help = true;
    invocation->help_topic = args.empty() ? "" : args[0];
    if (!invocation->help_topic.empty() &&
        FindCommand(invocation->help_topic) == nullptr) {
      return UsageError(
          absl::StrCat("no such command: ", invocation->help_topic), "");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& args,
                                     const GetEnvFn& getenv) {
  Invocation invocation;
  const CommandSpec* command = nullptr;
  FlagValues flags;
  std::vector<std::string> positional;
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const std::string command_name(command ? command->name : "");
    if (!flags_ended && arg == "--") {
      flags_ended = true;
      continue;
    }
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      if (command == nullptr) {
        command = FindCommand(arg);
        if (command == nullptr) {
          return UsageError(absl::StrCat("no such command: ", arg), "");
        }
      } else {
        positional.push_back(arg);
      }
      continue;
    }
    std::string name;
    std::optional<std::string> value;
    if (arg[1] == '-') {
      size_t eq = arg.find('=');
      name =
          arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos) value = arg.substr(eq + 1);
    } else {
      auto it = ShortFlags().find(arg);
      if (it != ShortFlags().end()) name = it->second;
    }
    const FlagSpec* spec =
        name.empty() ? nullptr : FindFlag(GlobalFlags(), name);
    if (spec == nullptr && command != nullptr)
      spec = FindFlag(command->flags, name);
    if (spec == nullptr) {
      return UsageError(
          command == nullptr
              ? absl::StrCat("unknown flag ", arg,
                             " (command flags go after the command)")
              : absl::StrCat("unknown flag ", arg, " for ", command_name),
          command_name);
    }
    if (spec->takes_value && !value) {
      if (i + 1 >= args.size()) {
        return UsageError(absl::StrCat("flag ", arg, " needs a value"),
                          command_name);
      }
      value = args[++i];
    } else if (!spec->takes_value && value) {
      return UsageError(absl::StrCat("flag --", name, " takes no value"),
                        command_name);
    }
    flags[name].push_back(value.value_or(""));
  }

  if (Has(flags, "help")) {
    invocation.help = true;
    invocation.help_topic = command != nullptr && command->name != "help"
                                ? std::string(command->name)
                            : !positional.empty() ? positional[0]
                                                  : "";
    return invocation;
  }
  if (command == nullptr) return UsageError("no command given", "");
  invocation.command = std::string(command->name);
  if (positional.size() < command->min_args ||
      positional.size() > command->max_args) {
    return UsageError(
        positional.size() < command->min_args
            ? absl::StrCat("missing arguments for ", invocation.command)
            : absl::StrCat("too many arguments for ", invocation.command, ": ",
                           positional[command->max_args]),
        invocation.command);
  }
  absl::Status status = ResolveConnection(flags, getenv, invocation.command,
                                          &invocation.connection);
  if (!status.ok()) return status;
  status = ParseTimeout(flags, invocation.command, &invocation.connection);
  if (!status.ok()) return status;
  status = FillCommandOptions(flags, positional, &invocation);
  if (!status.ok()) return status;
  return invocation;
}

namespace {

constexpr absl::string_view kOverview =
    R"(tokenbrokerctl: command-line client of the Anypoint token broker.

Usage: tokenbrokerctl [global flags] COMMAND [args] [flags]

Commands:
  token [APP]           print an access token of APP (for scripts);
                        --user U for a user's token of a user app
  watch APP             follow APP's token as the broker refreshes it
                        (--user U: a user's token)
  apps                  list the configured apps and the state of their tokens
  refresh APP           make the broker fetch a new token for APP now
                        (--user U: a user's token)
  revoke APP            revoke APP's tokens at Anypoint and drop them
                        (--user U: revoke and delete that user's grant)
  connect APP           print a one-time link a user opens to sign in and
                        connect user app APP, and wait for the sign-in
  reload                make the broker re-read its configuration
  call APP METHOD PATH  send an HTTP request to Anypoint with APP's token
  help [COMMAND]        show help; also COMMAND --help or -h
)";

constexpr absl::string_view kGlobalFlags = R"(
Global flags (before or after COMMAND; flags win over environment variables):
  --addr HOST:PORT      broker address ($TOKENBROKER_ADDR; default 127.0.0.1:50051)
  --plaintext           no TLS, for development brokers ($TOKENBROKER_PLAINTEXT=1)
  --ca FILE             PEM CA bundle to verify the broker ($TOKENBROKER_CA);
                        without --ca and --plaintext: TLS with the system roots
  --cert FILE           client certificate for mTLS ($TOKENBROKER_CERT)
  --key FILE            its private key ($TOKENBROKER_KEY)
  --bearer-file FILE    file holding a bearer key, sent as
                        "authorization: Bearer <key>" ($TOKENBROKER_BEARER_FILE)
  --timeout SECONDS     deadline of each RPC (default 10; watch has none)
  -h, --help            show help
)";

constexpr absl::string_view kExitCodes = R"(
Exit codes:
  0  ok
  1  any other error
  2  usage error (bad flags or arguments, unreadable input file)
  3  NOT_FOUND: the app is not configured (admin commands)
  4  PERMISSION_DENIED or UNAUTHENTICATED: you may not do this, or the app
     is unknown (to a caller, unknown and ungranted apps look the same)
  5  FAILED_PRECONDITION: Anypoint rejected the app's credentials, or a
     user's grant was revoked or expired: the message says so; connect the
     user again with 'tokenbrokerctl connect APP'
  6  UNAVAILABLE or DEADLINE_EXCEEDED: broker or Anypoint unreachable or slow
  7  connect: nobody signed in with the link before --wait ran out (or the
     link expired)
Errors go to stderr as "tokenbrokerctl: <gRPC code name>: <message>".
)";

const std::map<std::string, absl::string_view>& CommandHelp() {
  static const auto* const kHelp = new std::map<std::string, absl::string_view>{
      {"token",
       R"(Usage: tokenbrokerctl [global flags] token [APP] [--scope S]... [--min-ttl SECONDS]
                      [--user USER] [--json | --fingerprint]

Calls TokenBroker.GetToken and prints the access token alone on stdout, so that
scripts can do TOKEN=$(tokenbrokerctl token APP). Without APP the broker picks
the narrowest app you may use whose scopes cover the --scope values.

Flags:
  --user USER           for an app acting on behalf of users: whose token, by
                        Anypoint username or user id (may be left out when the
                        app has one connected user). A user whose grant was
                        revoked or expired: exit 5, connect the user again
  --scope S             a scope the token must carry (repeatable)
  --min-ttl SECONDS     least lifetime the token must still have
                        (default: the broker's, 30 s)
  --json                print the whole answer as JSON: access_token, token_type,
                        expires_at (RFC 3339), scopes, app (and user_id,
                        username for a user's token)
  --fingerprint         print only the token's fingerprint (first 12 hex digits
                        of its SHA-256), never the token: for demos and logs
)"},
      {"watch",
       R"(Usage: tokenbrokerctl [global flags] watch APP [--scope S]... [--count N]
                      [--user USER]

Streams TokenBroker.WatchToken: the current token, then each refreshed one.
Prints one line per token: time received, fingerprint (never the token) and
expires_at. Runs until the broker ends the stream, N tokens or Ctrl-C.

Flags:
  --scope S             a scope the token must carry (repeatable)
  --count N             stop after N tokens
  --user USER           for an app acting on behalf of users: whose token
                        (username or user id)
)"},
      {"apps",
       R"(Usage: tokenbrokerctl [global flags] apps [--json]

Calls BrokerAdmin.ListApps (admin role) and prints a table with one row per
cached token entry: NAME, GRANT, CONTROL PLANE, SCOPES, TOKEN (valid until
... / none), LAST REFRESH, REFRESHES, FAILURES, LAST ERROR. Never a secret.
Apps acting on behalf of users have one row saying how many users they have;
a second table then lists each user: APP, USER, USER ID, CONNECTED AT,
SCOPES, TOKEN (valid until ... / none), STATE (connected, or NEEDS
RE-AUTHORIZATION with the reason: run 'tokenbrokerctl connect APP'). Never a
token.

Flags:
  --json                print every field as JSON instead
)"},
      {"refresh",
       R"(Usage: tokenbrokerctl [global flags] refresh APP [--scope S]... [--user USER]

Calls BrokerAdmin.RefreshToken (admin role): the broker fetches a new token for
APP now and replaces the cached one.

Flags:
  --scope S             scopes of the cache entry to refresh (repeatable)
  --user USER           for an app acting on behalf of users: whose token
                        (username or user id); a user app with several users
                        needs it
)"},
      {"revoke",
       R"(Usage: tokenbrokerctl [global flags] revoke APP [--user USER]

Calls BrokerAdmin.RevokeToken (admin role): revokes APP's cached tokens at
Anypoint and drops them from the broker; the next request fetches a new one.

Flags:
  --user USER           for an app acting on behalf of users (required there):
                        revoke that user's grant (its refresh token) at the
                        authorization server and delete it from the broker;
                        the user must connect again to use the app
)"},
      {"connect",
       R"(Usage: tokenbrokerctl [global flags] connect APP [--wait DURATION | --no-wait]

Calls BrokerAdmin.CreateConnectLink (admin role) for APP, an app acting on
behalf of users, and prints a one-time link, alone on its own line, after a
line saying until when it is valid:
  URL=$(tokenbrokerctl connect APP --no-wait | grep -E '^https?://')
Whoever opens the link signs in to Anypoint in the browser and consents;
the broker then keeps that user's grant. Treat the link as a secret until it
is used or expires. Then waits (looking at BrokerAdmin.ListApps every 2 s)
until a user's grant of APP is new or renewed, and prints
  connected: USERNAME (USER_ID) scopes: S1,S2
A user whose grant was revoked or expired (exit 5 from token or call, NEEDS
RE-AUTHORIZATION in apps) is re-authorized the same way: run connect and
have that user sign in with the new link.

Flags:
  --wait DURATION       how long to wait for the sign-in, e.g. 90s, 10m, 1h
                        (default 10m); exit 7 when nobody signed in by then
  --no-wait             print the link and exit
)"},
      {"reload",
       R"(Usage: tokenbrokerctl [global flags] reload

Calls BrokerAdmin.ReloadConfig (admin role): the broker re-reads its
configuration file and prints the apps added, changed and removed. A broken
file is rejected with the reason and the running configuration stays.
)"},
      {"call",
       R"(Usage: tokenbrokerctl [global flags] call APP METHOD PATH [--header NAME:VALUE]...
                      [--data @FILE|-|TEXT] [--scope S]... [-i] [--stream] [-o FILE]
                      [--user USER]

Calls TokenBroker.Call: the broker sends METHOD PATH to APP's control plane
with APP's token and returns the answer. Prints the response body as received.
PATH is origin-form, e.g. /accounts/api/me. The exit code reflects the gRPC
result, not the HTTP status.

Flags:
  -H, --header NAME:VALUE  request header (repeatable); Authorization, Host and
                           Cookie are refused by the broker
  -d, --data @FILE|-|TEXT  request body: from FILE, from stdin (-), or TEXT
  --scope S                a scope the request needs (repeatable)
  -i, --include            print the status line and headers before the body
                           (on stdout, also with -o)
  --stream                 use TokenBroker.CallStream: the body is written as
                           it arrives, never held whole in memory; --timeout
                           bounds the whole download
  -o, --output FILE        write the body to FILE instead of stdout (- is
                           stdout). If the command fails, FILE is removed: a
                           FILE that is left holds a complete body
  --user USER              for an app acting on behalf of users: whose token
                           the broker injects (username or user id)
)"},
      {"help",
       R"(Usage: tokenbrokerctl help [COMMAND]

Shows the overview, or the help of COMMAND.
)"},
  };
  return *kHelp;
}

}  // namespace

std::string HelpText(const std::string& topic) {
  auto it = CommandHelp().find(topic);
  if (it == CommandHelp().end()) {
    return absl::StrCat(kOverview, kGlobalFlags, kExitCodes);
  }
  return absl::StrCat(it->second, kGlobalFlags, kExitCodes);
}

}  // namespace tokenbroker::cli
