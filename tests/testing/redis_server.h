#ifndef TOKENBROKER_TESTS_TESTING_REDIS_SERVER_H_
#define TOKENBROKER_TESTS_TESTING_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "service/redis/redis_client.h"

namespace tokenbroker::testing {

// Skips the current test when Debian's redis-server is not installed (it is
// on CI). Use at the top of a TEST or in SetUp().
#define TB_SKIP_WITHOUT_REDIS_SERVER()                                  \
  do {                                                                  \
    if (::tokenbroker::testing::RedisServerProcess::Binary().empty()) { \
      GTEST_SKIP() << "redis-server is not installed (apt-get install " \
                      "redis-server); this test needs a real Redis";    \
    }                                                                   \
  } while (0)

struct RedisServerOptions {
  // requirepass when non-empty (written to the config file in the temp dir,
  // not put on the command line).
  std::string password;
  // Run as a Sentinel (redis-server --sentinel). `extra_config` then holds
  // the "sentinel monitor ..." lines (see StartSentinel()).
  bool sentinel = false;
  // More config lines, appended as they are.
  std::vector<std::string> extra_config;
};

// One redis-server process for a test: a free loopback TCP port (picked by
// binding port 0; a bind race is retried with another port), a fresh temp
// dir as its `dir` (removed by the destructor), no persistence, protected
// mode, bound to 127.0.0.1 only, log file in the temp dir.
//
// The server is killed when the thread that started it (Start, Restart)
// exits (PR_SET_PDEATHSIG), so a dying test process leaves none behind:
// start and restart servers from the test's own thread, not from a
// short-lived helper thread.
//
// Every method that waits (Start, Restart, Stop, Resume...) waits by bounded
// polling (30 s as a safety bound), never by sleeping for a fixed time.
// Not thread-safe except Cli(), port() and address(), which may be called
// from any thread while no other method runs.
class RedisServerProcess {
 public:
  // Path of redis-server (PATH, then /usr/bin), or "" if not installed.
  static std::string Binary();

  // Starts a server; fails the calling test (ADD_FAILURE) and returns null
  // when it does not come up.
  static std::unique_ptr<RedisServerProcess> StartNew(
      RedisServerOptions options = {});
  static std::unique_ptr<RedisServerProcess> StartWithPassword(
      std::string password);
  // A Sentinel monitoring `master` (quorum 1, short timeouts) under the name
  // `master_name`.
  static std::unique_ptr<RedisServerProcess> StartSentinel(
      const RedisServerProcess& master, const std::string& master_name);

  explicit RedisServerProcess(RedisServerOptions options = {});
  RedisServerProcess(const RedisServerProcess&) = delete;
  RedisServerProcess& operator=(const RedisServerProcess&) = delete;
  // Kills the server (SIGKILL) and removes the temp dir.
  ~RedisServerProcess();

  // Starts the server (a new port the first time, the same one afterwards)
  // and waits until it answers PING. The error holds the tail of its log.
  absl::Status Start();
  // SIGTERM (and SIGCONT, in case it is paused) and wait for the exit.
  absl::Status Stop();
  // SIGKILL and wait for the exit.
  absl::Status Kill();
  // Stop() then Start(): same port, same dir (the data is not kept: no
  // persistence).
  absl::Status Restart();
  // SIGSTOP / SIGCONT: a hung Redis that keeps its connections open.
  absl::Status Pause();
  absl::Status Resume();

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  // "127.0.0.1:PORT".
  std::string address() const;
  RedisAddress redis_address() const;
  const std::string& dir() const { return dir_; }
  const std::string& password() const { return options_.password; }

  // Client options for this server (address, password) with short test
  // timeouts and reconnect delays (20 ms to 200 ms).
  RedisOptions ClientOptions() const;

  // Runs one command on a fresh blocking hiredis connection (AUTH first when
  // the server has a password) and returns the answer; a Redis error reply
  // is INTERNAL with Redis's text, a connection problem UNAVAILABLE. For
  // checking contents (SCAN, GET, HGETALL...) and setting up state.
  absl::StatusOr<RedisReply> Cli(const std::vector<std::string>& args) const;

 private:
  absl::Status WriteConfig();
  absl::Status SpawnAndWait();
  absl::Status WaitForExit();
  std::string LogTail() const;

  RedisServerOptions options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tokenbroker::testing

#endif  // TOKENBROKER_TESTS_TESTING_REDIS_SERVER_H_
