// Three replicas, one truth (issue 13, point 7): three token-broker
// processes on loopback share one real redis-server (started by the test
// from Debian's package, tests/testing/redis_server.h) through the same
// `shared_state.redis` section and sealing keys; the emulator runs
// in-process and counts every token request. Each test checks what an SRE
// running three replicas expects:
//   - one upstream token request per key per refresh cycle, whichever
//     replica the callers hit, and every replica serving the same token;
//   - a lease holder killed (SIGKILL) mid-fetch delays the others only until
//     its lease lapses, after which exactly one of them fetches;
//   - Redis stopped and restarted with callers running: no failed GetToken,
//     "shared state down" in the metrics, single fetches again afterwards;
//   - a revocation on one replica reaches the other two;
//   - a sealing key rotation: old records still open, new ones use the new
//     key;
//   - no token or secret in any Redis key, value or command;
//   - a user connected through one replica is served by all, and each
//     refresh-token rotation is stored once, whichever replica refreshes.
// No timed assertion: waits are bounded polls of a condition.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
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
#include "openssl/rand.h"
#include "service/store/grant_store.h"
#include "service/store/sealed_box.h"
#include "tests/testing/broker_process.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/scripted_browser.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

namespace fs = std::filesystem;
namespace pb = anypoint::tokenbroker::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::tokenbroker::testing::BrokerProcess;
using ::tokenbroker::testing::BrowserResponse;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::MetricValue;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::ScriptedBrowser;

// The gauge each replica exports: 1 while its shared state works, 0 while
// it is degraded (serving and fetching on its own).
constexpr char kSharedStateUp[] = "tokenbroker_shared_state_up";
constexpr char kPrefix[] = "tokenbroker:";
constexpr int kReplicas = 3;

// The demo fixture's client ids and secrets.
constexpr char kDcClient[] = "design-center-app";
constexpr char kExClient[] = "exchange-reader";
constexpr char kChClient[] = "cloudhub-sandbox-viewer";
constexpr const char* kClientSecrets[] = {"dc-secret-please-rotate",
                                          "exchange-reader-fake-secret",
                                          "cloudhub-viewer-fake-secret"};

// One cache key: an app of the broker and the scopes a caller asks for.
struct Key {
  std::string app;
  std::vector<std::string> scopes;
  std::string client_id;
  std::string Name() const {
    return absl::StrCat(app, "[", absl::StrJoin(scopes, " "), "]");
  }
};

// Four keys of two client ids: design-center (no scopes asked), the same
// client with send_scope and two scope sets, and exchange-reader.
const std::vector<Key>& WarmKeys() {
  static const auto* keys = new std::vector<Key>{
      {"design-center", {}, kDcClient},
      {"dc-scoped", {"read:exchange"}, kDcClient},
      {"dc-scoped", {"view:environment"}, kDcClient},
      {"exchange-reader", {}, kExClient},
  };
  return *keys;
}
const Key& DcKey() { return WarmKeys()[0]; }
const Key& ExKey() { return WarmKeys()[3]; }
const Key& ChKey() {
  static const auto* key = new Key{"cloudhub-viewer", {}, kChClient};
  return *key;
}

std::string RandomKeyHex() {
  unsigned char bytes[kSealKeyBytes];
  EXPECT_EQ(RAND_bytes(bytes, sizeof(bytes)), 1);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

// The user app: the demo fixture's env-viewer-app, alice of Acme Corp.
constexpr char kViewerClient[] = "env-viewer-app";
constexpr char kViewerSecret[] = "env-viewer-fake-secret";
constexpr char kViewer[] = "viewer";
constexpr char kAlice[] = "alice.acme";
constexpr char kAlicePassword[] = "alice-demo-password";

struct ClusterOptions {
  std::string lease_ttl = "2s";
  // Sealing key ids, current first (files k1 and k2 in the secrets dir).
  std::vector<std::string> keys = {"k1"};
  // The user app `viewer` too (its grants in Redis).
  bool user_app = false;
};

// What one GetToken got.
struct Got {
  grpc::Status status;
  std::string token;  // A secret: compared, never printed.
};

// Runs `body(i)` for i in [0, n) on n threads and joins them.
void RunConcurrently(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) threads.emplace_back(body, i);
  for (std::thread& thread : threads) thread.join();
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    redis_ = RedisServerProcess::StartNew();
    ASSERT_NE(redis_, nullptr);

    absl::StatusOr<emulator::Fixture> fixture = emulator::LoadFixtureFile(
        absl::StrCat(TOKENBROKER_SOURCE_DIR, "/emulator/fixtures/demo.yaml"));
    ASSERT_THAT(fixture, IsOk());
    emulator_ = std::make_unique<emulator::Emulator>(*std::move(fixture));
    ASSERT_THAT(emulator_->Start({}), IsOk());

    const char* tmp = std::getenv("TMPDIR");
    std::string dir_template =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                     "/tokenbroker-replicas-XXXXXX");
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
    fs::create_directories(dir_ / "secrets");
    WriteFile(dir_ / "secrets" / "dc", "dc-secret-please-rotate\n");
    WriteFile(dir_ / "secrets" / "ex", "exchange-reader-fake-secret\n");
    WriteFile(dir_ / "secrets" / "ch", "cloudhub-viewer-fake-secret\n");
    WriteFile(dir_ / "secrets" / "viewer", absl::StrCat(kViewerSecret, "\n"));
    for (const char* id : {"k1", "k2"}) {
      key_hex_[id] = RandomKeyHex();
      WriteFile(dir_ / "secrets" / id, key_hex_[id] + "\n");
      fs::permissions(dir_ / "secrets" / id,
                      fs::perms::owner_read | fs::perms::owner_write);
    }
    for (int i = 0; i < kReplicas; ++i) {
      fs::path replica_dir = dir_ / absl::StrCat("replica-", i);
      fs::create_directories(replica_dir);
      replicas_.push_back(
          std::make_unique<BrokerProcess>(TOKEN_BROKER_BIN, replica_dir));
    }
  }

  void TearDown() override {
    for (auto& replica : replicas_) {
      if (replica->running()) (void)replica->Kill();
    }
    if (emulator_ != nullptr) emulator_->Stop();
    std::string logs;
    for (int i = 0; i < static_cast<int>(replicas_.size()); ++i) {
      absl::StrAppend(&logs,
                      replicas_[i]->AllLogs(absl::StrCat("replica ", i)));
    }
    // No secret or token in any log line (the brokers log at debug).
    for (const std::string& secret : Secrets()) {
      EXPECT_THAT(logs, Not(HasSubstr(secret)))
          << "a secret or token reached a broker log";
    }
    if (HasFailure() || std::getenv("SHOW_LOG") != nullptr) {
      for (const std::string& secret : Secrets()) {
        absl::StrReplaceAll({{secret, "[SECRET]"}}, &logs);
      }
      std::fputs(logs.c_str(), stderr);
    }
    replicas_.clear();
    redis_.reset();
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  // Every token a caller received, the client secrets and the sealing keys.
  std::vector<std::string> Secrets() const {
    std::vector<std::string> secrets(std::begin(kClientSecrets),
                                     std::end(kClientSecrets));
    secrets.push_back(kViewerSecret);
    secrets.push_back(kAlicePassword);
    for (const auto& [id, hex] : key_hex_) secrets.push_back(hex);
    absl::MutexLock lock(&mu_);
    secrets.insert(secrets.end(), tokens_.begin(), tokens_.end());
    return secrets;
  }

  std::string ConfigYaml(const ClusterOptions& options) const {
    const std::string secrets = (dir_ / "secrets").string();
    std::string keys;
    for (const std::string& id : options.keys) {
      absl::StrAppend(&keys, keys.empty() ? "" : ", ", "{id: ", id,
                      ", file: ", secrets, "/", id, "}");
    }
    const std::string base_url = emulator_->base_url();
    return absl::StrCat(
        "listen:\n  grpc: 127.0.0.1:0\n  admin_http: 127.0.0.1:0\n"
        "development:\n  insecure_plaintext: true\n"
        // Tokens of a few seconds (the emulator's lifetime in some tests).
        "cache:\n  min_lifetime: 1s\n"
        "apps:\n"
        "  - name: design-center\n    base_url: ",
        base_url, "\n    client_id: ", kDcClient,
        "\n    client_secret: {file: ", secrets,
        "/dc}\n"
        "    scopes: [view:design_center, view:environment, read:exchange]\n"
        "  - name: dc-scoped\n    base_url: ",
        base_url, "\n    client_id: ", kDcClient,
        "\n    client_secret: {file: ", secrets,
        "/dc}\n    send_scope: true\n"
        "    scopes: [view:design_center, view:environment, read:exchange]\n"
        "  - name: exchange-reader\n    base_url: ",
        base_url, "\n    client_id: ", kExClient,
        "\n    client_secret: {file: ", secrets,
        "/ex}\n    scopes: [read:exchange]\n"
        "  - name: cloudhub-viewer\n    base_url: ",
        base_url, "\n    client_id: ", kChClient,
        "\n    client_secret: {file: ", secrets,
        "/ch}\n    scopes: [read:applications]\n",
        options.user_app
            ? absl::StrCat("  - name: ", kViewer, "\n    base_url: ", base_url,
                           "\n    grant_type: authorization_code\n"
                           "    client_id: ",
                           kViewerClient,
                           "\n    client_secret: {file: ", secrets,
                           "/viewer}\n"
                           "    scopes: [view:environment]\n")
            : "",
        "callers:\n"
        "  - name: anonymous\n"
        "    admin: true\n"
        "    grants:\n"
        "      - {app: design-center, scopes: ['*']}\n"
        "      - {app: dc-scoped, scopes: ['*']}\n"
        "      - {app: exchange-reader, scopes: ['*']}\n"
        "      - {app: cloudhub-viewer, scopes: ['*']}\n",
        options.user_app ? absl::StrCat("      - {app: ", kViewer,
                                        ", scopes: ['*'], users: ['*']}\n")
                         : "",
        "shared_state:\n  redis:\n    address: ", redis_->address(),
        "\n    lease_ttl: ", options.lease_ttl, "\n    keys: [", keys, "]\n");
  }

  // Writes the config and starts every replica that is not running.
  void StartReplicas(const ClusterOptions& options = {}) {
    const fs::path config = dir_ / "broker.yaml";
    WriteFile(config, ConfigYaml(options));
    for (auto& replica : replicas_) {
      if (replica->running()) continue;
      ASSERT_THAT(replica->Start(config.string(), {"--log_level=debug"}),
                  IsOk());
    }
  }

  // Stops every replica (SIGTERM, a clean exit), all at once.
  void StopReplicas() {
    std::vector<absl::StatusOr<int>> codes(replicas_.size(), 0);
    RunConcurrently(static_cast<int>(replicas_.size()),
                    [&](int i) { codes[i] = replicas_[i]->Terminate(); });
    for (const absl::StatusOr<int>& code : codes) {
      ASSERT_THAT(code, IsOk());
      EXPECT_EQ(*code, 0);
    }
  }

  Got GetToken(int replica, const Key& key, int deadline_s = 30,
               const std::string& user = "") {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(deadline_s));
    pb::GetTokenRequest request;
    request.set_app(key.app);
    for (const std::string& scope : key.scopes) request.add_scopes(scope);
    request.set_user(user);
    pb::GetTokenResponse response;
    Got got;
    got.status =
        replicas_[replica]->broker().GetToken(&context, request, &response);
    got.token = response.access_token();
    if (got.status.ok()) {
      absl::MutexLock lock(&mu_);
      tokens_.insert(got.token);
    }
    return got;
  }

  // The token `replica` serves for `key`, or "" with a test failure.
  std::string TokenOf(int replica, const Key& key) {
    Got got = GetToken(replica, key);
    EXPECT_TRUE(got.status.ok())
        << "replica " << replica << " " << key.Name() << ": "
        << got.status.error_code() << " " << got.status.error_message();
    return got.token;
  }

  // Polls `replica` until it serves a token for `key` other than `old`;
  // returns it ("" if it never did, with a test failure).
  std::string AwaitNewToken(int replica, const Key& key,
                            const std::string& old) {
    std::string now;
    const bool changed = PollUntil(
        [&] {
          Got got = GetToken(replica, key);
          if (got.status.ok()) now = got.token;
          return got.status.ok() && got.token != old;
        },
        absl::Seconds(60), absl::Milliseconds(50));
    EXPECT_TRUE(changed) << "replica " << replica << " kept serving the old "
                         << key.Name() << " token; its shared state:\n"
                         << SharedStateMetrics(replica);
    return changed ? now : "";
  }

  grpc::Status Revoke(int replica, const std::string& app) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    pb::RevokeTokenRequest request;
    request.set_app(app);
    pb::RevokeTokenResponse response;
    return replicas_[replica]->admin().RevokeToken(&context, request,
                                                   &response);
  }

  int64_t TokenRequests(const std::string& client_id) const {
    emulator::Counters counters = emulator_->GetCounters();
    auto it = counters.token_requests_by_client.find(client_id);
    return it == counters.token_requests_by_client.end() ? 0 : it->second;
  }

  // The shared-state gauge of `replica` (-1 if it does not answer or does
  // not export it).
  double SharedStateUp(int replica) const {
    bool found = false;
    double value =
        MetricValue(replicas_[replica]->Metrics(), kSharedStateUp, &found);
    return found ? value : -1;
  }

  // The tokenbroker_shared_state_* lines of `replica`'s metrics (for
  // failure messages).
  std::string SharedStateMetrics(int replica) const {
    std::string lines;
    for (absl::string_view line :
         absl::StrSplit(replicas_[replica]->Metrics(), '\n')) {
      if (absl::StartsWith(line, "tokenbroker_shared_")) {
        absl::StrAppend(&lines, line, "\n");
      }
    }
    return lines;
  }

  // Whether `replica`'s gRPC health service says "shared-state" is SERVING
  // (true), NOT_SERVING (false); nullopt if it does not answer.
  std::optional<bool> SharedStateServing(int replica) const {
    auto health =
        grpc::health::v1::Health::NewStub(replicas_[replica]->NewChannel());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("shared-state");
    grpc::health::v1::HealthCheckResponse response;
    if (!health->Check(&context, request, &response).ok()) return std::nullopt;
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  // Started GetToken RPCs of `replica` (the interceptor's counter).
  double StartedGetTokens(int replica) const {
    return MetricValue(
        replicas_[replica]->Metrics(),
        "grpc_server_started_total{grpc_method=\"GetToken\",grpc_service="
        "\"anypoint.tokenbroker.v1.TokenBroker\"}");
  }

  // Every key name in Redis (SCAN 0 MATCH `pattern` COUNT 1000 to the end).
  std::vector<std::string> ScanKeys(const std::string& pattern = "*") const {
    std::vector<std::string> keys;
    std::string cursor = "0";
    do {
      absl::StatusOr<RedisReply> reply =
          redis_->Cli({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      EXPECT_THAT(reply, IsOk());
      if (!reply.ok() || reply->elements.size() != 2) break;
      cursor = reply->elements[0].str;
      for (const RedisReply& key : reply->elements[1].elements) {
        keys.push_back(key.str);
      }
    } while (cursor != "0");
    return keys;
  }

  // The token record keys of `app` (P "token:" app ":" H).
  std::vector<std::string> TokenRecords(const std::string& app) const {
    return ScanKeys(absl::StrCat(kPrefix, "token:", app, ":*"));
  }

  // The sealing key id of the token record at `key`
  // ("<fence>:<revgen>:<envelope>"), or "" with a test failure.
  std::string RecordKeyId(const std::string& key) const {
    absl::StatusOr<RedisReply> value = redis_->Cli({"GET", key});
    EXPECT_THAT(value, IsOk());
    if (!value.ok()) return "";
    std::vector<std::string> parts =
        absl::StrSplit(value->str, absl::MaxSplits(':', 2));
    EXPECT_EQ(parts.size(), 3u) << "a token record is <fence>:<revgen>:"
                                   "<envelope>";
    if (parts.size() != 3) return "";
    absl::StatusOr<std::string> id = KeyRing::KeyIdOf(parts[2]);
    EXPECT_THAT(id, IsOk());
    return id.value_or("");
  }

  // The one token record of `app`'s key, or "" with a test failure.
  std::string OnlyRecordOf(const std::string& app) const {
    std::vector<std::string> records = TokenRecords(app);
    EXPECT_EQ(records.size(), 1u) << app;
    return records.size() == 1 ? records[0] : "";
  }

  // The user grant of `viewer` in Redis (P "grant:viewer:" user_id ->
  // "<version>:<envelope>"), opened with k1 and its key name as associated
  // data; its refresh token joins the secrets checked everywhere. Version
  // -1 with a test failure if it cannot be read.
  struct StoredGrant {
    int64_t version = -1;
    UserGrant grant;
  };
  StoredGrant ReadGrant() {
    StoredGrant stored;
    std::vector<std::string> names =
        ScanKeys(absl::StrCat(kPrefix, "grant:", kViewer, ":*"));
    EXPECT_EQ(names.size(), 1u) << "one grant of viewer in Redis";
    if (names.size() != 1) return stored;
    absl::StatusOr<RedisReply> value = redis_->Cli({"GET", names[0]});
    EXPECT_THAT(value, IsOk());
    if (!value.ok()) return stored;
    std::vector<std::string> parts =
        absl::StrSplit(value->str, absl::MaxSplits(':', 1));
    int64_t version = 0;
    EXPECT_TRUE(parts.size() == 2 && absl::SimpleAtoi(parts[0], &version));
    if (parts.size() != 2) return stored;
    absl::StatusOr<SealKey> key =
        MakeSealKey("k1", absl::HexStringToBytes(key_hex_["k1"]));
    EXPECT_THAT(key, IsOk());
    if (!key.ok()) return stored;
    absl::StatusOr<std::shared_ptr<const KeyRing>> ring =
        KeyRing::Create({*std::move(key)});
    EXPECT_THAT(ring, IsOk());
    if (!ring.ok()) return stored;
    absl::StatusOr<std::string> json = (*ring)->Open(parts[1], names[0]);
    EXPECT_THAT(json, IsOk()) << "the grant does not open with its key name";
    if (!json.ok()) return stored;
    absl::StatusOr<UserGrant> grant = ParseGrantRecordJson(&*json);
    EXPECT_THAT(grant, IsOk());
    if (!grant.ok()) return stored;
    EXPECT_EQ(grant->version, version) << "clear and sealed versions differ";
    {
      absl::MutexLock lock(&mu_);
      tokens_.insert(grant->refresh_token);
    }
    stored.version = version;
    stored.grant = *std::move(grant);
    return stored;
  }

  grpc::Status AdminRefresh(int replica, const std::string& app,
                            const std::string& user = "") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    pb::RefreshTokenRequest request;
    request.set_app(app);
    request.set_user(user);
    pb::RefreshTokenResponse response;
    return replicas_[replica]->admin().RefreshToken(&context, request,
                                                    &response);
  }

  int64_t RefreshTokenRequests() const {
    emulator::Counters counters = emulator_->GetCounters();
    return counters.token_requests_by_grant_type["refresh_token"];
  }

  std::unique_ptr<RedisServerProcess> redis_;
  std::unique_ptr<emulator::Emulator> emulator_;
  fs::path dir_;
  std::map<std::string, std::string> key_hex_;
  std::vector<std::unique_ptr<BrokerProcess>> replicas_;

  mutable absl::Mutex mu_;
  std::set<std::string> tokens_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ReplicasTest, OneTokenRequestPerKeyPerCycleAcrossThreeReplicas) {
  // Tokens of 10 s: refreshed ahead at about 2/3 of that, by one replica.
  emulator_->SetTokenLifetime(10);
  ASSERT_NO_FATAL_FAILURE(StartReplicas());
  const std::vector<Key>& keys = WarmKeys();

  // Cold: 8 concurrent callers per key on each replica.
  constexpr int kCallersPerKey = 8;
  const int per_replica = static_cast<int>(keys.size()) * kCallersPerKey;
  std::vector<Got> got(kReplicas * per_replica);
  RunConcurrently(static_cast<int>(got.size()), [&](int i) {
    got[i] = GetToken(i / per_replica, keys[i % keys.size()]);
  });
  std::map<std::string, std::set<std::string>> served;  // key -> tokens
  for (int i = 0; i < static_cast<int>(got.size()); ++i) {
    ASSERT_TRUE(got[i].status.ok())
        << got[i].status.error_code() << " " << got[i].status.error_message();
    served[keys[i % keys.size()].Name()].insert(got[i].token);
  }
  for (const Key& key : keys) {
    EXPECT_EQ(served[key.Name()].size(), 1u)
        << "replicas served different tokens for " << key.Name();
  }
  // Three keys of design-center-app, one of exchange-reader.
  EXPECT_EQ(TokenRequests(kDcClient), 3);
  EXPECT_EQ(TokenRequests(kExClient), 1);

  // One refresh cycle: every replica ends up serving a new token, the same
  // one, and each key was fetched once more.
  std::map<std::string, std::set<std::string>> refreshed;
  for (int replica = 0; replica < kReplicas; ++replica) {
    for (const Key& key : keys) {
      refreshed[key.Name()].insert(
          AwaitNewToken(replica, key, *served[key.Name()].begin()));
    }
  }
  for (const Key& key : keys) {
    EXPECT_EQ(refreshed[key.Name()].size(), 1u)
        << "replicas refreshed " << key.Name() << " apart";
  }
  EXPECT_EQ(TokenRequests(kDcClient), 6);
  EXPECT_EQ(TokenRequests(kExClient), 2);
}

TEST_F(ReplicasTest, ALeaseHolderKilledMidFetchDelaysTheOthersOnly) {
  // Waiters give up on a live holder after two lease lifetimes (then fetch
  // alone); 2 s leaves the kill below ample room on a loaded machine.
  ClusterOptions options;
  options.lease_ttl = "2s";
  ASSERT_NO_FATAL_FAILURE(StartReplicas(options));
  // The first token request hangs: replica 0 holds the lease meanwhile.
  emulator::Fault slow;
  slow.endpoint = "token";
  slow.kind = emulator::FaultKind::kLatency;
  slow.count = 1;
  slow.latency_ms = 120000;
  emulator_->AddFault(slow);

  Got holder;
  std::thread holder_call([&] { holder = GetToken(0, DcKey(), 60); });
  absl::Cleanup join_holder = [&] { holder_call.join(); };
  ASSERT_TRUE(PollUntil([&] { return TokenRequests(kDcClient) == 1; }))
      << "replica 0 did not start its fetch";

  // Replicas 1 and 2 wait for the holder's token.
  std::vector<Got> waiters(2);
  std::thread waiter_calls([&] {
    RunConcurrently(2, [&](int i) { waiters[i] = GetToken(1 + i, DcKey()); });
  });
  absl::Cleanup join_waiters = [&] { waiter_calls.join(); };
  ASSERT_TRUE(PollUntil(
      [&] { return StartedGetTokens(1) >= 1 && StartedGetTokens(2) >= 1; }));
  EXPECT_EQ(TokenRequests(kDcClient), 1)
      << "a waiter fetched beside the holder";

  ASSERT_THAT(replicas_[0]->Kill(), IsOk());
  std::move(join_waiters).Invoke();
  std::move(join_holder).Invoke();

  EXPECT_FALSE(holder.status.ok()) << "the killed replica answered";
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(waiters[i].status.ok())
        << "replica " << 1 + i << ": " << waiters[i].status.error_code() << " "
        << waiters[i].status.error_message();
  }
  EXPECT_EQ(waiters[0].token, waiters[1].token);
  // The holder's hung request and one more, by whichever took over.
  EXPECT_EQ(TokenRequests(kDcClient), 2);
}

TEST_F(ReplicasTest, RedisStoppedAndRestartedWithCallersRunning) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas());
  const std::vector<Key>& keys = WarmKeys();
  for (int replica = 0; replica < kReplicas; ++replica) {
    for (const Key& key : keys) ASSERT_FALSE(TokenOf(replica, key).empty());
    ASSERT_TRUE(PollUntil([&] { return SharedStateUp(replica) == 1; }))
        << "replica " << replica << " " << kSharedStateUp << " is "
        << SharedStateUp(replica);
  }
  ASSERT_EQ(TokenRequests(kDcClient), 3);
  ASSERT_EQ(TokenRequests(kExClient), 1);

  // Callers on every replica, all along.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0};
  absl::Mutex failures_mu;
  std::vector<std::string> failures;
  std::vector<std::thread> callers;
  auto stop_callers = absl::MakeCleanup([&] {
    stop = true;
    for (std::thread& caller : callers) caller.join();
  });
  for (int i = 0; i < kReplicas * 2; ++i) {
    callers.emplace_back([&, i] {
      for (int n = 0; !stop; ++n) {
        const Key& key = keys[n % keys.size()];
        Got got = GetToken(i % kReplicas, key, 10);
        if (got.status.ok()) {
          ++ok;
          continue;
        }
        absl::MutexLock lock(&failures_mu);
        failures.push_back(absl::StrCat(
            "replica ", i % kReplicas, " ", key.Name(), ": ",
            got.status.error_code(), " ", got.status.error_message()));
      }
    });
  }
  ASSERT_TRUE(PollUntil([&] { return ok >= 100; }));

  ASSERT_THAT(redis_->Stop(), IsOk());
  for (int replica = 0; replica < kReplicas; ++replica) {
    EXPECT_TRUE(PollUntil([&] { return SharedStateUp(replica) == 0; }))
        << "replica " << replica << " does not show its shared state down";
    EXPECT_TRUE(PollUntil([&] {
      return SharedStateServing(replica) == std::optional<bool>(false);
    })) << "replica "
        << replica << " health: shared-state still SERVING";
  }
  // A key nobody had yet, asked on every replica while Redis is down: each
  // replica fetches it on its own, once (no stampede).
  std::vector<Got> cold(kReplicas * 10);
  RunConcurrently(static_cast<int>(cold.size()),
                  [&](int i) { cold[i] = GetToken(i % kReplicas, ChKey()); });
  for (const Got& got : cold) {
    EXPECT_TRUE(got.status.ok())
        << got.status.error_code() << " " << got.status.error_message();
  }
  EXPECT_GE(TokenRequests(kChClient), 1);
  EXPECT_LE(TokenRequests(kChClient), kReplicas);
  const int64_t ok_while_down = ok;
  ASSERT_TRUE(PollUntil([&] { return ok >= ok_while_down + 100; }));

  ASSERT_THAT(redis_->Start(), IsOk());
  for (int replica = 0; replica < kReplicas; ++replica) {
    EXPECT_TRUE(PollUntil([&] { return SharedStateUp(replica) == 1; }))
        << "replica " << replica << " did not converge after Redis came back";
    EXPECT_TRUE(PollUntil([&] {
      return SharedStateServing(replica) == std::optional<bool>(true);
    })) << "replica "
        << replica << " health: shared-state not SERVING";
  }
  const int64_t ok_after = ok;
  ASSERT_TRUE(PollUntil([&] { return ok >= ok_after + 100; }));
  std::move(stop_callers).Invoke();
  {
    absl::MutexLock lock(&failures_mu);
    EXPECT_TRUE(failures.empty())
        << failures.size() << " failed GetToken, the first: " << failures[0];
  }
  // While they held valid tokens, nothing was fetched again.
  EXPECT_EQ(TokenRequests(kDcClient), 3);
  EXPECT_EQ(TokenRequests(kExClient), 1);

  // Converged: a revocation reaches every replica again, and the new token
  // is fetched once for all of them (of the key each replica fetched on its
  // own while Redis was down).
  const int64_t ch_before = TokenRequests(kChClient);
  std::vector<std::string> old_ch(kReplicas);
  for (int replica = 0; replica < kReplicas; ++replica) {
    old_ch[replica] = TokenOf(replica, ChKey());
  }
  ASSERT_TRUE(Revoke(0, ChKey().app).ok());
  std::set<std::string> fresh;
  for (int replica = 0; replica < kReplicas; ++replica) {
    fresh.insert(AwaitNewToken(replica, ChKey(), old_ch[replica]));
  }
  EXPECT_EQ(fresh.size(), 1u);
  EXPECT_EQ(TokenRequests(kChClient), ch_before + 1);
}

// Redis restarted empty while every replica held a token of fence 1: the
// next fetch's record is of fence 1 again (the counter started over), and a
// replica must adopt it rather than fetch too.
TEST_F(ReplicasTest, AfterRedisLostItsDataAFetchIsSingleAgain) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas());
  std::string dc;
  for (int replica = 0; replica < kReplicas; ++replica) {
    dc = TokenOf(replica, DcKey());
  }
  ASSERT_EQ(TokenRequests(kDcClient), 1);
  ASSERT_THAT(redis_->Restart(), IsOk());
  for (int replica = 0; replica < kReplicas; ++replica) {
    ASSERT_TRUE(PollUntil([&] { return SharedStateUp(replica) == 1; }));
  }
  ASSERT_TRUE(Revoke(0, DcKey().app).ok());
  std::set<std::string> fresh;
  for (int replica = 0; replica < kReplicas; ++replica) {
    fresh.insert(AwaitNewToken(replica, DcKey(), dc));
  }
  EXPECT_EQ(fresh.size(), 1u) << "the replicas fetched apart";
  EXPECT_EQ(TokenRequests(kDcClient), 2);
}

TEST_F(ReplicasTest, ARevocationOnOneReplicaReachesTheOtherTwo) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas());
  std::string dc, ex;
  for (int replica = 0; replica < kReplicas; ++replica) {
    dc = TokenOf(replica, DcKey());
    ex = TokenOf(replica, ExKey());
  }
  ASSERT_EQ(TokenRequests(kDcClient), 1);
  ASSERT_EQ(TokenRequests(kExClient), 1);

  const absl::Time revoked_at = absl::Now();
  ASSERT_TRUE(Revoke(1, DcKey().app).ok());
  // The others' next tokens differ (each polled until it does; how long it
  // took is reported, not asserted).
  std::set<std::string> fresh;
  for (int replica : {0, 2, 1}) {
    fresh.insert(AwaitNewToken(replica, DcKey(), dc));
    RecordProperty(
        absl::StrCat("replica_", replica, "_new_token_ms"),
        absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - revoked_at)));
  }
  EXPECT_EQ(fresh.size(), 1u) << "the replicas fetched apart";
  EXPECT_EQ(TokenRequests(kDcClient), 2);
  // Another app's token is untouched.
  for (int replica = 0; replica < kReplicas; ++replica) {
    EXPECT_EQ(TokenOf(replica, ExKey()), ex);
  }
  EXPECT_EQ(TokenRequests(kExClient), 1);
}

TEST_F(ReplicasTest, ARevocationAfterRedisLostItsDataStillReachesAll) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas());
  std::string dc;
  for (int replica = 0; replica < kReplicas; ++replica) {
    dc = TokenOf(replica, DcKey());
  }
  ASSERT_TRUE(Revoke(0, DcKey().app).ok());
  std::set<std::string> revoked_once;
  for (int replica = 0; replica < kReplicas; ++replica) {
    revoked_once.insert(AwaitNewToken(replica, DcKey(), dc));
  }
  ASSERT_EQ(revoked_once.size(), 1u);
  dc = *revoked_once.begin();
  ASSERT_EQ(TokenRequests(kDcClient), 2);
  // Redis restarts empty (no persistence, or a failover that lost writes):
  // revocation generations start again from zero.
  ASSERT_THAT(redis_->Restart(), IsOk());
  for (int replica = 0; replica < kReplicas; ++replica) {
    ASSERT_TRUE(PollUntil([&] { return SharedStateUp(replica) == 1; }));
  }
  ASSERT_TRUE(Revoke(2, DcKey().app).ok());
  std::set<std::string> fresh;
  for (int replica = 0; replica < kReplicas; ++replica) {
    fresh.insert(AwaitNewToken(replica, DcKey(), dc));
  }
  EXPECT_EQ(fresh.size(), 1u);
  EXPECT_EQ(TokenRequests(kDcClient), 3);
}

TEST_F(ReplicasTest, AKeyRotationOpensOldRecordsAndSealsNewOnes) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas());  // keys [k1]
  std::string dc, ex;
  for (int replica = 0; replica < kReplicas; ++replica) {
    dc = TokenOf(replica, DcKey());
    ex = TokenOf(replica, ExKey());
  }
  const std::string dc_record = OnlyRecordOf(DcKey().app);
  const std::string ex_record = OnlyRecordOf(ExKey().app);
  ASSERT_FALSE(dc_record.empty());
  ASSERT_FALSE(ex_record.empty());
  EXPECT_EQ(RecordKeyId(dc_record), "k1");
  EXPECT_EQ(RecordKeyId(ex_record), "k1");

  // Rolled out with k2 first: every replica restarts with [k2, k1].
  ASSERT_NO_FATAL_FAILURE(StopReplicas());
  ClusterOptions rotated;
  rotated.keys = {"k2", "k1"};
  ASSERT_NO_FATAL_FAILURE(StartReplicas(rotated));
  // The records sealed with k1 still open: the tokens are adopted, not
  // fetched again.
  for (int replica = 0; replica < kReplicas; ++replica) {
    EXPECT_EQ(TokenOf(replica, DcKey()), dc);
  }
  EXPECT_EQ(TokenRequests(kDcClient), 1);
  // New writes are sealed with k2: a new key, and a revoked one fetched
  // again.
  for (int replica = 0; replica < kReplicas; ++replica) {
    EXPECT_FALSE(TokenOf(replica, ChKey()).empty());
  }
  EXPECT_EQ(TokenRequests(kChClient), 1);
  EXPECT_EQ(RecordKeyId(OnlyRecordOf(ChKey().app)), "k2");
  ASSERT_TRUE(Revoke(0, ExKey().app).ok());
  for (int replica = 0; replica < kReplicas; ++replica) {
    AwaitNewToken(replica, ExKey(), ex);
  }
  EXPECT_EQ(TokenRequests(kExClient), 2);
  EXPECT_EQ(RecordKeyId(OnlyRecordOf(ExKey().app)), "k2");

  // k1 retired too early on one replica: a record it cannot open is
  // fetched again, not an error.
  ASSERT_THAT(replicas_[0]->Kill(), IsOk());
  WriteFile(dir_ / "broker.yaml", ConfigYaml({"2s", {"k2"}}));
  ASSERT_THAT(replicas_[0]->Start((dir_ / "broker.yaml").string(),
                                  {"--log_level=debug"}),
              IsOk());
  EXPECT_FALSE(TokenOf(0, DcKey()).empty());
  EXPECT_EQ(RecordKeyId(OnlyRecordOf(DcKey().app)), "k2");
}

// Reads every command Redis runs (MONITOR) on a plain socket of its own
// until stopped: what each replica sends, script bodies and PUBLISH
// messages included.
class RedisMonitor {
 public:
  explicit RedisMonitor(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 ||
        connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ADD_FAILURE() << "cannot connect to Redis for MONITOR";
      return;
    }
    const char kMonitor[] = "MONITOR\r\n";
    if (write(fd_, kMonitor, sizeof(kMonitor) - 1) !=
        static_cast<ssize_t>(sizeof(kMonitor) - 1)) {
      ADD_FAILURE() << "cannot send MONITOR";
      return;
    }
    reader_ = std::thread([this] { Read(); });
  }
  ~RedisMonitor() { Stop(); }

  // Stops reading; returns everything read.
  std::string Stop() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return text_;
  }

 private:
  void Read() {
    char buffer[16384];
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      ssize_t n = read(fd_, buffer, sizeof(buffer));
      if (n <= 0) return;
      text_.append(buffer, static_cast<size_t>(n));
    }
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::string text_;  // Written by reader_ only, read after it joined.
  std::thread reader_;
};

TEST_F(ReplicasTest, NoTokenOrSecretInAnyRedisKeyValueOrCommand) {
  RedisMonitor monitor(redis_->port());
  ASSERT_NO_FATAL_FAILURE(StartReplicas());
  std::vector<Key> keys = WarmKeys();
  keys.push_back(ChKey());
  for (int replica = 0; replica < kReplicas; ++replica) {
    for (const Key& key : keys) ASSERT_FALSE(TokenOf(replica, key).empty());
  }
  // A revocation and a forced refresh write and publish too.
  const std::string ex = TokenOf(0, ExKey());
  ASSERT_TRUE(Revoke(1, ExKey().app).ok());
  for (int replica = 0; replica < kReplicas; ++replica) {
    AwaitNewToken(replica, ExKey(), ex);
  }
  ASSERT_TRUE(AdminRefresh(2, DcKey().app).ok());
  EXPECT_FALSE(TokenOf(2, DcKey()).empty());
  const std::string commands = monitor.Stop();

  // Every key and value the broker wrote.
  const std::vector<std::string> names = ScanKeys();
  std::string contents;
  int token_records = 0;
  for (const std::string& name : names) {
    EXPECT_THAT(name, StartsWith(kPrefix));
    if (absl::StartsWith(name, absl::StrCat(kPrefix, "token:"))) {
      ++token_records;
    }
    absl::StatusOr<RedisReply> type = redis_->Cli({"TYPE", name});
    ASSERT_THAT(type, IsOk());
    std::vector<std::string> read;
    if (type->str == "string") {
      read = {"GET", name};
    } else if (type->str == "hash") {
      read = {"HGETALL", name};
    } else if (type->str == "list") {
      read = {"LRANGE", name, "0", "-1"};
    } else if (type->str == "set") {
      read = {"SMEMBERS", name};
    } else if (type->str == "zset") {
      read = {"ZRANGE", name, "0", "-1", "WITHSCORES"};
    } else {
      ADD_FAILURE() << name << " is a " << type->str;
      continue;
    }
    absl::StatusOr<RedisReply> value = redis_->Cli(read);
    ASSERT_THAT(value, IsOk());
    absl::StrAppend(&contents, name, "\n", value->str, "\n");
    for (const RedisReply& element : value->elements) {
      absl::StrAppend(&contents, element.str, "\n");
    }
  }
  EXPECT_GE(token_records, static_cast<int>(keys.size()))
      << "the scan found fewer token records than keys";
  EXPECT_THAT(commands, HasSubstr("\"PUBLISH\"")) << "MONITOR saw no events";

  const std::vector<std::string> secrets = Secrets();
  ASSERT_GE(secrets.size(), std::size(kClientSecrets) + keys.size());
  for (const std::string& secret : secrets) {
    EXPECT_THAT(contents, Not(HasSubstr(secret)))
        << "a token or secret is stored in Redis in plaintext";
    EXPECT_THAT(commands, Not(HasSubstr(secret)))
        << "a token or secret was sent to Redis in plaintext";
  }
}

TEST_F(ReplicasTest, AUserConnectedOnOneReplicaIsServedByAllRotatedOnce) {
  ClusterOptions options;
  options.user_app = true;
  ASSERT_NO_FATAL_FAILURE(StartReplicas(options));
  ASSERT_THAT(emulator_->SetRotateRefreshTokens(kViewerClient, true), IsOk());
  for (const auto& replica : replicas_) {
    ASSERT_THAT(emulator_->AddRedirectUri(
                    kViewerClient,
                    absl::StrCat("http://127.0.0.1:", replica->admin_port(),
                                 "/oauth/callback")),
                IsOk());
  }

  // alice connects through replica 0.
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    pb::CreateConnectLinkRequest request;
    request.set_app(kViewer);
    pb::CreateConnectLinkResponse link;
    grpc::Status status =
        replicas_[0]->admin().CreateConnectLink(&context, request, &link);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ScriptedBrowser browser;
    absl::StatusOr<BrowserResponse> page =
        browser.SignInAndConsent(link.url(), kAlice, kAlicePassword, true);
    ASSERT_THAT(page, IsOk());
    ASSERT_EQ(page->status, 200) << page->body;
  }
  const StoredGrant connected = ReadGrant();
  ASSERT_GE(connected.version, 1);
  EXPECT_EQ(connected.grant.username, kAlice);
  // Every rotation is stored once: the stored version grows by one per
  // refresh_token request, and no replica ever presents a refresh token
  // that was already rotated (the emulator would revoke the grant).
  auto expect_each_rotation_stored_once = [&](const std::string& when) {
    StoredGrant now = ReadGrant();
    EXPECT_EQ(now.version - connected.version, RefreshTokenRequests()) << when;
    EXPECT_EQ(emulator_->GetCounters().refresh_token_reuse_detected, 0) << when;
  };

  // Usable from every replica.
  const Key viewer{kViewer, {}, kViewerClient};
  for (int replica = 0; replica < kReplicas; ++replica) {
    Got got = GetToken(replica, viewer, 30, kAlice);
    EXPECT_TRUE(got.status.ok())
        << "replica " << replica << ": " << got.status.error_code() << " "
        << got.status.error_message();
  }
  expect_each_rotation_stored_once("after GetToken on every replica");

  // Forced refreshes on one replica, then another, then all at once.
  const int64_t before = RefreshTokenRequests();
  ASSERT_TRUE(AdminRefresh(1, kViewer, kAlice).ok());
  expect_each_rotation_stored_once("after a refresh on replica 1");
  ASSERT_TRUE(AdminRefresh(2, kViewer, kAlice).ok());
  expect_each_rotation_stored_once("after a refresh on replica 2");
  EXPECT_GE(RefreshTokenRequests(), before + 1);
  std::vector<grpc::Status> refreshed(kReplicas);
  RunConcurrently(kReplicas, [&](int i) {
    refreshed[i] = AdminRefresh(i, kViewer, kAlice);
  });
  for (const grpc::Status& status : refreshed) {
    EXPECT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
  }
  expect_each_rotation_stored_once("after refreshes on all at once");

  // The grant still works everywhere and is alive at the emulator.
  for (int replica = 0; replica < kReplicas; ++replica) {
    EXPECT_TRUE(GetToken(replica, viewer, 30, kAlice).status.ok());
  }
  int live = 0;
  for (const emulator::GrantInfo& grant : emulator_->ListGrants()) {
    if (grant.client_id != kViewerClient) continue;
    ++live;
    EXPECT_LE(grant.live_refresh_tokens, 2);
  }
  EXPECT_EQ(live, 1);
}

}  // namespace
}  // namespace tokenbroker
