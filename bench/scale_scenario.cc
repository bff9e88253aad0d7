// scale: the real binary, 10,000 keys, 1,000 connections
// (bench/scenarios.h).

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "bench/scenarios.h"
#include "bench/unary_call.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;

namespace {

// The token-broker binary in a child process, started with `config_path`;
// waits (bounded) for the port it writes to `port_file`. SIGTERM on
// destruction.
class ChildBroker {
 public:
  ChildBroker(const std::string& config_path, const std::string& port_file) {
    std::vector<std::string> args = {
        TOKEN_BROKER_BINARY, "--config=" + config_path,
        "--port_file=" + port_file, "--log_level=warning"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) !=
        0) {
      std::perror("posix_spawn token-broker");
      std::exit(1);
    }
    for (int i = 0; i < 200 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      in >> port_;
      if (port_ == 0) absl::SleepFor(absl::Milliseconds(50));
    }
    if (port_ == 0) {
      std::cerr << "token-broker did not start\n";
      std::exit(1);
    }
  }
  ~ChildBroker() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  int pid() const { return pid_; }
  int port() const { return port_; }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
};

json ProcJson(const ProcStatus& s) {
  return json{{"rss_mib", s.rss_kib / 1024.0},
              {"hwm_mib", s.hwm_kib / 1024.0},
              {"threads", s.threads}};
}

}  // namespace

json RunScale(int keys, int connections, absl::Duration load_duration) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);

  // 14 scopes give 16383 non-empty subsets: each subset is its own key.
  constexpr int kScopes = 14;
  std::vector<std::string> scopes;
  for (int i = 0; i < kScopes; ++i) {
    scopes.push_back(absl::StrCat("scale:scope", i));
  }
  emulator::Fixture fixture = DemoFixture();
  emulator::Emulator emu(fixture);
  if (!emu.Start({}).ok()) std::exit(1);
  std::string dir = TempDir();
  WriteFile(dir + "/dc", "dc-secret-please-rotate\n");
  WriteFile(dir + "/broker.yaml",
            absl::StrCat("listen:\n  grpc: 127.0.0.1:0\n"
                         "development:\n  insecure_plaintext: true\n"
                         "apps:\n  - name: scale\n    base_url: ",
                         emu.base_url(),
                         "\n    client_id: design-center-app\n"
                         "    client_secret: {file: ",
                         dir, "/dc}\n    send_scope: true\n    scopes: [",
                         absl::StrJoin(scopes, ", "),
                         "]\n"
                         "callers:\n  - name: anonymous\n    grants:\n"
                         "      - {app: scale, scopes: ['*']}\n"
                         "audit:\n  path: ",
                         dir, "/audit.log\n"));
  json result{{"keys", keys}, {"connections", connections}};
  {
    ChildBroker child(dir + "/broker.yaml", dir + "/port");
    std::string target = absl::StrCat("127.0.0.1:", child.port());
    result["broker_idle"] = ProcJson(ReadProcStatus(child.pid()));

    std::vector<pb::GetTokenRequest> requests;
    for (int mask = 1; static_cast<int>(requests.size()) < keys; ++mask) {
      pb::GetTokenRequest request;
      request.set_app("scale");
      for (int i = 0; i < kScopes; ++i) {
        if (mask & (1 << i)) request.add_scopes(scopes[i]);
      }
      requests.push_back(std::move(request));
    }

    // Warm every key (each is a miss and one upstream fetch), 64 at a time.
    auto warm_channel =
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    auto warm_stub = pb::TokenBroker::NewStub(warm_channel);
    std::atomic<int> next{0};
    std::atomic<int> warm_errors{0};
    absl::Time warm_start = absl::Now();
    {
      absl::Mutex mu;
      int running = 64;
      std::function<void()> send_next = [&] {
        int i = next.fetch_add(1);
        if (i >= keys) {
          absl::MutexLock lock(&mu);
          --running;
          return;
        }
        auto* stub = warm_stub.get();
        Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
            [stub](auto... args) { stub->async()->GetToken(args...); },
            requests[i],
            [](const grpc::Status& s, const pb::GetTokenResponse&) {
              return s.ok();
            },
            [&](bool ok) {
              if (!ok) ++warm_errors;
              send_next();
            });
      };
      for (int i = 0; i < 64; ++i) send_next();
      absl::MutexLock lock(&mu);
      auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return running == 0;
      };
      mu.AwaitWithTimeout(absl::Condition(&done), absl::Minutes(5));
    }
    result["warm_seconds"] = absl::ToDoubleSeconds(absl::Now() - warm_start);
    result["warm_errors"] = warm_errors.load();
    result["upstream_requests"] =
        emu.GetCounters().token_requests_by_client["design-center-app"];
    result["broker_after_warm"] = ProcJson(ReadProcStatus(child.pid()));

    // One connection per caller: a channel with its own subchannel pool.
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    std::vector<std::unique_ptr<pb::TokenBroker::Stub>> stubs;
    for (int i = 0; i < connections; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("tokenbroker.bench.caller", i);
      channels.push_back(grpc::CreateCustomChannel(
          target, grpc::InsecureChannelCredentials(), args));
    }
    int connected = 0;
    for (auto& channel : channels) {
      if (channel->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::seconds(10))) {
        ++connected;
      }
      stubs.push_back(pb::TokenBroker::NewStub(channel));
    }
    result["connected"] = connected;
    std::vector<int> next_key(connections);
    for (int i = 0; i < connections; ++i) next_key[i] = (i * 7919) % keys;
    StartFn start = [&](int caller, std::function<void(bool)> done) {
      auto* stub = stubs[caller].get();
      int key = next_key[caller];
      next_key[caller] = (key + 1) % keys;
      StartGetToken(stub, requests[key], std::move(done));
    };
    int64_t fetches_before =
        emu.GetCounters().token_requests_by_client["design-center-app"];
    LoadResult load =
        RunClosedLoop(connections, absl::Seconds(1), load_duration, start);
    result["load"] = ToJson(load);
    result["upstream_requests_during_load"] =
        emu.GetCounters().token_requests_by_client["design-center-app"] -
        fetches_before;
    result["broker_under_load"] = ProcJson(ReadProcStatus(child.pid()));
    stubs.clear();
    channels.clear();
  }
  emu.Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  std::cerr << "scale " << result.dump() << "\n";
  return result;
}

}  // namespace tokenbroker::bench
