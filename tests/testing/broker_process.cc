#include "tests/testing/broker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "tests/testing/poll_until.h"

extern char** environ;

namespace tokenbroker::testing {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The port a listener wrote to `path`, or 0 while it has not (yet).
int PortIn(const std::string& path) {
  int port = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(Contents(path)), &port)) {
    return 0;
  }
  return port;
}

}  // namespace

BrokerProcess::BrokerProcess(std::string binary, std::string dir)
    : binary_(std::move(binary)), dir_(std::move(dir)) {}

BrokerProcess::~BrokerProcess() {
  if (pid_ > 0) (void)Kill();
}

std::string BrokerProcess::LogPath(int run) const {
  return absl::StrCat(dir_, "/broker-", run, ".log");
}

absl::Status BrokerProcess::Start(const std::string& config_path,
                                  std::vector<std::string> extra_args) {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  ++runs_;
  const std::string grpc_port_file = dir_ + "/grpc.port";
  const std::string admin_port_file = dir_ + "/admin.port";
  for (const std::string& file : {grpc_port_file, admin_port_file}) {
    unlink(file.c_str());
  }
  std::vector<std::string> args = {
      binary_, "--config=" + config_path, "--port_file=" + grpc_port_file,
      "--admin_port_file=" + admin_port_file, "--watch_config=false"};
  args.insert(args.end(), std::make_move_iterator(extra_args.begin()),
              std::make_move_iterator(extra_args.end()));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = LogPath(runs_);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    return absl::InternalError(
        absl::StrCat("posix_spawn ", binary_, ": ", std::strerror(spawned)));
  }
  pid_ = pid;

  bool exited = false;
  const bool listening = PollUntil(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          exited = true;
          return true;
        }
        return PortIn(grpc_port_file) > 0 && PortIn(admin_port_file) > 0;
      },
      absl::Seconds(30), absl::Milliseconds(10));
  if (exited || !listening) {
    if (exited) {
      pid_ = 0;
    } else {
      (void)Kill();
    }
    return absl::UnavailableError(absl::StrCat(
        "the broker ", exited ? "exited at start" : "did not listen",
        "; its log:\n", Contents(log)));
  }
  grpc_port_ = PortIn(grpc_port_file);
  admin_port_ = PortIn(admin_port_file);
  channel_ = NewChannel();
  broker_ = pb::TokenBroker::NewStub(channel_);
  admin_ = pb::BrokerAdmin::NewStub(channel_);
  return absl::OkStatus();
}

absl::Status BrokerProcess::Kill() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<int> BrokerProcess::Terminate() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  int status = 0;
  if (!PollUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; },
                 absl::Seconds(30), absl::Milliseconds(10))) {
    (void)Kill();
    return absl::DeadlineExceededError("the broker did not exit on SIGTERM");
  }
  pid_ = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

absl::Status BrokerProcess::Pause() {
  if (pid_ <= 0 || kill(pid_, SIGSTOP) != 0) {
    return absl::FailedPreconditionError("not running");
  }
  return absl::OkStatus();
}

absl::Status BrokerProcess::Resume() {
  if (pid_ <= 0 || kill(pid_, SIGCONT) != 0) {
    return absl::FailedPreconditionError("not running");
  }
  return absl::OkStatus();
}

std::string BrokerProcess::target() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

std::shared_ptr<grpc::Channel> BrokerProcess::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target(), grpc::InsecureChannelCredentials(),
                                   args);
}

int BrokerProcess::AdminGet(const std::string& path, std::string* body) const {
  httplib::Client client("127.0.0.1", admin_port_);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  httplib::Result result = client.Get(path.c_str());
  if (!result) return 0;
  if (body != nullptr) *body = result->body;
  return result->status;
}

std::string BrokerProcess::Metrics() const {
  std::string body;
  return AdminGet("/metrics", &body) == 200 ? body : "";
}

std::string BrokerProcess::Log(int run) const {
  if (run == 0) run = runs_;
  return run > 0 ? Contents(LogPath(run)) : "";
}

std::string BrokerProcess::AllLogs(absl::string_view name) const {
  std::string logs;
  for (int run = 1; run <= runs_; ++run) {
    absl::StrAppend(&logs, "---- ", name, " run ", run, " ----\n", Log(run));
  }
  return logs;
}

double MetricValue(absl::string_view exposition, absl::string_view series,
                   bool* found) {
  if (found != nullptr) *found = false;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::ConsumePrefix(&line, series) ||
        !absl::ConsumePrefix(&line, " ")) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(line, &value)) {
      if (found != nullptr) *found = true;
      return value;
    }
  }
  return 0;
}

}  // namespace tokenbroker::testing
