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
#include "absl/strings/string_view.h"
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
inline constexpr int kExitConnectTimeout = 7;

// The exit code for a command's result (see the constants above).
// ConnectTimeoutError()s get kExitConnectTimeout.
int ExitCodeFor(const absl::Status& status);

// `connect` waited in vain: DEADLINE_EXCEEDED marked so that ExitCodeFor()
// tells it from a slow broker.
absl::Status ConnectTimeoutError(absl::string_view message);

// "tokenbrokerctl: <gRPC code name>: <message>" (no newline).
std::string FormatError(const absl::Status& status);

// Reads the current time; a parameter so that tests control it.
using Clock = std::function<absl::Time()>;

// Waits; a parameter so that tests let no real time pass.
using Sleep = std::function<void(absl::Duration)>;

struct TokenOptions {
  enum class Output { kToken, kJson, kFingerprint };
  std::string app;  // May be empty: the broker picks the app.
  std::vector<std::string> scopes;
  int32_t min_ttl_seconds = 0;
  Output output = Output::kToken;
  std::string user;  // User apps: whose token (username or id).
};

struct WatchOptions {
  std::string app;
  std::vector<std::string> scopes;
  int64_t count = 0;  // Stop after this many tokens; 0: until the stream ends.
  std::string user;   // User apps: whose token (username or id).
};

struct AppsOptions {
  bool json = false;
};

struct RefreshOptions {
  std::string app;
  std::vector<std::string> scopes;
  std::string user;  // User apps: whose token (username or id).
};

struct RevokeOptions {
  std::string app;
  // User apps: whose grant to revoke at the authorization server and delete.
  std::string user;
};

struct ConnectOptions {
  std::string app;
  // How long to wait for a user to sign in with the link; zero: print the
  // link and return at once (--no-wait).
  absl::Duration wait = absl::Minutes(10);
  // Time between two looks at BrokerAdmin.ListApps while waiting.
  absl::Duration poll_interval = absl::Seconds(2);
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
  std::string user;              // User apps: whose token is injected.
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

// Mints a one-time sign-in link for user app `options.app`
// (BrokerAdmin.CreateConnectLink) and prints it alone on its own line after
// a line saying what to do with it and until when it is valid; the link is a
// secret until used and is printed nowhere else. Then, unless `options.wait`
// is zero, looks at BrokerAdmin.ListApps every `poll_interval` until a user
// of the app is connected whose grant is new or newer than when the command
// started (compared with the broker's own ListApps from before the link was
// minted, so that no clock of this host is compared with the broker's), and
// prints "connected: USERNAME (USER_ID) scopes: S1,S2". Errors: the broker's
// (UNAVAILABLE while waiting is retried until the wait ends);
// ConnectTimeoutError when nobody connected within `options.wait`.
absl::Status RunConnect(BrokerStub& stub, const ConnectOptions& options,
                        const Clock& clock, const Sleep& sleep,
                        std::ostream& out);

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
