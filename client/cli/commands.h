// The commands of tokenbrokerctl, one function each. Each takes the broker as
// a BrokerStub and writes its result to `out`, so that tests can run it with a
// fake stub and a string stream. A command returns the broker's error
// unchanged; the caller prints it with FormatError() and exits with
// ExitCodeFor().
#ifndef TOKENBROKER_CLIENT_CLI_COMMANDS_H_
#define TOKENBROKER_CLIENT_CLI_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/cli/stub.h"

namespace tokenbroker::cli {

// Exit codes, documented in `tokenbrokerctl help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitDenied = 4;
inline constexpr int kExitPrecondition = 5;
inline constexpr int kExitUnavailable = 6;

// The exit code for a command's result (see the constants above).
int ExitCodeFor(const absl::Status& status);

// "tokenbrokerctl: <gRPC code name>: <message>" (no newline).
std::string FormatError(const absl::Status& status);

// Reads the current time; a parameter so that tests control it.
using Clock = std::function<absl::Time()>;

struct TokenOptions {
  enum class Output { kToken, kJson, kFingerprint };
  std::string app;  // May be empty: the broker picks the app.
  std::vector<std::string> scopes;
  int32_t min_ttl_seconds = 0;
  Output output = Output::kToken;
};

struct WatchOptions {
  std::string app;
  std::vector<std::string> scopes;
  int64_t count = 0;  // Stop after this many tokens; 0: until the stream ends.
};

struct AppsOptions {
  bool json = false;
};

struct RefreshOptions {
  std::string app;
  std::vector<std::string> scopes;
};

struct RevokeOptions {
  std::string app;
};

struct CallOptions {
  std::string app;
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::vector<std::string> scopes;
  bool include_headers = false;  // -i: status line and headers first.
  bool stream = false;           // --stream: TokenBroker.CallStream.
};

// Prints the access token alone (or JSON, or its fingerprint) and a newline.
absl::Status RunToken(BrokerStub& stub, const TokenOptions& options,
                      std::ostream& out);

// Prints "<received>  <fingerprint>  expires_at=<time>" per token, flushing
// each line; never the token itself.
absl::Status RunWatch(BrokerStub& stub, const WatchOptions& options,
                      const Clock& clock, std::ostream& out);

// Prints the apps table, or JSON.
absl::Status RunApps(BrokerStub& stub, const AppsOptions& options,
                     std::ostream& out);

absl::Status RunRefresh(BrokerStub& stub, const RefreshOptions& options,
                        std::ostream& out);

absl::Status RunRevoke(BrokerStub& stub, const RevokeOptions& options,
                       std::ostream& out);

absl::Status RunReload(BrokerStub& stub, std::ostream& out);

// Writes the upstream body as received (bytes) to `body`, or to `out` when
// `body` is null; with `include_headers` first "HTTP <status>", the headers
// and an empty line to `out`. With `stream` the answer comes through
// CallStream and each piece is written and flushed as it arrives; an error
// then may follow part of the body. The upstream HTTP status is data: a
// 4xx/5xx still returns OK. Errors: the broker's; DATA_LOSS when writing
// fails (a stream is then cancelled).
absl::Status RunCall(BrokerStub& stub, const CallOptions& options,
                     std::ostream& out, std::ostream* body = nullptr);

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_COMMANDS_H_
