#ifndef TOKENBROKER_SERVICE_REDIS_REDIS_CLIENT_H_
#define TOKENBROKER_SERVICE_REDIS_REDIS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tokenbroker {

// One Redis server address: "host:port" (TCP) or "unix:/path" (a socket).
struct RedisAddress {
  std::string host;  // Empty for a Unix socket.
  int port = 0;
  std::string unix_path;
};

// Parses "host:port", "[v6]:port" or "unix:/path". INVALID_ARGUMENT saying
// what is wrong.
absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view text);

struct RedisOptions {
  // Either one server, or Sentinels to ask for the master of
  // `sentinel_master` (SENTINEL get-master-addr-by-name) on every connect.
  RedisAddress address;
  std::vector<RedisAddress> sentinels;
  std::string sentinel_master;
  // AUTH on connect when non-empty (SECRET: never logged or put in an
  // error message). Redis 6 ACL users: `username` too.
  std::string username;
  std::string password;
  absl::Duration connect_timeout = absl::Seconds(1);
  // A command without an answer by then fails DEADLINE_EXCEEDED (and the
  // connection is dropped and re-made: its answers are out of step).
  absl::Duration command_timeout = absl::Milliseconds(500);
  // Reconnect delays: exponential with full jitter between these.
  absl::Duration reconnect_min = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(5);
};

// A Redis answer, copied out of hiredis (owns its data).
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;                   // kString (bulk) and kStatus.
  std::vector<RedisReply> elements;  // kArray.

  bool is_nil() const { return type == Type::kNil; }
};

using RedisCallback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>)>;

// What a client reports about its connections (health, metrics).
struct RedisClientStats {
  bool connected = false;      // Command connection up.
  bool subscribed = false;     // Pub/sub connection up and subscribed.
  int64_t commands = 0;        // Sent.
  int64_t command_errors = 0;  // Answered with an error status.
  int64_t reconnects = 0;      // Connections (re)made after the first.
  std::string last_error;      // No secret.
};

// An asynchronous Redis client over hiredis (Debian's libhiredis, async API)
// on one event-loop thread of its own, with a second connection for
// pub/sub. Connects in the background and reconnects with backoff; never
// blocks the calling thread (except the *Sync helpers, documented below).
//
// Errors given to callbacks: UNAVAILABLE while not connected or when the
// connection drops before the answer; DEADLINE_EXCEEDED after
// command_timeout; INTERNAL for a Redis error reply (the message is Redis's
// text, which never holds our arguments); CANCELLED when the client is
// stopped first; RESOURCE_EXHAUSTED when 100000 commands are already
// outstanding (Redis slow or down). Every callback runs exactly once, on the
// loop thread (or inline with CANCELLED after Stop(), or inline with
// RESOURCE_EXHAUSTED), and must not block.
//
// The client keeps nothing of the caller's but the callback: a caller that
// may go away before the answer (an RPC, an object being destroyed) gives a
// callback that owns what it touches (a shared_ptr, a weak_ptr it checks),
// never a raw `this` that may dangle.
//
// Thread-safe. Stop() (or the destructor) answers everything pending with
// CANCELLED and joins the thread; callbacks must not destroy the client
// (Stop() from a callback only asks the loop to stop). Host names are
// resolved (getaddrinfo) on the loop thread, so a slow resolver delays
// only Redis traffic.
class RedisClient {
 public:
  virtual ~RedisClient() = default;

  // Sends one command (binary-safe arguments, e.g. {"SET", key, value,
  // "NX", "PX", "5000"}).
  virtual void Command(std::vector<std::string> args, RedisCallback done) = 0;

  // EVALSHA of `script` (loaded on first use and again after NOSCRIPT, e.g.
  // when the server restarted), with `keys` and `args`.
  virtual void Eval(const std::string& script, std::vector<std::string> keys,
                    std::vector<std::string> args, RedisCallback done) = 0;

  // Blocks until the answer (at most command_timeout plus a little). Only
  // for threads that may block (a store's writer thread, start-up); never
  // from a gRPC or loop thread.
  absl::StatusOr<RedisReply> CommandSync(std::vector<std::string> args);
  absl::StatusOr<RedisReply> EvalSync(const std::string& script,
                                      std::vector<std::string> keys,
                                      std::vector<std::string> args);

  // Publishes on the command connection.
  void Publish(std::string channel, std::string message, RedisCallback done) {
    Command({"PUBLISH", std::move(channel), std::move(message)},
            std::move(done));
  }

  // Subscribes (on the pub/sub connection) to `channels`; `on_message` gets
  // each (channel, payload). `on_state(true)` runs every time the
  // subscription is (re)established, after SUBSCRIBE is confirmed: messages
  // published while it was down are lost, so a listener catches up from the
  // store then. `on_state(false)` when it drops. Both on the loop thread.
  // At most one subscription per client; call before or after the
  // connection is up.
  virtual void Subscribe(std::vector<std::string> channels,
                         std::function<void(const std::string& channel,
                                            const std::string& payload)>
                             on_message,
                         std::function<void(bool subscribed)> on_state) = 0;

  virtual RedisClientStats stats() const = 0;

  virtual void Stop() = 0;

 protected:
  // True on the client's own loop thread, where the *Sync helpers would
  // wait for themselves (they fail FAILED_PRECONDITION there instead).
  virtual bool OnLoopThread() const { return false; }
};

// Starts a client (its thread and first connection attempts); returns at
// once, whether or not Redis is reachable. INVALID_ARGUMENT for bad options.
absl::StatusOr<std::unique_ptr<RedisClient>> StartRedisClient(
    RedisOptions options);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_REDIS_REDIS_CLIENT_H_
