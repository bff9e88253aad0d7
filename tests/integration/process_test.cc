// The token-broker binary as Kubernetes runs it: SIGTERM during a burst of
// calls (readiness false first, liveness true while draining, no accepted
// call fails), SIGHUP reloads, and a ConfigMap-style `..data` symlink swap
// reloads. The emulator runs in-process; the broker is a real process on
// 127.0.0.1 port 0 (--port_file, --admin_port_file).

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"

extern char** environ;

namespace tokenbroker {
namespace {

namespace fs = std::filesystem;
namespace pb = anypoint::tokenbroker::v1;
using ::testing::HasSubstr;

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The value of the sample named exactly `series` (name and labels) in a
// Prometheus text exposition, or 0 when it is absent.
double MetricValue(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::ConsumePrefix(&line, series) ||
        !absl::ConsumePrefix(&line, " ")) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return 0;
}

// Polls `condition` every 20 ms for up to 30 s (waiting for a condition,
// not for time to pass).
template <typename Condition>
bool PollUntil(Condition condition) {
  absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (absl::Now() < give_up) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

class BrokerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<emulator::Fixture> fixture = emulator::LoadFixtureFile(
        absl::StrCat(TOKENBROKER_SOURCE_DIR, "/emulator/fixtures/demo.yaml"));
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    emulator_ = std::make_unique<emulator::Emulator>(*std::move(fixture));
    ASSERT_TRUE(emulator_->Start({}).ok());

    char dir_template[] = "/tmp/tokenbroker-process-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    // The config as a Kubernetes ConfigMap volume lays it out.
    fs::create_directories(dir_ / "config");
    fs::create_directories(dir_ / "secrets");
    WriteFile(dir_ / "secrets" / "dc", "dc-secret-please-rotate\n");
    WriteFile(dir_ / "secrets" / "ex", "exchange-reader-fake-secret\n");
    SwapConfig(ConfigYaml(/*with_exchange_reader=*/false));
    fs::create_symlink("..data/broker.yaml", dir_ / "config" / "broker.yaml");
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (emulator_ != nullptr) emulator_->Stop();
    std::string log = ReadFile(dir_ / "broker.log");
    for (const char* secret :
         {"dc-secret-please-rotate", "exchange-reader-fake-secret"}) {
      EXPECT_THAT(log, ::testing::Not(HasSubstr(secret)));
    }
    if (HasFailure() || getenv("SHOW_LOG")) std::fputs(log.c_str(), stderr);
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string ConfigYaml(bool with_exchange_reader) const {
    std::string yaml = absl::StrCat(
        "listen:\n  grpc: 127.0.0.1:0\n  admin_http: 127.0.0.1:0\n"
        "development:\n  insecure_plaintext: true\n"
        "apps:\n"
        "  - name: design-center\n"
        "    base_url: ",
        emulator_->base_url(),
        "\n"
        "    client_id: design-center-app\n"
        "    client_secret: {file: ",
        (dir_ / "secrets" / "dc").string(),
        "}\n"
        "    scopes: [view:design_center, view:environment, read:exchange]\n");
    if (with_exchange_reader) {
      absl::StrAppend(&yaml, "  - name: exchange-reader\n    base_url: ",
                      emulator_->base_url(),
                      "\n    client_id: exchange-reader\n"
                      "    client_secret: {file: ",
                      (dir_ / "secrets" / "ex").string(),
                      "}\n    scopes: [read:exchange]\n");
    }
    absl::StrAppend(&yaml,
                    "callers:\n"
                    "  - name: anonymous\n"
                    "    admin: true\n"
                    "    grants:\n"
                    "      - {app: design-center, scopes: ['*']}\n");
    if (with_exchange_reader) {
      absl::StrAppend(&yaml, "      - {app: exchange-reader, scopes: ['*']}\n");
    }
    return yaml;
  }

  // Writes `yaml` as the kubelet updates a ConfigMap volume: a new
  // directory, then `..data` renamed over atomically.
  void SwapConfig(const std::string& yaml) {
    fs::path config_dir = dir_ / "config";
    std::string version = absl::StrCat("..v", ++config_version_);
    fs::create_directory(config_dir / version);
    WriteFile(config_dir / version / "broker.yaml", yaml);
    fs::create_directory_symlink(version, config_dir / "..data_tmp");
    fs::rename(config_dir / "..data_tmp", config_dir / "..data");
    if (config_version_ > 1) {
      fs::remove_all(config_dir / absl::StrCat("..v", config_version_ - 1));
    }
  }

  void StartBroker(std::vector<std::string> extra_args) {
    std::vector<std::string> args = {
        TOKEN_BROKER_BIN,
        "--config=" + (dir_ / "config" / "broker.yaml").string(),
        "--port_file=" + (dir_ / "grpc.port").string(),
        "--admin_port_file=" + (dir_ / "admin.port").string(),
        "--watch_debounce=50ms"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     (dir_ / "broker.log").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    ASSERT_EQ(
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ),
        0);
    posix_spawn_file_actions_destroy(&actions);

    int port = 0;
    ASSERT_TRUE(PollUntil([&] {
      return absl::SimpleAtoi(
                 absl::StripAsciiWhitespace(ReadFile(dir_ / "grpc.port")),
                 &port) &&
             port > 0;
    })) << "the broker did not start: "
        << ReadFile(dir_ / "broker.log");
    ASSERT_TRUE(absl::SimpleAtoi(
        absl::StripAsciiWhitespace(ReadFile(dir_ / "admin.port")),
        &admin_port_));
    target_ = absl::StrCat("127.0.0.1:", port);
    channel_ = NewChannel();
    stub_ = pb::TokenBroker::NewStub(channel_);
    admin_ = pb::BrokerAdmin::NewStub(channel_);
  }

  std::shared_ptr<grpc::Channel> NewChannel() const {
    // A channel of its own per caller: no connection shared with others.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(target_,
                                     grpc::InsecureChannelCredentials(), args);
  }

  grpc::Status GetToken(pb::TokenBroker::Stub& stub, const std::string& app,
                        bool wait_for_ready = false) {
    grpc::ClientContext context;
    context.set_wait_for_ready(wait_for_ready);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    pb::GetTokenRequest request;
    request.set_app(app);
    pb::GetTokenResponse response;
    return stub.GetToken(&context, request, &response);
  }

  std::vector<std::string> AppNames() {
    grpc::ClientContext context;
    pb::ListAppsResponse response;
    std::vector<std::string> names;
    if (!admin_->ListApps(&context, {}, &response).ok()) return names;
    for (const auto& app : response.apps()) names.push_back(app.name());
    return names;
  }

  int AdminStatus(const std::string& path) {
    httplib::Client client("127.0.0.1", admin_port_);
    httplib::Result result = client.Get(path.c_str());
    return result ? result->status : 0;
  }

  std::string Metrics() {
    httplib::Client client("127.0.0.1", admin_port_);
    httplib::Result result = client.Get("/metrics");
    return result ? result->body : "";
  }

  // Waits (bounded) for the broker to exit; its exit status, or -1.
  int AwaitExit() {
    int status = 0;
    bool exited =
        PollUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; });
    if (!exited) return -1;
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::unique_ptr<emulator::Emulator> emulator_;
  fs::path dir_;
  int config_version_ = 0;
  pid_t pid_ = 0;
  std::string target_;
  int admin_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::TokenBroker::Stub> stub_;
  std::unique_ptr<pb::BrokerAdmin::Stub> admin_;
};

TEST_F(BrokerProcessTest, SigtermDuringABurstFailsNoAcceptedCall) {
  // The token endpoint answers slowly, so that the burst is still waiting
  // on the fetch when the listener closes after the drain delay.
  emulator::Fault slow;
  slow.endpoint = "token";
  slow.kind = emulator::FaultKind::kLatency;
  slow.latency_ms = 4000;
  emulator_->AddFault(slow);
  StartBroker({"--drain_delay=2s", "--shutdown_grace=30s"});
  ASSERT_EQ(AdminStatus("/readyz"), 200);

  struct Outcome {
    bool before_sigterm;
    grpc::Status status;
  };
  absl::Mutex mu;
  std::vector<Outcome> outcomes;
  auto call = [&](bool before) {
    auto stub = pb::TokenBroker::NewStub(NewChannel());
    // The burst waits for its connection (a slow start of the channel under
    // a loaded machine is not what this test is about); the calls after
    // SIGTERM fail fast once the listener is closed.
    grpc::Status status = GetToken(*stub, "design-center", before);
    absl::MutexLock lock(&mu);
    outcomes.push_back({before, status});
  };
  auto describe_outcomes = [&] {
    absl::MutexLock lock(&mu);
    std::string text;
    for (const Outcome& outcome : outcomes) {
      absl::StrAppend(&text, outcome.before_sigterm ? "before" : "after",
                      " SIGTERM: ", outcome.status.error_code(), " ",
                      outcome.status.error_message(), "\n");
    }
    return text;
  };

  constexpr int kBurst = 40;
  std::vector<std::thread> callers;
  // Joined however the test ends, so that a failed assertion reports
  // instead of aborting the process.
  absl::Cleanup join_callers = [&callers] {
    for (std::thread& caller : callers) {
      if (caller.joinable()) caller.join();
    }
  };
  for (int i = 0; i < kBurst; ++i) callers.emplace_back(call, true);
  // Every call of the burst has reached the broker (the interceptor counted
  // it); or some call already failed, which the next assertion reports.
  const std::string started_metric =
      "grpc_server_started_total{grpc_method=\"GetToken\",grpc_service="
      "\"anypoint.tokenbroker.v1.TokenBroker\"}";
  double started = 0;
  PollUntil([&] {
    started = MetricValue(Metrics(), started_metric);
    absl::MutexLock lock(&mu);
    return started >= kBurst ||
           std::any_of(outcomes.begin(), outcomes.end(),
                       [](const Outcome& o) { return !o.status.ok(); });
  });
  ASSERT_EQ(started, kBurst) << "calls that ended:\n"
                             << describe_outcomes() << "broker log:\n"
                             << ReadFile(dir_ / "broker.log");
  ASSERT_TRUE(PollUntil([&] {
    return emulator_->GetCounters().token_requests_by_client.count(
               "design-center-app") != 0;
  }));

  ASSERT_EQ(kill(pid_, SIGTERM), 0);

  // Readiness goes false first: gRPC health NOT_SERVING and /readyz 503,
  // while liveness (/healthz) stays 200 during the drain.
  auto health = grpc::health::v1::Health::NewStub(channel_);
  ASSERT_TRUE(PollUntil([&] {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, {}, &response);
    return status.ok() &&
           response.status() ==
               grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  }));
  EXPECT_EQ(AdminStatus("/readyz"), 503);
  EXPECT_EQ(AdminStatus("/healthz"), 200);

  // Calls keep coming after SIGTERM, as from clients that have not seen
  // the readiness change yet.
  for (int i = 0; i < 10; ++i) callers.emplace_back(call, false);
  std::move(join_callers).Invoke();

  EXPECT_EQ(AwaitExit(), 0);
  int before = 0;
  for (const Outcome& outcome : outcomes) {
    if (outcome.before_sigterm) {
      ++before;
      EXPECT_TRUE(outcome.status.ok())
          << "a call accepted before SIGTERM failed: "
          << outcome.status.error_code() << " "
          << outcome.status.error_message();
    } else {
      // Accepted during the drain (OK), or refused once the listener
      // closed (UNAVAILABLE): never cut off.
      grpc::StatusCode code = outcome.status.error_code();
      EXPECT_TRUE(code == grpc::StatusCode::OK ||
                  code == grpc::StatusCode::UNAVAILABLE)
          << "code " << code << " " << outcome.status.error_message();
    }
  }
  EXPECT_EQ(before, kBurst);
  EXPECT_EQ(
      emulator_->GetCounters().token_requests_by_client.at("design-center-app"),
      1);
}

TEST_F(BrokerProcessTest, SighupReloadsTheConfig) {
  StartBroker({"--watch_config=false"});
  ASSERT_TRUE(GetToken(*stub_, "design-center").ok());
  EXPECT_EQ(GetToken(*stub_, "exchange-reader").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  SwapConfig(ConfigYaml(/*with_exchange_reader=*/true));
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(PollUntil([&] { return AppNames().size() == 2; }));
  EXPECT_TRUE(GetToken(*stub_, "exchange-reader").ok());
  // The unchanged app kept its token: still one fetch.
  ASSERT_TRUE(GetToken(*stub_, "design-center").ok());
  EXPECT_EQ(
      emulator_->GetCounters().token_requests_by_client.at("design-center-app"),
      1);
  EXPECT_THAT(Metrics(),
              HasSubstr("tokenbroker_config_loads_total{result=\"ok\"} 2"));

  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(AwaitExit(), 0);
}

TEST_F(BrokerProcessTest, AConfigMapUpdateIsReloadedWithoutRestart) {
  StartBroker({});
  ASSERT_TRUE(GetToken(*stub_, "design-center").ok());

  SwapConfig(ConfigYaml(/*with_exchange_reader=*/true));
  ASSERT_TRUE(PollUntil([&] { return AppNames().size() == 2; }));
  EXPECT_TRUE(GetToken(*stub_, "exchange-reader").ok());

  // A broken update changes nothing; the next good one applies.
  SwapConfig("apps: [broken");
  ASSERT_TRUE(PollUntil([&] {
    return absl::StrContains(
        Metrics(), "tokenbroker_config_loads_total{result=\"error\"} 1");
  }));
  EXPECT_EQ(AppNames().size(), 2u);
  SwapConfig(ConfigYaml(/*with_exchange_reader=*/false));
  ASSERT_TRUE(PollUntil([&] { return AppNames().size() == 1; }));

  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(AwaitExit(), 0);
}

}  // namespace
}  // namespace tokenbroker
