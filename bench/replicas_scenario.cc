// replicas: 1, 3 and 10 token-broker processes over one redis-server and the
// emulator, with and without shared state (bench/scenarios.h).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "bench/round_report.h"
#include "bench/scenarios.h"
#include "bench/unary_call.h"
#include "openssl/rand.h"
#include "tests/testing/broker_process.h"
#include "tests/testing/redis_server.h"

namespace tokenbroker::bench {

namespace pb = ::anypoint::tokenbroker::v1;
using nlohmann::json;
using ::tokenbroker::testing::BrokerProcess;
using ::tokenbroker::testing::RedisServerProcess;

namespace {

// Every key is an app of its own over this client of the demo fixture.
constexpr char kClientId[] = "exchange-reader";
constexpr double kRefreshFraction = 2.0 / 3.0;  // The cache's default.

void Fail(const std::string& what) {
  std::cerr << "replicas: " << what << "\n";
  std::exit(1);
}

std::string RandomKeyHex() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) Fail("no random bytes");
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

// The config of every replica: `keys` apps rk-0.. of one client, and the
// shared state when `redis_address` is not empty.
std::string ConfigYaml(const std::string& dir, const std::string& base_url,
                       int keys, const std::string& redis_address) {
  std::string yaml =
      "listen:\n  grpc: 127.0.0.1:0\n  admin_http: 127.0.0.1:0\n"
      "development:\n  insecure_plaintext: true\n"
      "cache:\n  min_lifetime: 1s\n"
      "apps:\n";
  std::string grants;
  for (int i = 0; i < keys; ++i) {
    absl::StrAppend(&yaml, "  - name: rk-", i, "\n    base_url: ", base_url,
                    "\n    client_id: ", kClientId,
                    "\n    client_secret: {file: ", dir,
                    "/ex}\n    scopes: [read:exchange]\n");
    absl::StrAppend(&grants, "      - {app: rk-", i, ", scopes: ['*']}\n");
  }
  absl::StrAppend(&yaml, "callers:\n  - name: anonymous\n    grants:\n",
                  grants);
  if (!redis_address.empty()) {
    absl::StrAppend(&yaml,
                    "shared_state:\n  redis:\n    address: ", redis_address,
                    "\n    keys: [{id: k1, file: ", dir, "/k1}]\n");
  }
  return yaml;
}

// `n` replicas started from one config; exits the process if one does not
// start.
class Replicas {
 public:
  Replicas(const std::string& dir, const std::string& yaml, int n) {
    const std::string config = absl::StrCat(dir, "/broker-", n, ".yaml");
    WriteFile(config, yaml);
    for (int i = 0; i < n; ++i) {
      std::string replica_dir = absl::StrCat(dir, "/replica-", i);
      std::filesystem::create_directories(replica_dir);
      auto replica =
          std::make_unique<BrokerProcess>(TOKEN_BROKER_BINARY, replica_dir);
      if (absl::Status s = replica->Start(config, {"--log_level=warning"});
          !s.ok()) {
        Fail(std::string(s.message()));
      }
      replicas_.push_back(std::move(replica));
    }
  }
  ~Replicas() {
    for (auto& replica : replicas_) (void)replica->Terminate();
  }
  int size() const { return static_cast<int>(replicas_.size()); }
  pb::TokenBroker::Stub* stub(int i) { return &replicas_[i]->broker(); }

 private:
  std::vector<std::unique_ptr<BrokerProcess>> replicas_;
};

pb::GetTokenRequest KeyRequest(int key) {
  pb::GetTokenRequest request;
  request.set_app(absl::StrCat("rk-", key));
  return request;
}

int64_t TokenRequests(emulator::Emulator& emulator) {
  return emulator.GetCounters().token_requests_by_client[kClientId];
}

// INFO commandstats: calls per command, without the INFO calls that read
// them.
std::map<std::string, int64_t> CommandStats(const RedisServerProcess& redis) {
  absl::StatusOr<RedisReply> info = redis.Cli({"INFO", "commandstats"});
  if (!info.ok()) Fail("INFO commandstats failed");
  std::map<std::string, int64_t> calls;
  for (absl::string_view line : absl::StrSplit(info->str, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "cmdstat_")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ':');
    if (parts.size() != 2 || parts[0] == "info") continue;
    for (absl::string_view field : absl::StrSplit(parts[1], ',')) {
      int64_t n = 0;
      if (absl::ConsumePrefix(&field, "calls=") &&
          absl::SimpleAtoi(field, &n)) {
        calls[std::string(parts[0])] = n;
      }
    }
  }
  return calls;
}

// after - before, per command and in all (commands that did not change
// left out).
json CommandDelta(const std::map<std::string, int64_t>& before,
                  const std::map<std::string, int64_t>& after, int64_t* total) {
  json by_command = json::object();
  *total = 0;
  for (const auto& [name, calls] : after) {
    auto it = before.find(name);
    int64_t delta = calls - (it == before.end() ? 0 : it->second);
    if (delta == 0) continue;
    by_command[name] = delta;
    *total += delta;
  }
  return by_command;
}

// One cycles run: `n` replicas, shared state on or off, closed-loop
// callers on every replica over every key for `duration`.
json Cycles(emulator::Emulator& emulator, RedisServerProcess& redis,
            const std::string& dir, const ReplicasOptions& options, int n,
            bool shared) {
  if (!redis.Cli({"FLUSHALL"}).ok()) Fail("FLUSHALL failed");
  Replicas replicas(dir,
                    ConfigYaml(dir, emulator.base_url(), options.keys,
                               shared ? redis.address() : ""),
                    n);
  const int keys = options.keys;

  // Cold: one GetToken per key on every replica at once.
  const int64_t cold_before = TokenRequests(emulator);
  BurstResult cold =
      RunBurst(n * keys, [&](int i, std::function<void(bool)> done) {
        StartGetToken(replicas.stub(i / keys), KeyRequest(i % keys),
                      std::move(done));
      });
  if (cold.unanswered > 0) Fail("cold callers did not finish in a minute");
  const int64_t cold_requests = TokenRequests(emulator) - cold_before;

  // Steady: callers_per_replica callers on each replica, each on one key.
  const int callers = n * options.callers_per_replica;
  absl::Mutex mu;
  std::vector<std::set<std::string>> distinct(keys);  // Per key.
  std::vector<std::string> last(callers);  // Per caller: its own completions.
  StartFn start = [&](int caller, std::function<void(bool)> done) {
    const int key = caller % keys;
    pb::TokenBroker::Stub* stub =
        replicas.stub(caller / options.callers_per_replica);
    Unary<pb::GetTokenRequest, pb::GetTokenResponse>(
        [stub](auto... args) { stub->async()->GetToken(args...); },
        KeyRequest(key),
        [&, caller, key](const grpc::Status& s, const pb::GetTokenResponse& r) {
          if (!s.ok() || r.access_token().empty()) return false;
          if (last[caller] != r.access_token()) {
            last[caller] = r.access_token();
            absl::MutexLock lock(&mu);
            distinct[key].insert(r.access_token());
          }
          return true;
        },
        std::move(done));
  };
  const int64_t before = TokenRequests(emulator);
  LoadResult load =
      RunClosedLoop(callers, absl::ZeroDuration(), options.duration, start);
  if (load.seconds == 0) Fail("callers did not finish in a minute");
  const int64_t upstream = TokenRequests(emulator) - before;

  const double cycles = absl::ToDoubleSeconds(options.duration) /
                        (options.token_lifetime_s * kRefreshFraction);
  json tokens_per_key = json::array();
  {
    absl::MutexLock lock(&mu);
    // Tokens seen in the window, less the one each key had at its start.
    for (const auto& set : distinct) {
      tokens_per_key.push_back(std::max<int64_t>(0, set.size() - 1));
    }
  }
  json row{{"replicas", n},
           {"shared_state", shared},
           {"keys", keys},
           {"cold_upstream_requests", cold_requests},
           {"cold_errors", cold.errors},
           {"callers", callers},
           {"expected_cycles_per_key", cycles},
           {"upstream_requests", upstream},
           {"upstream_per_key_per_cycle", upstream / (keys * cycles)},
           {"new_tokens_seen_per_key", tokens_per_key}};
  row.update(ToJson(load));
  std::cerr << "replicas cycles " << row.dump() << "\n";
  return row;
}

// The hit path of one replica with shared state and of one without, in
// alternating rounds, and the Redis commands while the shared one serves
// hits against those of an idle window as long.
json HitPath(emulator::Emulator& emulator, RedisServerProcess& redis,
             const std::string& dir, const ReplicasOptions& options) {
  if (!redis.Cli({"FLUSHALL"}).ok()) Fail("FLUSHALL failed");
  emulator.SetTokenLifetime(3600);  // No refresh during the runs.
  const std::string on_dir = dir + "/hit-on";
  const std::string off_dir = dir + "/hit-off";
  std::filesystem::create_directories(on_dir);
  std::filesystem::create_directories(off_dir);
  WriteFile(on_dir + "/ex", "exchange-reader-fake-secret\n");
  WriteFile(off_dir + "/ex", "exchange-reader-fake-secret\n");
  WriteFile(on_dir + "/k1", RandomKeyHex() + "\n");
  Replicas on(on_dir,
              ConfigYaml(on_dir, emulator.base_url(), 1, redis.address()), 1);
  Replicas off(off_dir, ConfigYaml(off_dir, emulator.base_url(), 1, ""), 1);
  const pb::GetTokenRequest request = KeyRequest(0);
  for (Replicas* replicas : {&on, &off}) {
    BurstResult warm = RunBurst(1, [&](int, std::function<void(bool)> done) {
      StartGetToken(replicas->stub(0), request, std::move(done));
    });
    if (warm.errors + warm.unanswered > 0) Fail("cannot warm the key");
  }

  std::atomic<int64_t> on_answers{0};
  std::map<std::string, int64_t> stats_before;
  int64_t commands = 0, hits = 0;
  json by_command = json::object();
  RoundOptions rounds;
  rounds.concurrency = options.hit_concurrency;
  rounds.rounds = options.hit_rounds;
  rounds.warmup = absl::Milliseconds(500);
  rounds.duration = options.hit_duration;
  std::vector<RoundKind> kinds = {
      {"shared_state_off",
       [&](int, std::function<void(bool)> done) {
         StartGetToken(off.stub(0), request, std::move(done));
       }},
      {"shared_state_on",
       [&](int, std::function<void(bool)> done) {
         StartGetToken(on.stub(0), request,
                       [&on_answers, done = std::move(done)](bool ok) {
                         ++on_answers;
                         done(ok);
                       });
       },
       [&] {
         on_answers = 0;
         stats_before = CommandStats(redis);
       },
       [&] {
         int64_t total = 0;
         json delta = CommandDelta(stats_before, CommandStats(redis), &total);
         commands += total;
         hits += on_answers;
         for (auto& [name, calls] : delta.items()) {
           by_command[name] = by_command.value(name, 0) + calls.get<int64_t>();
         }
       }}};
  const absl::Time begin = absl::Now();
  json rows = RunRounds("replicas hit", rounds, kinds);
  // As long as the shared-state runs took, with no caller at all.
  const absl::Duration each_run = rounds.warmup + rounds.duration;
  const absl::Duration idle_window =
      each_run * static_cast<double>(rounds.concurrency.size() *
                                     std::max(1, rounds.rounds));
  std::map<std::string, int64_t> idle_before = CommandStats(redis);
  absl::SleepFor(idle_window);
  int64_t idle_commands = 0;
  json idle_by_command =
      CommandDelta(idle_before, CommandStats(redis), &idle_commands);
  json result{
      {"rows", rows},
      {"redis_commands_during_hits",
       {{"hits", hits},
        {"commands", commands},
        {"by_command", by_command},
        {"idle_seconds", absl::ToDoubleSeconds(idle_window)},
        {"idle_commands", idle_commands},
        {"idle_by_command", idle_by_command},
        {"commands_per_1000_hits",
         hits > 0 ? 1000.0 * commands / static_cast<double>(hits) : 0.0}}},
      {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - begin)}};
  std::cerr << "replicas hit " << result["redis_commands_during_hits"].dump()
            << "\n";
  return result;
}

}  // namespace

json RunReplicas(const ReplicasOptions& options) {
  if (RedisServerProcess::Binary().empty()) {
    std::cerr << "replicas: redis-server is not installed; skipped\n";
    return json{{"skipped", "redis-server is not installed"}};
  }
  const absl::Time begin = absl::Now();
  emulator::Emulator emulator(DemoFixture());
  if (!emulator.Start({}).ok()) Fail("the emulator did not start");
  RedisServerProcess redis;
  if (absl::Status s = redis.Start(); !s.ok()) Fail(std::string(s.message()));
  const std::string dir = TempDir();
  WriteFile(dir + "/ex", "exchange-reader-fake-secret\n");
  WriteFile(dir + "/k1", RandomKeyHex() + "\n");

  json cycles = json::array();
  emulator.SetTokenLifetime(options.token_lifetime_s);
  for (bool shared : {true, false}) {
    for (int n : options.replicas) {
      cycles.push_back(Cycles(emulator, redis, dir, options, n, shared));
    }
  }
  json hit = HitPath(emulator, redis, dir, options);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return json{{"token_lifetime_s", options.token_lifetime_s},
              {"duration_s", absl::ToDoubleSeconds(options.duration)},
              {"cycles", cycles},
              {"hit_path", hit},
              {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - begin)}};
}

}  // namespace tokenbroker::bench
