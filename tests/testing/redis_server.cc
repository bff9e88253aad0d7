#include "tests/testing/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/redis/hiredis_reply.h"
#include "tests/testing/poll_until.h"

namespace tokenbroker::testing {
namespace {

constexpr absl::Duration kSafetyBound = absl::Seconds(30);

// A port nobody listens on now (bind 0, read it, close). Another process may
// take it before redis-server binds it: Start() retries with a new one.
absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError("bind(127.0.0.1:0) failed");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// A config-file string: double-quoted, with the escapes redis's sdssplitargs
// understands.
std::string Quote(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

// Runs `args` on `c`; a Redis error reply becomes INTERNAL.
absl::StatusOr<RedisReply> Run(redisContext* c,
                               const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (reply == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("redis connection failed: ", c->errstr));
  }
  absl::StatusOr<RedisReply> out = internal::FromHiredisReply(*reply);
  freeReplyObject(reply);
  return out;
}

}  // namespace

std::string RedisServerProcess::Binary() {
  const char* path = std::getenv("PATH");
  std::vector<std::string> dirs =
      absl::StrSplit(path != nullptr ? path : "", ':', absl::SkipEmpty());
  dirs.push_back("/usr/bin");
  dirs.push_back("/usr/sbin");
  for (const std::string& dir : dirs) {
    std::string candidate = dir + "/redis-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::unique_ptr<RedisServerProcess> RedisServerProcess::StartNew(
    RedisServerOptions options) {
  auto server = std::make_unique<RedisServerProcess>(std::move(options));
  absl::Status status = server->Start();
  if (!status.ok()) {
    ADD_FAILURE() << "redis-server did not start: " << status;
    return nullptr;
  }
  return server;
}

std::unique_ptr<RedisServerProcess> RedisServerProcess::StartWithPassword(
    std::string password) {
  RedisServerOptions options;
  options.password = std::move(password);
  return StartNew(std::move(options));
}

std::unique_ptr<RedisServerProcess> RedisServerProcess::StartSentinel(
    const RedisServerProcess& master, const std::string& master_name) {
  RedisServerOptions options;
  options.sentinel = true;
  options.extra_config = {
      absl::StrCat("sentinel monitor ", master_name, " 127.0.0.1 ",
                   master.port(), " 1"),
      absl::StrCat("sentinel down-after-milliseconds ", master_name, " 1000"),
      absl::StrCat("sentinel failover-timeout ", master_name, " 2000"),
  };
  if (!master.password().empty()) {
    options.extra_config.push_back(absl::StrCat(
        "sentinel auth-pass ", master_name, " ", Quote(master.password())));
  }
  return StartNew(std::move(options));
}

RedisServerProcess::RedisServerProcess(RedisServerOptions options)
    : options_(std::move(options)) {
  std::string templ =
      (std::filesystem::temp_directory_path() / "tb-redis-XXXXXX").string();
  if (mkdtemp(templ.data()) != nullptr) dir_ = templ;
}

RedisServerProcess::~RedisServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string RedisServerProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

RedisAddress RedisServerProcess::redis_address() const {
  RedisAddress address;
  address.host = "127.0.0.1";
  address.port = port_;
  return address;
}

RedisOptions RedisServerProcess::ClientOptions() const {
  RedisOptions options;
  options.address = redis_address();
  options.password = options_.password;
  options.connect_timeout = absl::Seconds(2);
  options.command_timeout = absl::Seconds(2);
  options.reconnect_min = absl::Milliseconds(20);
  options.reconnect_max = absl::Milliseconds(200);
  return options;
}

absl::Status RedisServerProcess::WriteConfig() {
  std::vector<std::string> lines = {
      absl::StrCat("port ", port_),
      "bind 127.0.0.1",
      "protected-mode yes",
      "daemonize no",
      absl::StrCat("dir ", Quote(dir_)),
      absl::StrCat("logfile ", Quote(dir_ + "/redis.log")),
      "appendonly no",
      "save \"\"",
  };
  if (!options_.password.empty()) {
    lines.push_back(absl::StrCat("requirepass ", Quote(options_.password)));
  }
  lines.insert(lines.end(), options_.extra_config.begin(),
               options_.extra_config.end());
  // Written afresh on every start: a Sentinel rewrites its own config file
  // and a new port (bind race) needs a new one.
  std::ofstream out(dir_ + "/redis.conf", std::ios::trunc);
  out << absl::StrJoin(lines, "\n") << "\n";
  out.close();
  if (!out) return absl::InternalError("cannot write redis.conf");
  return absl::OkStatus();
}

std::string RedisServerProcess::LogTail() const {
  std::string text;
  for (const char* name : {"/stderr.log", "/redis.log"}) {
    std::ifstream in(dir_ + name);
    std::stringstream buffer;
    buffer << in.rdbuf();
    text += buffer.str();
  }
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  return text;
}

absl::Status RedisServerProcess::SpawnAndWait() {
  absl::Status config = WriteConfig();
  if (!config.ok()) return config;
  std::string binary = Binary();
  if (binary.empty()) return absl::FailedPreconditionError("no redis-server");
  std::vector<std::string> args = {binary, dir_ + "/redis.conf"};
  if (options_.sentinel) args.push_back("--sentinel");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG: a test
  // process that dies (a ctest timeout, a crash) takes its servers with it
  // instead of leaving them running. Only async-signal-safe calls between
  // fork and exec; everything they use is prepared before.
  std::string stderr_path = dir_ + "/stderr.log";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // The parent is already gone.
    int out = open("/dev/null", O_WRONLY);
    int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out >= 0) dup2(out, STDOUT_FILENO);
    if (err >= 0) dup2(err, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;

  bool exited = false;
  bool up = PollUntil(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          exited = true;
          return true;
        }
        absl::StatusOr<RedisReply> pong = Cli({"PING"});
        return pong.ok() && pong->str == "PONG";
      },
      kSafetyBound, absl::Milliseconds(10));
  if (exited) {
    pid_ = -1;
    return absl::UnavailableError(
        absl::StrCat("redis-server exited at start:\n", LogTail()));
  }
  if (!up) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return absl::DeadlineExceededError(
        absl::StrCat("redis-server did not answer PING:\n", LogTail()));
  }
  return absl::OkStatus();
}

absl::Status RedisServerProcess::Start() {
  if (dir_.empty()) return absl::InternalError("mkdtemp failed");
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  if (port_ != 0) return SpawnAndWait();  // Restart: keep the port.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<int> port = PickFreePort();
    if (!port.ok()) return port.status();
    port_ = *port;
    last = SpawnAndWait();
    if (last.ok()) return last;
    // Most likely another process took the port between our close() and
    // redis's bind(): try another.
  }
  port_ = 0;
  return last;
}

absl::Status RedisServerProcess::WaitForExit() {
  int status = 0;
  bool gone = PollUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; },
                        kSafetyBound, absl::Milliseconds(5));
  if (!gone) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return absl::DeadlineExceededError("redis-server did not exit; killed");
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status RedisServerProcess::Stop() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // A paused server handles SIGTERM once resumed.
  return WaitForExit();
}

absl::Status RedisServerProcess::Kill() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, SIGKILL);
  return WaitForExit();
}

absl::Status RedisServerProcess::Restart() {
  if (pid_ > 0) {
    absl::Status stopped = Stop();
    if (!stopped.ok()) return stopped;
  }
  return Start();
}

absl::Status RedisServerProcess::Pause() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  if (kill(pid_, SIGSTOP) != 0) return absl::InternalError("SIGSTOP failed");
  // Wait until the kernel reports it stopped, so a test's next command
  // really meets a hung server.
  bool stopped = PollUntil(
      [&] {
        std::ifstream in(absl::StrCat("/proc/", pid_, "/stat"));
        std::string pid, comm, state;
        in >> pid >> comm >> state;
        return state == "T" || state == "t";
      },
      kSafetyBound, absl::Milliseconds(1));
  return stopped ? absl::OkStatus()
                 : absl::DeadlineExceededError("redis-server did not stop");
}

absl::Status RedisServerProcess::Resume() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  if (kill(pid_, SIGCONT) != 0) return absl::InternalError("SIGCONT failed");
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisServerProcess::Cli(
    const std::vector<std::string>& args) const {
  timeval timeout{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeout);
  if (c == nullptr) return absl::UnavailableError("redisConnect failed");
  if (c->err != 0) {
    absl::Status error = absl::UnavailableError(
        absl::StrCat("cannot connect to ", address(), ": ", c->errstr));
    redisFree(c);
    return error;
  }
  redisSetTimeout(c, timeout);
  if (!options_.password.empty() && !options_.sentinel) {
    absl::StatusOr<RedisReply> auth = Run(c, {"AUTH", options_.password});
    if (!auth.ok()) {
      redisFree(c);
      return absl::UnavailableError("AUTH failed");
    }
  }
  absl::StatusOr<RedisReply> reply = Run(c, args);
  redisFree(c);
  return reply;
}

}  // namespace tokenbroker::testing
