// A crash at any step of a refresh-token rotation loses no grant (issue 12,
// point 4). The emulator rotates refresh tokens and holds the user's real
// grant; the broker is the real binary, killed with SIGKILL by its hidden
// --crash_point flag at each step of a rotation (service/common/
// crash_point.h), then restarted: the grant must still work, the store must
// hold the refresh token the step says, and the broker must never present a
// refresh token the emulator saw spent (that would revoke the whole grant).
//
// Each restarted broker rotates twice (GetToken, then an admin refresh), so
// the first of its two new refresh tokens is spent at the emulator when it
// stops: a rotation it failed to store would make the next start present a
// spent token, which the emulator refuses and punishes.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "openssl/rand.h"
#include "openssl/sha.h"
#include "service/common/read_file.h"
#include "service/store/file_grant_store.h"
#include "service/store/grant_store.h"
#include "service/store/sealed_box.h"
#include "tests/emulator/callback_server.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/scripted_browser.h"
#include "tests/testing/status_matchers.h"

extern char** environ;

namespace tokenbroker {
namespace {

namespace fs = std::filesystem;
namespace pb = anypoint::tokenbroker::v1;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::tokenbroker::testing::BrowserResponse;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::ScriptedBrowser;

constexpr char kClientId[] = "env-viewer-app";
constexpr char kClientSecret[] = "env-viewer-fake-secret";  // the fixture's
constexpr char kUsername[] = "alice.acme";
constexpr char kPassword[] = "alice-demo-password";
constexpr char kApp[] = "viewer";

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

// The file's content, or "" if it cannot be read (yet).
std::string Contents(const fs::path& path) {
  return ReadFile(path.string()).value_or("");
}

std::string RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  EXPECT_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                       static_cast<int>(n)),
            1);
  return bytes;
}

// RFC 7636 4.2: BASE64URL(SHA256(verifier)) without padding.
std::string S256(const std::string& verifier) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()),
         verifier.size(), digest);
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string Enc(const std::string& s) {
  return httplib::detail::encode_query_param(s);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// What the grant store directory holds, read from a copy of it (so that
// the leftover temporary files the broker must clean up stay in place).
struct StoreContent {
  std::vector<UserGrant> grants;
  std::vector<std::string> problems;
  int temp_files = 0;  // `*.tmp.*` files in the directory itself
};

class RotationCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir_template =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                     "/tokenbroker-rotation-crash-XXXXXX");
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;

    absl::StatusOr<emulator::Fixture> fixture = emulator::LoadFixtureFile(
        absl::StrCat(TOKENBROKER_SOURCE_DIR, "/emulator/fixtures/demo.yaml"));
    ASSERT_THAT(fixture, IsOk());
    emulator_ = std::make_unique<emulator::Emulator>(*std::move(fixture));
    ASSERT_THAT(emulator_->Start({}), IsOk());
    ASSERT_THAT(emulator_->SetRotateRefreshTokens(kClientId, true), IsOk());
    ASSERT_THAT(emulator_->AddRedirectUri(kClientId, callback_.callback_url()),
                IsOk());

    fs::create_directories(dir_ / "secrets");
    WriteFile(dir_ / "secrets" / "viewer", absl::StrCat(kClientSecret, "\n"));
    key_hex_ = absl::BytesToHexString(RandomBytes(kSealKeyBytes));
    WriteFile(dir_ / "secrets" / "grant.key", key_hex_ + "\n");
    fs::permissions(dir_ / "secrets" / "grant.key",
                    fs::perms::owner_read | fs::perms::owner_write);
    absl::StatusOr<SealKey> key =
        ReadSealKeyFile("k1", (dir_ / "secrets" / "grant.key").string());
    ASSERT_THAT(key, IsOk());
    absl::StatusOr<std::shared_ptr<const KeyRing>> ring =
        KeyRing::Create({*std::move(key)});
    ASSERT_THAT(ring, IsOk());
    ring_ = *std::move(ring);
    WriteFile(dir_ / "broker.yaml", ConfigYaml());

    ASSERT_NO_FATAL_FAILURE(ConnectAlice());
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (emulator_ != nullptr) emulator_->Stop();
    if (HasFailure() || std::getenv("SHOW_LOG") != nullptr) {
      for (int run = 1; run <= runs_; ++run) {
        std::string log = Contents(LogPath(run));
        for (const std::string& secret : Secrets()) {
          if (!secret.empty())
            absl::StrReplaceAll({{secret, "[SECRET]"}}, &log);
        }
        std::fprintf(stderr, "---- broker run %d ----\n%s", run, log.c_str());
      }
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Step 1 and 2 of the scenario: alice signs in and consents in a
  // (scripted) browser, the code is exchanged with its PKCE verifier, and
  // the grant is written to the store as the broker's callback would.
  void ConnectAlice() {
    const std::string verifier =
        absl::WebSafeBase64Escape(RandomBytes(32));  // 43 characters
    const std::string state = absl::BytesToHexString(RandomBytes(16));
    const std::string authorize = absl::StrCat(
        emulator_->base_url(),
        "/accounts/api/v2/oauth2/authorize?response_type=code&client_id=",
        kClientId, "&redirect_uri=", Enc(callback_.callback_url()),
        "&scope=", Enc("view:environment offline_access"), "&state=", state,
        "&code_challenge=", S256(verifier), "&code_challenge_method=S256");
    ScriptedBrowser browser;
    absl::StatusOr<BrowserResponse> last =
        browser.SignInAndConsent(authorize, kUsername, kPassword, true);
    ASSERT_THAT(last, IsOk());
    const std::vector<emulator::CallbackServer::Callback> callbacks =
        callback_.callbacks();
    ASSERT_EQ(callbacks.size(), 1u)
        << "the flow stopped at " << last->url << ": " << last->body;
    std::map<std::string, std::string> query = callbacks[0].query;
    ASSERT_EQ(query["state"], state);
    ASSERT_FALSE(query["code"].empty()) << "error: " << query["error"];

    httplib::Client client("127.0.0.1", emulator_->port());
    httplib::Result exchanged = client.Post(
        "/accounts/api/v2/oauth2/token",
        absl::StrCat("grant_type=authorization_code&code=", Enc(query["code"]),
                     "&redirect_uri=", Enc(callback_.callback_url()),
                     "&code_verifier=", verifier, "&client_id=", kClientId,
                     "&client_secret=", kClientSecret),
        "application/x-www-form-urlencoded");
    ASSERT_TRUE(exchanged);
    ASSERT_EQ(exchanged->status, 200) << exchanged->body;
    const json tokens = json::parse(exchanged->body, nullptr, false);
    ASSERT_TRUE(tokens.is_object());
    const std::string access = tokens.value("access_token", "");
    const std::string refresh = tokens.value("refresh_token", "");
    ASSERT_FALSE(access.empty());
    ASSERT_FALSE(refresh.empty()) << "no refresh token (offline_access)";
    access_tokens_.push_back(access);
    refresh_tokens_.push_back(refresh);

    // Who the user is: userinfo, as the broker's callback learns it.
    httplib::Result userinfo =
        client.Get("/accounts/api/v2/oauth2/userinfo",
                   {{"Authorization", absl::StrCat("Bearer ", access)}});
    ASSERT_TRUE(userinfo);
    ASSERT_EQ(userinfo->status, 200) << userinfo->body;
    const json me = json::parse(userinfo->body, nullptr, false);
    ASSERT_TRUE(me.is_object());
    user_id_ = me.value("sub", "");
    org_id_ = me.value("organization_id", "");
    ASSERT_FALSE(user_id_.empty());
    ASSERT_FALSE(org_id_.empty());
    ASSERT_EQ(me.value("username", ""), kUsername);

    UserGrant grant;
    grant.app = kApp;
    grant.user_id = user_id_;
    grant.username = kUsername;
    grant.refresh_token = refresh;
    grant.scopes = {"offline_access", "view:environment"};
    grant.connected_at = absl::Now();
    grant.updated_at = grant.connected_at;
    grant.version = 1;
    // The store holds a lock on the directory while it lives: gone before
    // the broker starts.
    absl::StatusOr<std::unique_ptr<FileGrantStore>> store =
        FileGrantStore::Open(GrantsDir().string(), ring_);
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Put(grant), IsOk());
  }

  fs::path GrantsDir() const { return dir_ / "grants"; }
  fs::path LogPath(int run) const {
    return dir_ / absl::StrCat("broker-", run, ".log");
  }

  std::string ConfigYaml() const {
    return absl::StrCat(
        "listen:\n  grpc: 127.0.0.1:0\n  admin_http: 127.0.0.1:0\n"
        "development:\n  insecure_plaintext: true\n"
        "apps:\n"
        "  - name: ",
        kApp, "\n    base_url: ", emulator_->base_url(),
        "\n    grant_type: authorization_code\n"
        "    client_id: ",
        kClientId,
        "\n    client_secret: {file: ", (dir_ / "secrets" / "viewer").string(),
        "}\n    scopes: [view:environment]\n"
        "grant_store:\n  directory: ",
        GrantsDir().string(),
        "\n  keys: [{id: k1, file: ", (dir_ / "secrets" / "grant.key").string(),
        "}]\n"
        "callers:\n"
        "  - name: anonymous\n"
        "    admin: true\n"
        "    grants:\n"
        "      - app: ",
        kApp,
        "\n        scopes: ['*']\n        users: ['*']\n"
        "        routes: ['GET /accounts/api/organizations/*/environments']\n");
  }

  // Starts the broker (armed at `crash_point` unless empty) and waits until
  // it listens; its stderr goes to LogPath(run).
  void StartBroker(const std::string& crash_point) {
    ++runs_;
    for (const char* name : {"grpc.port", "admin.port"}) {
      std::error_code ignored;
      fs::remove(dir_ / name, ignored);
    }
    std::vector<std::string> args = {
        TOKEN_BROKER_BIN, "--config=" + (dir_ / "broker.yaml").string(),
        "--port_file=" + (dir_ / "grpc.port").string(),
        "--admin_port_file=" + (dir_ / "admin.port").string(),
        "--watch_config=false",
        // Every log line the broker has is checked for secrets below.
        "--log_level=debug"};
    if (!crash_point.empty()) args.push_back("--crash_point=" + crash_point);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     LogPath(runs_).c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    const int spawned =
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(spawned, 0);

    int port = 0;
    bool exited = false;
    ASSERT_TRUE(PollUntil([&] {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited = true;
        pid_ = 0;
        return true;
      }
      return absl::SimpleAtoi(
                 absl::StripAsciiWhitespace(Contents(dir_ / "grpc.port")),
                 &port) &&
             port > 0;
    })) << "the broker did not start";
    ASSERT_FALSE(exited) << "the broker exited at start: "
                         << Contents(LogPath(runs_));
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                             grpc::InsecureChannelCredentials(),
                                             channel_args);
    stub_ = pb::TokenBroker::NewStub(channel);
    admin_ = pb::BrokerAdmin::NewStub(channel);
  }

  // Waits (bounded) for the broker to end; its wait status, or -1.
  int AwaitExit() {
    int status = -1;
    if (!PollUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; })) {
      return -1;
    }
    pid_ = 0;
    return status;
  }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
  }

  grpc::Status GetToken(pb::GetTokenResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    pb::GetTokenRequest request;
    request.set_app(kApp);
    request.set_user(kUsername);
    grpc::Status status = stub_->GetToken(&context, request, response);
    if (status.ok()) access_tokens_.push_back(response->access_token());
    return status;
  }

  grpc::Status AdminRefresh() {
    grpc::ClientContext context;
    SetDeadline(&context);
    pb::RefreshTokenRequest request;
    request.set_app(kApp);
    request.set_user(kUsername);
    pb::RefreshTokenResponse response;
    return admin_->RefreshToken(&context, request, &response);
  }

  grpc::Status CallEnvironments(pb::CallResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    pb::CallRequest request;
    request.set_app(kApp);
    request.set_user(kUsername);
    request.set_method("GET");
    request.set_path(
        absl::StrCat("/accounts/api/organizations/", org_id_, "/environments"));
    return stub_->Call(&context, request, response);
  }

  int64_t RefreshRequests() const {
    const emulator::Counters counters = emulator_->GetCounters();
    auto it = counters.token_requests_by_grant_type.find("refresh_token");
    return it == counters.token_requests_by_grant_type.end() ? 0 : it->second;
  }

  // Reads the grant store while no broker runs, from a copy of its
  // directory: the broker's own start must find what the crash left.
  StoreContent ReadStore() {
    StoreContent content;
    for (const fs::directory_entry& entry :
         fs::directory_iterator(GrantsDir())) {
      if (absl::StrContains(entry.path().filename().string(), ".tmp.")) {
        ++content.temp_files;
      }
    }
    const fs::path copy = dir_ / absl::StrCat("inspect-", ++inspections_);
    fs::copy(GrantsDir(), copy, fs::copy_options::recursive);
    {
      absl::StatusOr<std::unique_ptr<FileGrantStore>> store =
          FileGrantStore::Open(copy.string(), ring_);
      EXPECT_THAT(store, IsOk());
      if (store.ok()) {
        GrantStoreLoad load = (*store)->LoadAll();
        content.grants = std::move(load.grants);
        content.problems = std::move(load.problems);
      }
    }
    fs::remove_all(copy);
    return content;
  }

  // The refresh token of alice's grant in the store ("" if it is not there
  // alone and readable, which fails the test).
  std::string StoredRefreshToken(int* temp_files) {
    StoreContent content = ReadStore();
    *temp_files = content.temp_files;
    EXPECT_THAT(content.problems, IsEmpty());
    EXPECT_EQ(content.grants.size(), 1u);
    if (content.grants.size() != 1) return "";
    const UserGrant& grant = content.grants[0];
    EXPECT_EQ(grant.app, kApp);
    EXPECT_EQ(grant.user_id, user_id_);
    EXPECT_FALSE(grant.needs_reauthorization) << grant.reauthorization_reason;
    EXPECT_FALSE(grant.refresh_token.empty());
    refresh_tokens_.push_back(grant.refresh_token);
    return grant.refresh_token;
  }

  // The client secret, the store key, then every access token and refresh
  // token this test saw: none may reach the broker's logs.
  std::vector<std::string> Secrets() const {
    std::vector<std::string> secrets = {kClientSecret, key_hex_};
    secrets.insert(secrets.end(), access_tokens_.begin(), access_tokens_.end());
    secrets.insert(secrets.end(), refresh_tokens_.begin(),
                   refresh_tokens_.end());
    return secrets;
  }

  emulator::CallbackServer callback_;
  std::unique_ptr<emulator::Emulator> emulator_;
  fs::path dir_;
  std::string key_hex_;
  std::shared_ptr<const KeyRing> ring_;
  std::string user_id_;
  std::string org_id_;
  pid_t pid_ = 0;
  int runs_ = 0;
  int inspections_ = 0;
  std::unique_ptr<pb::TokenBroker::Stub> stub_;
  std::unique_ptr<pb::BrokerAdmin::Stub> admin_;
  std::vector<std::string> access_tokens_;
  std::vector<std::string> refresh_tokens_;
};

TEST_F(RotationCrashTest, ACrashAtAnyStepOfARotationLosesNoGrant) {
  struct Step {
    std::string point;
    bool requested;  // the refresh request reached the emulator
    bool stored;     // the rotated refresh token is in the store
    bool temp_file;  // a temporary file of the store write is left over
  };
  const std::vector<Step> steps = {
      {"rotation.before_request", false, false, false},
      {"rotation.after_response", true, false, false},
      {"store.after_temp_write", true, false, true},
      {"store.after_rename", true, true, false},
      {"rotation.after_store", true, true, false},
  };
  int temp_files = 0;
  std::string stored = StoredRefreshToken(&temp_files);
  ASSERT_TRUE(stored == refresh_tokens_.front());

  for (const Step& step : steps) {
    SCOPED_TRACE(step.point);
    // The crash: the first rotation of this broker kills it at the point,
    // before any access token is served.
    int64_t refreshes = RefreshRequests();
    ASSERT_NO_FATAL_FAILURE(StartBroker(step.point));
    pb::GetTokenResponse crashed;
    grpc::Status status = GetToken(&crashed);
    EXPECT_FALSE(status.ok())
        << "an access token was served before the crash point was reached";
    const int crash_status = AwaitExit();
    ASSERT_NE(crash_status, -1) << "the broker did not die at the point";
    EXPECT_TRUE(WIFSIGNALED(crash_status) && WTERMSIG(crash_status) == SIGKILL)
        << "not killed at the point: " << DescribeWaitStatus(crash_status)
        << "; GetToken: " << status.error_code() << " "
        << status.error_message();
    EXPECT_EQ(RefreshRequests() - refreshes, step.requested ? 1 : 0);

    // What the crash left: the old refresh token or the rotated one, never
    // neither.
    const std::string after_crash = StoredRefreshToken(&temp_files);
    if (step.stored) {
      EXPECT_TRUE(after_crash != stored) << "the rotation was not stored";
    } else {
      EXPECT_TRUE(after_crash == stored)
          << "the grant changed before the write";
    }
    EXPECT_EQ(temp_files, step.temp_file ? 1 : 0);
    stored = after_crash;

    // The restart: the grant works, and rotates twice more.
    refreshes = RefreshRequests();
    ASSERT_NO_FATAL_FAILURE(StartBroker(""));
    pb::GetTokenResponse first;
    status = GetToken(&first);
    ASSERT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
    EXPECT_EQ(first.username(), kUsername);
    EXPECT_EQ(first.user_id(), user_id_);
    status = AdminRefresh();
    ASSERT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
    pb::GetTokenResponse second;
    status = GetToken(&second);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(second.access_token() != first.access_token())
        << "the admin refresh did not replace the token";
    pb::CallResponse environments;
    status = CallEnvironments(&environments);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(environments.status(), 200) << environments.body();
    EXPECT_THAT(environments.body(), HasSubstr("Production"));
    EXPECT_EQ(RefreshRequests() - refreshes, 2);

    stub_.reset();
    admin_.reset();
    ASSERT_EQ(kill(pid_, SIGTERM), 0);
    const int stop_status = AwaitExit();
    ASSERT_NE(stop_status, -1) << "the broker did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(stop_status) && WEXITSTATUS(stop_status) == 0)
        << DescribeWaitStatus(stop_status);

    // The last rotation is stored and the leftover temporary file is gone.
    const std::string after_restart = StoredRefreshToken(&temp_files);
    EXPECT_TRUE(after_restart != stored)
        << "the last rotation of the restarted broker was not stored";
    EXPECT_EQ(temp_files, 0);
    stored = after_restart;
  }

  // No step lost the grant or made the broker present a spent token.
  const emulator::Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.refresh_token_reuse_detected, 0);
  int live = 0;
  for (const emulator::GrantInfo& grant : emulator_->ListGrants()) {
    if (grant.client_id == kClientId && grant.user_id == user_id_) {
      ++live;
      EXPECT_GE(grant.live_refresh_tokens, 1);
    }
  }
  EXPECT_EQ(live, 1);

  // No secret in any log line of any run.
  const std::vector<std::string> secrets = Secrets();
  for (int run = 1; run <= runs_; ++run) {
    const std::string log = Contents(LogPath(run));
    EXPECT_FALSE(log.empty()) << "run " << run << " logged nothing";
    for (size_t i = 0; i < secrets.size(); ++i) {
      if (secrets[i].empty()) continue;  // a failure reported above
      EXPECT_FALSE(absl::StrContains(log, secrets[i]))
          << "run " << run << ": secret #" << i
          << " (0: client secret, 1: store key, then access tokens, then "
             "refresh tokens) is in the log";
    }
  }
}

}  // namespace
}  // namespace tokenbroker
