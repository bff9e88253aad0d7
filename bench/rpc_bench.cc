// The broker's end-to-end benchmarks (issue 7), run by scripts/bench:
//   rpc       GetToken cache hits vs an empty unary RPC registered in the same
//             server (callback API) and vs grpc.health.v1.Health/Check; one
//             client channel; 1, 8 and 64 concurrent callers.
//   call      Call through the broker vs the same request sent directly to
//             the emulator with libcurl.
//   coalesce  1000 concurrent cold GetToken for one key: upstream requests
//             and time to serve all.
//   refresh   10 minutes of simulated time (fake clock, TokenCache and a
//             token source answering after a simulated delay) with 60 s
//             tokens and steady load: callers that waited after warm-up.
//   scale     the token-broker binary in its own process with 10,000 cached
//             keys and 1,000 client connections: RSS and GetToken p99.
// Everything is on loopback; every loop is bounded by time or count.
// Writes one JSON object (--out) that scripts/bench turns into a table.

#include <curl/curl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "baseline.grpc.pb.h"
#include "bench/load.h"
#include "emulator/emulator.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/server_builder.h"
#include "nlohmann/json.hpp"
#include "service/cache/token_cache.h"
#include "service/common/log.h"
#include "service/config/config.h"
#include "service/app/broker_server.h"
#include "tests/testing/fake_clock.h"

ABSL_FLAG(std::string, scenarios, "rpc,call,coalesce,refresh,scale",
          "Comma-separated scenarios to run.");
ABSL_FLAG(std::string, out, "", "Write the results (JSON) here.");
ABSL_FLAG(double, seconds, 2, "Measured seconds per rpc/call run.");
ABSL_FLAG(double, warmup_seconds, 0.5, "Warm-up seconds per run.");
ABSL_FLAG(std::string, concurrency, "1,8,64", "Concurrent callers.");
ABSL_FLAG(int, coalesce_callers, 1000, "Concurrent cold GetToken calls.");
ABSL_FLAG(int, scale_keys, 10000, "Cached keys in the scale scenario.");
ABSL_FLAG(int, scale_connections, 1000, "Client connections (scale).");
ABSL_FLAG(double, scale_seconds, 5, "Measured seconds of the scale load.");
ABSL_FLAG(std::string, rpc_kinds, "baseline,baseline_token,get_token,health",
          "Which RPCs the rpc scenario measures (for profiling one).");
ABSL_FLAG(std::string, call_paths, "direct,broker",
          "Which paths the call scenario measures (for profiling one).");
ABSL_FLAG(int, call_rounds, 3,
          "Rounds of the call scenario (each path once per round; each "
          "reports its fastest round).");
ABSL_FLAG(int, rounds, 5,
          "Rounds of the rpc scenario: each round runs every RPC kind once, "
          "in turn; each kind reports its fastest round.");
ABSL_FLAG(bool, audit, true,
          "Audit to a file, as in production (false: no audit sink).");

namespace tokenbroker::bench {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;

// --- The baseline service, registered in every gRPC server of the process
// (here: only the broker's) through a ServerBuilder plugin, so that it sits
// beside the broker's services without changing BrokerServer.

class BaselineService final : public Baseline::CallbackService {
 public:
  // The answer of PingToken; set before the first PingToken call.
  void SetTokenAnswer(const pb::GetTokenResponse& answer) {
    token_answer_ = answer;
  }

 private:
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const Empty*, Empty*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* PingToken(grpc::CallbackServerContext* context,
                                      const pb::GetTokenRequest*,
                                      pb::GetTokenResponse* response) override {
    *response = token_answer_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  pb::GetTokenResponse token_answer_;
};

BaselineService& TheBaseline() {
  static auto* service = new BaselineService();
  return *service;
}

class BaselinePlugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "tokenbroker_bench_baseline"; }
  void UpdateServerBuilder(grpc::ServerBuilder* builder) override {
    builder->RegisterService(&TheBaseline());
  }
  void InitServer(grpc::ServerInitializer*) override {}
  void Finish(grpc::ServerInitializer*) override {}
  void ChangeArguments(const std::string&, void*) override {}
};

std::unique_ptr<grpc::ServerBuilderPlugin> CreateBaselinePlugin() {
  return std::make_unique<BaselinePlugin>();
}

// --- Helpers.

json ToJson(const LoadResult& r) {
  return json{
      {"requests", r.requests},
      {"errors", r.errors},
      {"seconds", r.seconds},
      {"throughput", r.throughput()},
      {"p50_us", r.p50_us},
      {"p90_us", r.p90_us},
      {"p99_us", r.p99_us},
      {"max_us", r.max_us},
      {"cpu_us_per_request", r.cpu_us_per_request()},
      {"context_switches_per_request", r.context_switches_per_request()}};
}

// One kind's rounds as one result: the figures of its fastest round (the
// one least disturbed by whatever else the machine did; on a shared
// two-core machine a round now and then runs at half speed), with every
// round kept under "each_round".
json BestOfRounds(const std::vector<LoadResult>& rounds) {
  const LoadResult& best =
      *std::max_element(rounds.begin(), rounds.end(),
                        [](const LoadResult& a, const LoadResult& b) {
                          return a.throughput() < b.throughput();
                        });
  json result = ToJson(best);
  int64_t errors = 0;
  json each = json::array();
  for (const LoadResult& r : rounds) {
    errors += r.errors;
    each.push_back(ToJson(r));
  }
  result["rounds"] = rounds.size();
  result["errors"] = errors;  // Of every round, not only the best.
  result["each_round"] = each;
  return result;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string TempDir() {
  char dir_template[] = "/tmp/tokenbroker-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return dir_template;
}

std::vector<int> ConcurrencyLevels() {
  std::vector<int> levels;
  for (absl::string_view part :
       absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int n = 0;
    if (absl::SimpleAtoi(part, &n) && n > 0) levels.push_back(n);
  }
  return levels;
}

absl::Duration Seconds(double s) { return absl::Milliseconds(s * 1000); }

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string line;
  std::getline(in, line);
  return line;
}

emulator::Fixture DemoFixture() {
  absl::StatusOr<emulator::Fixture> fixture = emulator::LoadFixtureFile(
      absl::StrCat(TOKENBROKER_SOURCE_DIR, "/emulator/fixtures/demo.yaml"));
  if (!fixture.ok()) {
    std::cerr << fixture.status() << "\n";
    std::exit(1);
  }
  return *std::move(fixture);
}

// --- The in-process broker of the rpc, call and coalesce scenarios: the
// emulator and the broker (audit to a file, as in production) on loopback.

class InProcessBroker {
 public:
  InProcessBroker() {
    emulator_ = std::make_unique<emulator::Emulator>(DemoFixture());
    if (!emulator_->Start({}).ok()) std::exit(1);
    dir_ = TempDir();
    WriteFile(dir_ + "/dc", "dc-secret-please-rotate\n");
    WriteFile(dir_ + "/ex", "exchange-reader-fake-secret\n");
    std::string base = emulator_->base_url();
    std::string yaml = absl::StrCat(
        "listen:\n  grpc: 127.0.0.1:0\n"
        "development:\n  insecure_plaintext: true\n"
        "cache:\n  fetch_timeout: 10s\n"
        "apps:\n"
        "  - name: design-center\n    base_url: ",
        base, "\n    client_id: design-center-app\n",
        "    client_secret: {file: ", dir_, "/dc}\n",
        "    scopes: [view:design_center, view:environment, read:exchange]\n");
    for (const char* name : {"coalesce-a", "coalesce-b"}) {
      absl::StrAppend(&yaml, "  - name: ", name, "\n    base_url: ", base,
                      "\n    client_id: exchange-reader\n",
                      "    client_secret: {file: ", dir_, "/ex}\n",
                      "    scopes: [read:exchange]\n");
    }
    absl::StrAppend(
        &yaml,
        "callers:\n  - name: anonymous\n    grants:\n"
        "      - {app: design-center, scopes: ['*'], routes: ['* /**']}\n"
        "      - {app: coalesce-a, scopes: ['*']}\n"
        "      - {app: coalesce-b, scopes: ['*']}\n");
    if (absl::GetFlag(FLAGS_audit)) {
      absl::StrAppend(&yaml, "audit:\n  path: ", dir_, "/audit.log\n");
    }
    WriteFile(dir_ + "/broker.yaml", yaml);
    absl::StatusOr<Config> config = LoadConfigFile(dir_ + "/broker.yaml");
    if (!config.ok()) {
      std::cerr << config.status() << "\n";
      std::exit(1);
    }
    absl::StatusOr<std::unique_ptr<BrokerServer>> broker =
        BrokerServer::Create(*std::move(config));
    if (!broker.ok() || !(*broker)->Start("127.0.0.1:0").ok()) {
      std::cerr << "cannot start the broker\n";
      std::exit(1);
    }
    broker_ = *std::move(broker);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_->port()),
                                   grpc::InsecureChannelCredentials());
    broker_stub_ = pb::TokenBroker::NewStub(channel_);
    baseline_stub_ = Baseline::NewStub(channel_);
    health_stub_ = grpc::health::v1::Health::NewStub(channel_);
  }

  ~InProcessBroker() {
    broker_stub_.reset();
    baseline_stub_.reset();
    health_stub_.reset();
    channel_.reset();
    broker_.reset();
    emulator_->Stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  emulator::Emulator& emulator() { return *emulator_; }
  pb::TokenBroker::Stub& broker() { return *broker_stub_; }
  Baseline::Stub& baseline() { return *baseline_stub_; }
  grpc::health::v1::Health::Stub& health() { return *health_stub_; }

 private:
  std::unique_ptr<emulator::Emulator> emulator_;
  std::string dir_;
  std::unique_ptr<BrokerServer> broker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::TokenBroker::Stub> broker_stub_;
  std::unique_ptr<Baseline::Stub> baseline_stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
};

// One unary call with the callback API; `ok` decides success.
template <typename Request, typename Response, typename Method>
void Unary(Method method, const Request& request,
           std::function<bool(const grpc::Status&, const Response&)> ok,
           std::function<void(bool)> done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto* call = new Call;
  call->request = request;
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
  method(&call->context, &call->request, &call->response,
         [call, ok = std::move(ok), done = std::move(done)](grpc::Status s) {
           bool success = ok(s, call->response);
           delete call;
           done(success);
         });
}

// --- rpc: GetToken hits vs baseline vs health.

json RunRpc(InProcessBroker& broker) {
  // Warm the key so that every measured GetToken is a hit.
  pb::GetTokenRequest get_token;
  get_token.set_app("design-center");
  {
    grpc::ClientContext context;
    pb::GetTokenResponse response;
    grpc::Status status =
        broker.broker().GetToken(&context, get_token, &response);
    if (!status.ok()) {
      std::cerr << "GetToken: " << status.error_message() << "\n";
      std::exit(1);
    }
    TheBaseline().SetTokenAnswer(response);
  }
  Empty empty;
  grpc::health::v1::HealthCheckRequest health;
  auto* stub = &broker.broker();
  auto* baseline = &broker.baseline();
  auto* health_stub = &broker.health();

  std::vector<std::pair<std::string, StartFn>> kinds = {
      {"baseline",
       [&](int, std::function<void(bool)> done) {
         Unary<Empty, Empty>(
             [baseline](auto... args) { baseline->async()->Ping(args...); },
             empty, [](const grpc::Status& s, const Empty&) { return s.ok(); },
             std::move(done));
       }},
      {"baseline_token",
       [&](int, std::function<void(bool)> done) {
         Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
             [baseline](auto... args) {
               baseline->async()->PingToken(args...);
             },
             get_token,
             [](const grpc::Status& s, const pb::GetTokenResponse& r) {
               return s.ok() && !r.access_token().empty();
             },
             std::move(done));
       }},
      {"get_token",
       [&](int, std::function<void(bool)> done) {
         Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
             [stub](auto... args) { stub->async()->GetToken(args...); },
             get_token,
             [](const grpc::Status& s, const pb::GetTokenResponse& r) {
               return s.ok() && !r.access_token().empty();
             },
             std::move(done));
       }},
      {"health",
       [&](int, std::function<void(bool)> done) {
         Unary<grpc::health::v1::HealthCheckRequest,
               grpc::health::v1::HealthCheckResponse>(
             [health_stub](auto... args) {
               health_stub->async()->Check(args...);
             },
             health,
             [](const grpc::Status& s,
                const grpc::health::v1::HealthCheckResponse& r) {
               return s.ok() &&
                      r.status() ==
                          grpc::health::v1::HealthCheckResponse::SERVING;
             },
             std::move(done));
       }},
  };
  std::vector<std::string> wanted =
      absl::StrSplit(absl::GetFlag(FLAGS_rpc_kinds), ',');
  json rows = json::array();
  for (int concurrency : ConcurrencyLevels()) {
    // The kinds take turns, round after round, so that a change in the
    // machine's load during the run hits them alike.
    std::unordered_map<std::string, std::vector<LoadResult>> results;
    for (int round = 0; round < std::max(1, absl::GetFlag(FLAGS_rounds));
         ++round) {
      for (auto& [name, start] : kinds) {
        if (std::find(wanted.begin(), wanted.end(), name) == wanted.end()) {
          continue;
        }
        LoadResult result = RunClosedLoop(
            concurrency, Seconds(absl::GetFlag(FLAGS_warmup_seconds)),
            Seconds(absl::GetFlag(FLAGS_seconds)), start);
        std::cerr << "rpc " << name << " c=" << concurrency << " round "
                  << round + 1 << ": "
                  << static_cast<int64_t>(result.throughput()) << "/s p50 "
                  << result.p50_us << " us p99 " << result.p99_us << " us, "
                  << result.cpu_us_per_request() << " us CPU and "
                  << result.context_switches_per_request()
                  << " context switches per request\n";
        results[name].push_back(result);
      }
    }
    json row{{"concurrency", concurrency}};
    for (const auto& [name, rounds] : results) {
      row[name] = BestOfRounds(rounds);
    }
    rows.push_back(row);
  }
  return rows;
}

// --- call: through the broker vs directly with libcurl.

// Drives libcurl easy handles (one per caller, reused so connections are
// kept) on one thread with the multi interface.
class CurlDriver {
 public:
  CurlDriver(std::string url, std::string token)
      : url_(std::move(url)), token_(std::move(token)) {
    multi_ = curl_multi_init();
    // The broker's CurlHttpClient defaults: at most 16 connections to one
    // host, which is also what the emulator serves at once (a thread per
    // connection).
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    thread_ = std::thread([this] { Loop(); });
  }
  ~CurlDriver() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    curl_multi_wakeup(multi_);
    thread_.join();
    for (auto& [caller, easy] : easies_) {
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
    }
    curl_slist_free_all(headers_);
    curl_multi_cleanup(multi_);
  }

  void Start(int caller, std::function<void(bool)> done) {
    {
      absl::MutexLock lock(&mu_);
      queued_.push_back({caller, std::move(done)});
    }
    curl_multi_wakeup(multi_);
  }

 private:
  struct Request {
    int caller;
    std::function<void(bool)> done;
  };

  static size_t Discard(char*, size_t size, size_t count, void*) {
    return size * count;
  }

  CURL* EasyFor(int caller) {
    auto it = easies_.find(caller);
    if (it != easies_.end()) return it->second;
    if (headers_ == nullptr) {
      headers_ = curl_slist_append(
          nullptr, absl::StrCat("Authorization: Bearer ", token_).c_str());
    }
    CURL* easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CurlDriver::Discard);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
    easies_[caller] = easy;
    return easy;
  }

  void Loop() {
    std::unordered_map<CURL*, Request> active;
    while (true) {
      std::deque<Request> queued;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) break;
        queued.swap(queued_);
      }
      for (Request& request : queued) {
        CURL* easy = EasyFor(request.caller);
        curl_multi_add_handle(multi_, easy);
        active[easy] = std::move(request);
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL* easy = msg->easy_handle;
        long code = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        bool ok = msg->data.result == CURLE_OK && code == 200;
        curl_multi_remove_handle(multi_, easy);
        Request request = std::move(active[easy]);
        active.erase(easy);
        request.done(ok);
      }
      curl_multi_poll(multi_, nullptr, 0, 100, nullptr);
    }
  }

  const std::string url_;
  const std::string token_;
  CURLM* multi_;
  curl_slist* headers_ = nullptr;
  std::unordered_map<int, CURL*> easies_;  // Loop thread only.
  absl::Mutex mu_;
  std::deque<Request> queued_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

json RunCall(InProcessBroker& broker) {
  constexpr char kPath[] = "/accounts/api/me";
  pb::GetTokenResponse token;
  {
    grpc::ClientContext context;
    pb::GetTokenRequest request;
    request.set_app("design-center");
    if (!broker.broker().GetToken(&context, request, &token).ok()) {
      std::cerr << "GetToken failed\n";
      std::exit(1);
    }
  }
  const std::string url = absl::StrCat(broker.emulator().base_url(), kPath);
  std::unique_ptr<CurlDriver> direct;
  pb::CallRequest call;
  call.set_app("design-center");
  call.set_method("GET");
  call.set_path(kPath);
  auto* stub = &broker.broker();
  StartFn through_broker = [&](int, std::function<void(bool)> done) {
    Unary<pb::CallRequest, pb::CallResponse>(
        [stub](auto... args) { stub->async()->Call(args...); }, call,
        [](const grpc::Status& s, const pb::CallResponse& r) {
          return s.ok() && r.status() == 200;
        },
        std::move(done));
  };
  StartFn directly = [&](int caller, std::function<void(bool)> done) {
    direct->Start(caller, std::move(done));
  };
  json rows = json::array();
  bool broker_connections_open = false;
  for (int concurrency : ConcurrencyLevels()) {
    std::unordered_map<std::string, std::vector<LoadResult>> results;
    for (int round = 0; round < std::max(1, absl::GetFlag(FLAGS_call_rounds));
         ++round) {
      for (auto& [name, start] : std::vector<std::pair<std::string, StartFn*>>{
               {"direct", &directly}, {"broker", &through_broker}}) {
        if (!absl::StrContains(absl::GetFlag(FLAGS_call_paths), name)) {
          continue;
        }
        if (name == "direct") {
          // The emulator serves one connection per thread and keeps idle
          // ones for 5 s: let the broker's idle connections of the previous
          // run time out so that both paths find the emulator alike.
          if (broker_connections_open) {
            absl::SleepFor(absl::Milliseconds(5500));
          }
          direct = std::make_unique<CurlDriver>(url, token.access_token());
        }
        LoadResult result = RunClosedLoop(
            concurrency, Seconds(absl::GetFlag(FLAGS_warmup_seconds)),
            Seconds(absl::GetFlag(FLAGS_seconds)), *start);
        // Closing its connections frees the emulator's threads at once.
        if (name == "direct") direct.reset();
        if (name == "broker") broker_connections_open = true;
        std::cerr << "call " << name << " c=" << concurrency << " round "
                  << round + 1 << ": "
                  << static_cast<int64_t>(result.throughput()) << "/s p50 "
                  << result.p50_us << " us p99 " << result.p99_us << " us, "
                  << result.cpu_us_per_request() << " us CPU and "
                  << result.context_switches_per_request()
                  << " context switches per request\n";
        results[name].push_back(result);
      }
    }
    json row{{"concurrency", concurrency}};
    for (const auto& [name, rounds] : results) {
      row[name] = BestOfRounds(rounds);
    }
    rows.push_back(row);
  }
  return rows;
}

// --- coalesce: N concurrent cold GetToken for one key.

json RunCoalesce(InProcessBroker& broker) {
  json rows = json::array();
  const int callers = absl::GetFlag(FLAGS_coalesce_callers);
  struct Variant {
    const char* app;
    int upstream_latency_ms;
  };
  for (Variant variant :
       {Variant{"coalesce-a", 0}, Variant{"coalesce-b", 100}}) {
    broker.emulator().ClearFaults();
    if (variant.upstream_latency_ms > 0) {
      emulator::Fault fault;
      fault.endpoint = "token";
      fault.kind = emulator::FaultKind::kLatency;
      fault.latency_ms = variant.upstream_latency_ms;
      broker.emulator().AddFault(fault);
    }
    int64_t before = broker.emulator()
                         .GetCounters()
                         .token_requests_by_client["exchange-reader"];
    pb::GetTokenRequest request;
    request.set_app(variant.app);
    absl::Mutex mu;
    int remaining = callers;
    int errors = 0;
    absl::Time start = absl::Now();
    absl::Time last_done;
    auto* stub = &broker.broker();
    for (int i = 0; i < callers; ++i) {
      Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
          [stub](auto... args) { stub->async()->GetToken(args...); }, request,
          [](const grpc::Status& s, const pb::GetTokenResponse& r) {
            return s.ok() && !r.access_token().empty();
          },
          [&](bool ok) {
            absl::MutexLock lock(&mu);
            if (!ok) ++errors;
            last_done = absl::Now();
            --remaining;
          });
    }
    {
      absl::MutexLock lock(&mu);
      auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return remaining == 0;
      };
      if (!mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Minutes(1))) {
        std::cerr << "coalesce: callers did not finish in a minute\n";
        std::exit(1);
      }
    }
    broker.emulator().ClearFaults();
    int64_t upstream = broker.emulator()
                           .GetCounters()
                           .token_requests_by_client["exchange-reader"] -
                       before;
    json row{{"callers", callers},
             {"upstream_latency_ms", variant.upstream_latency_ms},
             {"upstream_requests", upstream},
             {"errors", errors},
             {"time_ms", absl::ToDoubleMilliseconds(last_done - start)}};
    std::cerr << "coalesce " << row.dump() << "\n";
    rows.push_back(row);
  }
  return rows;
}

// --- refresh: simulated time, no network.

// Answers every fetch `latency` of simulated time later, with a token of
// `lifetime`. The simulation completes due fetches between steps.
class DelayedTokenSource final : public TokenSource {
 public:
  DelayedTokenSource(const Clock& clock, absl::Duration latency,
                     absl::Duration lifetime)
      : clock_(clock), latency_(latency), lifetime_(lifetime) {}

  void Fetch(const TokenRequest& request, TokenCallback done) override {
    absl::MutexLock lock(&mu_);
    ++fetches_;
    pending_.push_back({clock_.Now() + latency_, std::move(done)});
  }

  void CompleteDue() {
    std::vector<TokenCallback> due;
    absl::Time now = clock_.Now();
    {
      absl::MutexLock lock(&mu_);
      while (!pending_.empty() && pending_.front().first <= now) {
        due.push_back(std::move(pending_.front().second));
        pending_.pop_front();
      }
    }
    for (TokenCallback& done : due) {
      Token token;
      token.issued_at = now;
      token.expires_at = now + lifetime_;
      token.access_token = absl::StrCat("sim-", ++issued_);
      done(std::move(token));
    }
  }

  int64_t fetches() {
    absl::MutexLock lock(&mu_);
    return fetches_;
  }

 private:
  const Clock& clock_;
  const absl::Duration latency_;
  const absl::Duration lifetime_;
  absl::Mutex mu_;
  std::deque<std::pair<absl::Time, TokenCallback>> pending_
      ABSL_GUARDED_BY(mu_);
  int64_t fetches_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t issued_ = 0;  // Simulation thread only.
};

json RunRefresh() {
  const absl::Duration kLifetime = absl::Seconds(60);
  const absl::Duration kUpstreamLatency = absl::Milliseconds(300);
  const absl::Duration kStep = absl::Milliseconds(50);
  const absl::Duration kSimulated = absl::Minutes(10);
  const absl::Duration kWarmup = absl::Seconds(5);
  const int kKeys = 10;
  const int kCallsPerKeyPerStep = 20;

  testing::FakeClock clock;
  DelayedTokenSource source(clock, kUpstreamLatency, kLifetime);
  CachePolicy policy;  // Defaults: refresh at 2/3 +-10 %, min_ttl 30 s.
  TokenCache cache(source, clock, policy);
  std::vector<TokenRequest> requests;
  for (int k = 0; k < kKeys; ++k) {
    requests.push_back({absl::StrCat("app-", k), {"read:exchange"}});
  }
  const absl::Time start = clock.Now();
  int64_t calls = 0, waited_after_warmup = 0, failed = 0;
  int64_t waits_at_warmup = -1;
  absl::Time sim_begin = absl::Now();
  while (clock.Now() - start < kSimulated) {
    clock.Advance(kStep);
    source.CompleteDue();
    cache.RunDue();  // What the Refresher thread does when a refresh is due.
    bool warm = clock.Now() - start >= kWarmup;
    if (warm && waits_at_warmup < 0) waits_at_warmup = cache.stats().waits;
    for (const TokenRequest& request : requests) {
      for (int i = 0; i < kCallsPerKeyPerStep; ++i) {
        bool answered = false;
        cache.Get(request, policy.min_ttl,
                  [&answered, &failed](absl::StatusOr<TokenPtr> token) {
                    answered = true;
                    if (!token.ok()) ++failed;
                  });
        ++calls;
        // A caller that was not answered inline waited on a fetch.
        if (!answered && warm) ++waited_after_warmup;
      }
    }
  }
  source.CompleteDue();
  TokenCacheStats stats = cache.stats();
  json result{
      {"simulated_seconds", absl::ToDoubleSeconds(kSimulated)},
      {"token_lifetime_s", absl::ToDoubleSeconds(kLifetime)},
      {"upstream_latency_ms", absl::ToDoubleMilliseconds(kUpstreamLatency)},
      {"keys", kKeys},
      {"calls", calls},
      {"warmup_s", absl::ToDoubleSeconds(kWarmup)},
      {"waited_after_warmup", waited_after_warmup},
      {"cache_waits_after_warmup", stats.waits - waits_at_warmup},
      {"cache_waits_total", stats.waits},
      {"failed", failed},
      {"upstream_fetches", source.fetches()},
      {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - sim_begin)}};
  std::cerr << "refresh " << result.dump() << "\n";
  return result;
}

// --- scale: the real binary, 10,000 keys, 1,000 connections.

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

json RunScale() {
  const int keys = absl::GetFlag(FLAGS_scale_keys);
  const int connections = absl::GetFlag(FLAGS_scale_connections);
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
      Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
          [stub](auto... args) { stub->async()->GetToken(args...); },
          requests[key],
          [](const grpc::Status& s, const pb::GetTokenResponse& r) {
            return s.ok() && !r.access_token().empty();
          },
          std::move(done));
    };
    int64_t fetches_before =
        emu.GetCounters().token_requests_by_client["design-center-app"];
    LoadResult load =
        RunClosedLoop(connections, absl::Seconds(1),
                      Seconds(absl::GetFlag(FLAGS_scale_seconds)), start);
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

int Main() {
  SetLogLevel(LogLevel::kWarning);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  grpc::ServerBuilder::InternalAddPluginFactory(&CreateBaselinePlugin);
  std::vector<std::string> scenarios =
      absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',', absl::SkipEmpty());
  auto wants = [&](absl::string_view name) {
    return std::find(scenarios.begin(), scenarios.end(), name) !=
           scenarios.end();
  };
  json out{{"loadavg_before", LoadAverage()},
           {"audit", absl::GetFlag(FLAGS_audit)},
           {"seconds_per_run", absl::GetFlag(FLAGS_seconds)},
           {"nproc", std::thread::hardware_concurrency()}};
  if (wants("rpc") || wants("call") || wants("coalesce")) {
    InProcessBroker broker;
    if (wants("rpc")) out["rpc"] = RunRpc(broker);
    if (wants("call")) out["call"] = RunCall(broker);
    if (wants("coalesce")) out["coalesce"] = RunCoalesce(broker);
  }
  if (wants("refresh")) out["refresh"] = RunRefresh();
  if (wants("scale")) out["scale"] = RunScale();
  out["loadavg_after"] = LoadAverage();
  std::string text = out.dump(2);
  if (std::string path = absl::GetFlag(FLAGS_out); !path.empty()) {
    WriteFile(path, text + "\n");
  } else {
    std::cout << text << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace tokenbroker::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tokenbroker::bench::Main();
}
