// Caller identity (mTLS and bearer keys), deny-by-default policy, the admin
// RPCs and the audit log, end to end: the emulator and the broker in-process
// over loopback TLS, with certificates generated at test time.
//
// Call routes are tested end to end (CallRoutesAreDenyByDefault, skipped
// while Call answers UNIMPLEMENTED), at the policy level against the
// broker's loaded config (RoutesOfTheLoadedConfig) and in
// tests/auth/policy_test.cc.

#include <fcntl.h>
#include <openssl/rand.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/auth/identity.h"
#include "service/auth/policy.h"
#include "service/cache/token_cache.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/test_pki.h"

extern char** environ;

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::BrokerFixture;
using ::tokenbroker::testing::ClientCertSpec;
using ::tokenbroker::testing::PemPair;
using ::tokenbroker::testing::TestPki;

// Set in the child run of ScannerTest: each test leaves its logs, audit
// records and the keys and tokens it used there.
constexpr char kScanDirEnv[] = "TOKENBROKER_AUTH_SCAN_DIR";

// The emulator's client secrets the fixture's apps use.
const char* const kClientSecrets[] = {
    "dc-secret-please-rotate", "exchange-reader-fake-secret", "not-the-secret"};

const std::vector<std::string> kDesignCenterScopes = {
    "read:exchange", "view:design_center", "view:environment"};

std::string RandomKey() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();
  std::string hex;
  for (unsigned char b : bytes)
    absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  return hex;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<nlohmann::json> ParseLines(const std::string& text) {
  std::vector<nlohmann::json> records;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

// A connection to the broker as one caller.
struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::TokenBroker::Stub> stub;
  std::unique_ptr<pb::BrokerAdmin::Stub> admin;
  std::string bearer_key;  // Sent as "authorization: Bearer KEY" if set.

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(20));
    if (!bearer_key.empty()) {
      context->AddMetadata("authorization", "Bearer " + bearer_key);
    }
  }
};

// The broker on TLS with an audit log; subclasses choose the callers.
class AuthFixture : public BrokerFixture {
 protected:
  void SetUp() override {
    absl::StatusOr<TestPki> pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    PrepareIdentities();
    BrokerFixture::SetUp();
  }

  void TearDown() override {
    std::string audit;
    if (!secrets_dir_.empty()) audit = ReadFile(AuditPath());
    BrokerFixture::TearDown();  // Checks the logs for secrets and tokens.
    std::vector<std::string> needles = tokens_seen_;
    needles.insert(needles.end(), keys_.begin(), keys_.end());
    for (const std::string& needle : needles) {
      EXPECT_THAT(audit, Not(HasSubstr(needle)))
          << "a token or bearer key appeared in the audit log";
      EXPECT_THAT(logged_, Not(HasSubstr(needle)))
          << "a token or bearer key appeared in the logs";
    }
    for (const char* secret : kClientSecrets) {
      EXPECT_THAT(audit, Not(HasSubstr(secret)));
    }
    if (const char* dir = std::getenv(kScanDirEnv)) {
      const ::testing::TestInfo* test =
          ::testing::UnitTest::GetInstance()->current_test_info();
      std::string base =
          absl::StrCat(dir, "/", test->test_suite_name(), ".", test->name());
      std::ofstream(base + ".log") << logged_;
      std::ofstream(base + ".audit") << audit;
      std::ofstream(base + ".needles") << absl::StrJoin(needles, "\n");
    }
  }

  // Creates client certificates and keys before the config is written.
  virtual void PrepareIdentities() = 0;

  std::string ListenYaml() const override {
    return absl::StrCat("listen:\n  grpc: 127.0.0.1:0\n  tls:\n    cert_file: ",
                        pki_->server().cert_file,
                        "\n    key_file: ", pki_->server().key_file, "\n",
                        ClientCaYaml());
  }
  virtual std::string ClientCaYaml() const {
    return absl::StrCat("    client_ca_file: ", pki_->ca().cert_file, "\n");
  }
  std::string ExtraYaml() const override {
    return absl::StrCat("audit:\n  path: ", AuditPath(), "\n");
  }
  std::string AuditPath() const { return secrets_dir_ + "/audit.jsonl"; }

  // A new bearer key; remembered so that the scans look for it.
  std::string NewKey() {
    keys_.push_back(RandomKey());
    return keys_.back();
  }

  absl::StatusOr<PemPair> Cert(const std::string& name,
                               const ClientCertSpec& spec,
                               bool by_other_ca = false) {
    return pki_->IssueClient(name, spec, by_other_ca);
  }

  // A client with `cert` (none: nullptr) and `bearer_key` (none: empty).
  Client Connect(const PemPair* cert, const std::string& bearer_key = "") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->ca().cert_pem;
    if (cert != nullptr) {
      options.pem_private_key = cert->key_pem;
      options.pem_cert_chain = cert->cert_pem;
    }
    // A fresh channel each time: no TLS session or connection is shared
    // between identities.
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    Client client;
    client.channel =
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", broker_->port()),
                                  grpc::SslCredentials(options), args);
    client.stub = pb::TokenBroker::NewStub(client.channel);
    client.admin = pb::BrokerAdmin::NewStub(client.channel);
    client.bearer_key = bearer_key;
    return client;
  }

  grpc::Status GetTokenAs(const Client& client, const std::string& app,
                          const std::vector<std::string>& scopes,
                          pb::GetTokenResponse* response) {
    grpc::ClientContext context;
    client.Prepare(&context);
    pb::GetTokenRequest request;
    request.set_app(app);
    for (const std::string& scope : scopes) request.add_scopes(scope);
    grpc::Status status = client.stub->GetToken(&context, request, response);
    if (status.ok()) tokens_seen_.push_back(response->access_token());
    return status;
  }
  grpc::Status GetTokenAs(const Client& client, const std::string& app,
                          const std::vector<std::string>& scopes = {}) {
    pb::GetTokenResponse response;
    return GetTokenAs(client, app, scopes, &response);
  }

  grpc::Status ListApps(const Client& client) {
    grpc::ClientContext context;
    client.Prepare(&context);
    pb::ListAppsResponse response;
    return client.admin->ListApps(&context, pb::ListAppsRequest(), &response);
  }
  grpc::Status RefreshToken(const Client& client, const std::string& app) {
    grpc::ClientContext context;
    client.Prepare(&context);
    pb::RefreshTokenRequest request;
    request.set_app(app);
    pb::RefreshTokenResponse response;
    return client.admin->RefreshToken(&context, request, &response);
  }
  grpc::Status RevokeToken(const Client& client, const std::string& app,
                           pb::RevokeTokenResponse* response) {
    grpc::ClientContext context;
    client.Prepare(&context);
    pb::RevokeTokenRequest request;
    request.set_app(app);
    return client.admin->RevokeToken(&context, request, response);
  }
  grpc::Status ReloadConfig(const Client& client,
                            pb::ReloadConfigResponse* response) {
    grpc::ClientContext context;
    client.Prepare(&context);
    return client.admin->ReloadConfig(&context, pb::ReloadConfigRequest(),
                                      response);
  }

  std::vector<nlohmann::json> AuditRecords() const {
    broker_->FlushAudit();  // Records are written by a background thread.
    return ParseLines(ReadFile(AuditPath()));
  }

  int64_t AllTokenRequests() const {
    int64_t total = 0;
    for (const auto& [client, count] :
         emulator_->GetCounters().token_requests_by_client) {
      total += count;
    }
    return total;
  }

  std::unique_ptr<TestPki> pki_;
  std::vector<std::string> keys_;
};

// mTLS: callers identified by SPIFFE id, by CN, and by bearer key (over
// mTLS too).
class MtlsAuthTest : public AuthFixture {
 protected:
  static std::string OrdersId() { return TestPki::SpiffeId("shop", "orders"); }
  static std::string ProxyId() { return TestPki::SpiffeId("shop", "proxy"); }
  static std::string OpsId() { return TestPki::SpiffeId("platform", "ops"); }

  void PrepareIdentities() override {
    auto issue = [&](const std::string& name, const ClientCertSpec& spec,
                     bool other_ca = false) {
      absl::StatusOr<PemPair> cert = Cert(name, spec, other_ca);
      EXPECT_TRUE(cert.ok()) << cert.status();
      return cert.ok() ? *cert : PemPair();
    };
    // The CN of orders' certificate names billing: the SPIFFE id decides.
    orders_cert_ = issue("orders", {"billing.internal", OrdersId()});
    billing_cert_ = issue("billing", {"billing.internal", ""});
    proxy_cert_ = issue("proxy", {"", ProxyId()});
    ops_cert_ = issue("ops", {"ops", OpsId()});
    nobody_cert_ = issue("nobody", {"nobody.internal", ""});
    stranger_cert_ =
        issue("stranger", {"", TestPki::SpiffeId("other", "stranger")});
    expired_cert_ = issue("expired", {"", OrdersId(), /*expired=*/true});
    foreign_cert_ = issue("foreign", {"", OrdersId()}, /*other_ca=*/true);
    keyed_key_ = NewKey();
  }

  std::string CallersYaml() const override {
    std::string yaml = absl::StrCat(
        "callers:\n"
        "  - name: orders\n"
        "    identities: ['",
        OrdersId(),
        "']\n"
        "    grants:\n"
        "      - {app: design-center, scopes: [read:exchange]}\n"
        "      - {app: exchange-reader, scopes: ['*']}\n",
        reloaded_ ? "      - {app: exchange-2, scopes: ['*']}\n" : "",
        "  - name: billing\n"
        "    identities: [billing.internal]\n"
        "    grants:\n"
        "      - app: design-center\n"
        "        scopes: [view:design_center, view:environment]\n",
        reloaded_ ? "" : "      - {app: wrong-secret, scopes: ['*']}\n",
        "  - name: proxy\n"
        "    identities: ['",
        ProxyId(),
        "']\n"
        "    grants:\n"
        "      - app: design-center\n"
        "        scopes: ['*']\n"
        "        get_token: false\n"
        "        routes: ['GET /accounts/api/me',\n"
        "                 'GET /accounts/api/organizations/*/environments']\n"
        "  - name: keyed\n"
        "    bearer_key_sha256: [",
        Sha256Hex(keyed_key_),
        "]\n"
        "    grants:\n"
        "      - {app: exchange-reader, scopes: [read:exchange],\n"
        "         routes: ['GET /exchange/api/v2/**']}\n"
        "  - name: ops\n"
        "    identities: ['",
        OpsId(),
        "']\n"
        "    admin: true\n"
        "  - name: nobody\n"
        "    identities: [nobody.internal]\n");
    return yaml;
  }

  // With reloaded_: wrong-secret removed, exchange-2 added, design-center
  // changed (an org id), exchange-reader unchanged.
  std::string AppsYaml() const override {
    std::string apps = BrokerFixture::AppsYaml();
    if (!reloaded_) return apps;
    apps = apps.substr(0, apps.find("  - name: wrong-secret\n"));
    absl::StrAppend(
        &apps, "  - name: exchange-2\n    base_url: ", emulator_->base_url(),
        "\n    client_id: exchange-reader\n"
        "    client_secret: {file: ",
        secrets_dir_, "/ex}\n    scopes: [read:exchange]\n");
    const std::string dc = "  - name: design-center\n";
    apps.insert(apps.find(dc) + dc.size(),
                "    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f\n");
    return apps;
  }

  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials()
      const override {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->ca().cert_pem;
    options.pem_private_key = orders_cert_.key_pem;
    options.pem_cert_chain = orders_cert_.cert_pem;
    return grpc::SslCredentials(options);
  }

  PemPair orders_cert_, billing_cert_, proxy_cert_, ops_cert_, nobody_cert_,
      stranger_cert_, expired_cert_, foreign_cert_;
  std::string keyed_key_;
  bool reloaded_ = false;
};

TEST_F(MtlsAuthTest, CallersAreIdentifiedBySpiffeIdCnAndKey) {
  // The fixture's own stub is orders over mTLS.
  pb::GetTokenResponse response;
  grpc::Status status = GetToken("exchange-reader", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  Client billing = Connect(&billing_cert_);
  status = GetTokenAs(billing, "design-center", {"view:environment"});
  EXPECT_TRUE(status.ok()) << status.error_message();

  // keyed presents nobody's certificate and its own key: the key decides.
  Client keyed = Connect(&nobody_cert_, keyed_key_);
  status = GetTokenAs(keyed, "exchange-reader", {"read:exchange"});
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::map<std::string, nlohmann::json> last_use;
  for (const nlohmann::json& record : AuditRecords()) {
    if (record["event"] == "use") last_use[record["caller"]] = record;
  }
  ASSERT_EQ(last_use.count("orders"), 1u);
  EXPECT_EQ(last_use["orders"]["auth"], "mtls");
  EXPECT_EQ(last_use["orders"]["principal"], OrdersId());
  EXPECT_EQ(last_use["billing"]["principal"], "billing.internal");
  EXPECT_EQ(last_use["keyed"]["auth"], "bearer");
  EXPECT_EQ(last_use["keyed"]["principal"],
            "key:" + Sha256Hex(keyed_key_).substr(0, 12));
}

// Grants of the callers in CallersYaml(), written out independently of the
// policy code: app -> (scopes, all scopes, get_token).
struct GrantModel {
  std::set<std::string> scopes;
  bool all = false;
  bool get_token = true;
};

TEST_F(MtlsAuthTest, MatrixOfCallersAppsAndScopesIsDenyByDefault) {
  const std::map<std::string, std::set<std::string>> app_scopes = {
      {"design-center",
       {"view:design_center", "view:environment", "read:exchange"}},
      {"exchange-reader", {"read:exchange"}},
      {"wrong-secret", {"view:design_center"}}};
  const std::map<std::string, std::map<std::string, GrantModel>> grants = {
      {"orders",
       {{"design-center", {{"read:exchange"}}},
        {"exchange-reader", {{}, /*all=*/true}}}},
      {"billing",
       {{"design-center", {{"view:design_center", "view:environment"}}},
        {"wrong-secret", {{}, /*all=*/true}}}},
      {"proxy", {{"design-center", {{}, true, /*get_token=*/false}}}},
      {"keyed", {{"exchange-reader", {{"read:exchange"}}}}},
      {"ops", {}},
      {"nobody", {}}};
  std::map<std::string, Client> clients;
  clients.emplace("orders", Connect(&orders_cert_));
  clients.emplace("billing", Connect(&billing_cert_));
  clients.emplace("proxy", Connect(&proxy_cert_));
  clients.emplace("keyed", Connect(&nobody_cert_, keyed_key_));
  clients.emplace("ops", Connect(&ops_cert_));
  clients.emplace("nobody", Connect(&nobody_cert_));
  const std::vector<std::vector<std::string>> scope_sets = {
      {},
      {"read:exchange"},
      {"view:design_center"},
      {"view:environment"},
      {"view:design_center", "view:environment"},
      {"read:exchange", "view:design_center", "view:environment"}};

  int allowed = 0, denied = 0;
  for (const auto& [caller, client] : clients) {
    for (const auto& [app, held] : app_scopes) {
      for (const std::vector<std::string>& scopes : scope_sets) {
        // The expected answer.
        grpc::StatusCode expected = grpc::StatusCode::OK;
        bool app_holds = true;
        for (const std::string& s : scopes) app_holds &= held.count(s) > 0;
        auto grant = grants.at(caller).find(app);
        if (!app_holds || grant == grants.at(caller).end() ||
            !grant->second.get_token) {
          expected = grpc::StatusCode::PERMISSION_DENIED;
        } else if (!grant->second.all) {
          // No scopes asked for: all of the app's.
          std::set<std::string> wanted(scopes.begin(), scopes.end());
          if (scopes.empty()) wanted = held;
          for (const std::string& s : wanted) {
            if (grant->second.scopes.count(s) == 0) {
              expected = grpc::StatusCode::PERMISSION_DENIED;
            }
          }
        }
        if (expected == grpc::StatusCode::OK && app == "wrong-secret") {
          expected = grpc::StatusCode::FAILED_PRECONDITION;  // Upstream says.
        }

        std::string what = absl::StrCat(caller, " x ", app, " x [",
                                        absl::StrJoin(scopes, " "), "]");
        int64_t upstream_before = AllTokenRequests();
        pb::GetTokenResponse response;
        grpc::Status status = GetTokenAs(client, app, scopes, &response);
        EXPECT_EQ(status.error_code(), expected)
            << what << ": " << status.error_message();
        if (expected == grpc::StatusCode::PERMISSION_DENIED) {
          ++denied;
          // Refused before any upstream traffic, naming the caller.
          EXPECT_EQ(AllTokenRequests(), upstream_before) << what;
          EXPECT_THAT(status.error_message(), HasSubstr(app)) << what;
          EXPECT_TRUE(response.access_token().empty()) << what;
        } else if (expected == grpc::StatusCode::OK) {
          ++allowed;
          EXPECT_FALSE(response.access_token().empty()) << what;
          EXPECT_EQ(response.app(), app) << what;
        }
      }
    }
  }
  // orders: dc[read:exchange], ex x 2; billing: dc x 3 (+ wrong-secret x 2
  // failing upstream); keyed: ex x 2.
  EXPECT_EQ(allowed, 1 + 2 + 3 + 2);
  EXPECT_EQ(denied, 6 * 3 * 6 - allowed - 2);
}

TEST_F(MtlsAuthTest, EmptyAppPicksTheNarrowestAppTheCallerMayUse) {
  Client orders = Connect(&orders_cert_);
  pb::GetTokenResponse response;
  grpc::Status status = GetTokenAs(orders, "", {"read:exchange"}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.app(), "exchange-reader");

  // billing may use design-center, but not for read:exchange.
  Client billing = Connect(&billing_cert_);
  status = GetTokenAs(billing, "", {"read:exchange"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  status = GetTokenAs(billing, "", {"view:environment"}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.app(), "design-center");

  Client nobody = Connect(&nobody_cert_);
  status = GetTokenAs(nobody, "", {"read:exchange"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
}

TEST_F(MtlsAuthTest, WatchTokenIsAuthorizedToo) {
  Client billing = Connect(&billing_cert_);
  grpc::ClientContext context;
  billing.Prepare(&context);
  pb::WatchTokenRequest request;
  request.set_app("exchange-reader");
  auto reader = billing.stub->WatchToken(&context, request);
  pb::GetTokenResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(MtlsAuthTest, CallOnlyGrantRefusesTokens) {
  Client proxy = Connect(&proxy_cert_);
  grpc::Status status = GetTokenAs(proxy, "design-center");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("get_token: false"));
  status = GetTokenAs(proxy, "design-center", {"view:environment"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(AllTokenRequests(), 0);
}

grpc::Status CallAs(const Client& client, const std::string& app,
                    const std::string& method, const std::string& path,
                    pb::CallResponse* response) {
  grpc::ClientContext context;
  client.Prepare(&context);
  pb::CallRequest request;
  request.set_app(app);
  request.set_method(method);
  request.set_path(path);
  return client.stub->Call(&context, request, response);
}

TEST_F(MtlsAuthTest, CallRoutesAreDenyByDefault) {
  Client proxy = Connect(&proxy_cert_);
  pb::CallResponse response;
  grpc::Status status =
      CallAs(proxy, "design-center", "GET", "/accounts/api/me", &response);
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    GTEST_SKIP() << "Call is not implemented in this build; routes are "
                    "tested at the policy level (RoutesOfTheLoadedConfig)";
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), 200);

  struct Case {
    const Client* client;
    std::string app, method, path;
  };
  Client keyed = Connect(&nobody_cert_, keyed_key_);
  Client orders = Connect(&orders_cert_);
  Client nobody = Connect(&nobody_cert_);
  const std::vector<Case> denied = {
      {&proxy, "design-center", "POST", "/accounts/api/me"},
      {&proxy, "design-center", "GET", "/accounts/api/me/x"},
      {&proxy, "exchange-reader", "GET", "/accounts/api/me"},
      {&keyed, "exchange-reader", "DELETE", "/exchange/api/v2/assets/x"},
      {&keyed, "design-center", "GET", "/exchange/api/v2/assets/search"},
      {&orders, "design-center", "GET", "/accounts/api/me"},  // No routes.
      {&nobody, "design-center", "GET", "/accounts/api/me"},
  };
  emulator_->ResetCounters();
  for (const Case& c : denied) {
    status = CallAs(*c.client, c.app, c.method, c.path, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << c.app << " " << c.method << " " << c.path << ": "
        << status.error_message();
  }
  // Refused before any upstream traffic.
  emulator::Counters counters = emulator_->GetCounters();
  int64_t upstream = 0;
  for (const auto& [endpoint, count] : counters.requests_by_endpoint) {
    upstream += count;
  }
  EXPECT_EQ(upstream, 0);

  status = CallAs(keyed, "exchange-reader", "GET",
                  "/exchange/api/v2/assets/search?search=orders", &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(MtlsAuthTest, RoutesOfTheLoadedConfig) {
  // Call is not implemented yet: the routes the broker loaded are checked
  // with the policy it will use.
  std::shared_ptr<const Config> config = broker_->config().Get();
  auto caller = [&](const std::string& name) -> const CallerConfig& {
    for (const CallerConfig& c : config->callers) {
      if (c.name == name) return c;
    }
    ADD_FAILURE() << name;
    return config->callers.front();
  };
  const AppConfig& dc = *config->FindApp("design-center");
  const AppConfig& ex = *config->FindApp("exchange-reader");
  struct Case {
    std::string caller;
    const AppConfig* app;
    std::string method, path;
    bool allowed;
  };
  const std::vector<Case> cases = {
      {"proxy", &dc, "GET", "/accounts/api/me", true},
      {"proxy", &dc, "GET", "/accounts/api/me?x=1", true},
      {"proxy", &dc, "POST", "/accounts/api/me", false},
      {"proxy", &dc, "GET", "/accounts/api/organizations/o1/environments",
       true},
      {"proxy", &dc, "GET", "/accounts/api/organizations/o1/environments/e1",
       false},
      {"proxy", &dc, "GET", "/accounts/api/organizations/../me", false},
      {"proxy", &ex, "GET", "/accounts/api/me", false},
      {"keyed", &ex, "GET", "/exchange/api/v2/assets/search", true},
      {"keyed", &ex, "DELETE", "/exchange/api/v2/assets/x", false},
      {"keyed", &dc, "GET", "/exchange/api/v2/assets/search", false},
      {"orders", &dc, "GET", "/accounts/api/me", false},  // No routes.
      {"nobody", &dc, "GET", "/", false},
  };
  for (const Case& c : cases) {
    absl::Status status =
        AuthorizeCall(caller(c.caller), *c.app, {}, c.method, c.path);
    EXPECT_EQ(status.ok(), c.allowed)
        << c.caller << " " << c.app->name << " " << c.method << " " << c.path
        << ": " << status;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
    }
  }
}

TEST_F(MtlsAuthTest, CertificateOfAnotherCaIsRefusedInTheHandshake) {
  Client foreign = Connect(&foreign_cert_);
  grpc::Status status = GetTokenAs(foreign, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

TEST_F(MtlsAuthTest, ExpiredCertificateIsRefusedInTheHandshake) {
  Client expired = Connect(&expired_cert_);
  grpc::Status status = GetTokenAs(expired, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

TEST_F(MtlsAuthTest, NoCertificateIsRefusedInTheHandshake) {
  // Not even a valid bearer key gets past a listener that requires mTLS.
  Client anonymous = Connect(nullptr, keyed_key_);
  grpc::Status status = GetTokenAs(anonymous, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

TEST_F(MtlsAuthTest, UnknownIdentityIsUnauthenticated) {
  Client stranger = Connect(&stranger_cert_);
  grpc::Status status = GetTokenAs(stranger, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(),
              HasSubstr(TestPki::SpiffeId("other", "stranger")));
  EXPECT_EQ(AllTokenRequests(), 0);
}

TEST_F(MtlsAuthTest, WrongBearerKeyIsUnauthenticatedEvenWithAValidCert) {
  std::string wrong = NewKey();
  Client client = Connect(&orders_cert_, wrong);
  grpc::Status status = GetTokenAs(client, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), Not(HasSubstr(wrong)));

  grpc::ClientContext context;
  context.AddMetadata("authorization", "Basic b3JkZXJzOnB3");
  pb::GetTokenRequest request;
  request.set_app("exchange-reader");
  pb::GetTokenResponse response;
  Client orders = Connect(&orders_cert_);
  status = orders.stub->GetToken(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << "a malformed authorization header is never ignored";
}

TEST_F(MtlsAuthTest, KeyOfAnotherCallerGetsThatCallersGrants) {
  // orders' certificate with keyed's key: keyed's grants apply.
  Client client = Connect(&orders_cert_, keyed_key_);
  EXPECT_TRUE(GetTokenAs(client, "exchange-reader", {"read:exchange"}).ok());
  grpc::Status status = GetTokenAs(client, "design-center", {"read:exchange"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("keyed"), HasSubstr("design-center")));
}

TEST_F(MtlsAuthTest, AdminRpcsNeedTheAdminRole) {
  for (const PemPair* cert : {&orders_cert_, &billing_cert_, &nobody_cert_}) {
    Client client = Connect(cert);
    grpc::Status status = ListApps(client);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(), HasSubstr("admin role"));
    status = RefreshToken(client, "exchange-reader");
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    pb::RevokeTokenResponse revoked;
    status = RevokeToken(client, "exchange-reader", &revoked);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    pb::ReloadConfigResponse reloaded;
    status = ReloadConfig(client, &reloaded);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  Client keyed = Connect(&nobody_cert_, keyed_key_);
  EXPECT_EQ(ListApps(keyed).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(AllTokenRequests(), 0);
  EXPECT_EQ(emulator_->GetCounters().requests_by_endpoint["revoke"], 0);

  Client ops = Connect(&ops_cert_);
  grpc::Status status = ListApps(ops);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Admin is not a grant: ops may not take tokens.
  EXPECT_EQ(GetTokenAs(ops, "exchange-reader").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(MtlsAuthTest, RefreshTokenFetchesANewToken) {
  Client orders = Connect(&orders_cert_);
  Client ops = Connect(&ops_cert_);
  pb::GetTokenResponse before;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &before).ok());
  grpc::Status status = RefreshToken(ops, "exchange-reader");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(TokenRequests("exchange-reader"), 2);
  pb::GetTokenResponse after;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &after).ok());
  EXPECT_NE(after.access_token(), before.access_token());
  EXPECT_EQ(TokenRequests("exchange-reader"), 2);  // Served from the cache.

  EXPECT_EQ(RefreshToken(ops, "no-such-app").error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(MtlsAuthTest, RevokeTokenCallsTheRevokeEndpointAndDropsTheToken) {
  Client orders = Connect(&orders_cert_);
  Client ops = Connect(&ops_cert_);
  pb::GetTokenResponse before;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &before).ok());
  pb::RevokeTokenResponse revoked;
  grpc::Status status = RevokeToken(ops, "exchange-reader", &revoked);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(revoked.revoked(), 1);
  EXPECT_EQ(emulator_->GetCounters().requests_by_endpoint["revoke"], 1);

  pb::GetTokenResponse after;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &after).ok());
  EXPECT_NE(after.access_token(), before.access_token());
  EXPECT_EQ(TokenRequests("exchange-reader"), 2);

  // Nothing cached: nothing to revoke upstream.
  status = RevokeToken(ops, "design-center", &revoked);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(revoked.revoked(), 0);
  EXPECT_EQ(emulator_->GetCounters().requests_by_endpoint["revoke"], 1);
  EXPECT_EQ(RevokeToken(ops, "no-such-app", &revoked).error_code(),
            grpc::StatusCode::NOT_FOUND);

  bool audited = false;
  for (const nlohmann::json& record : AuditRecords()) {
    if (record["event"] == "revoke" && record["app"] == "exchange-reader") {
      EXPECT_EQ(record["caller"], "ops");
      EXPECT_EQ(record["rpc"], "BrokerAdmin.RevokeToken");
      EXPECT_EQ(record["grpc_status"], "OK");
      audited = true;
    }
  }
  EXPECT_TRUE(audited);
}

TEST_F(MtlsAuthTest, ReloadWithABrokenFileKeepsTheOldConfig) {
  Client orders = Connect(&orders_cert_);
  Client ops = Connect(&ops_cert_);
  pb::GetTokenResponse before;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &before).ok());

  // A grant of an unknown app: valid YAML, invalid config.
  std::string broken = ConfigYaml();
  broken.replace(broken.find("callers:\n"), 9,
                 "callers:\n  - {name: late, grants: [{app: nope}]}\n");
  WriteConfigFile(broken);
  pb::ReloadConfigResponse response;
  grpc::Status status = ReloadConfig(ops, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("nope"), HasSubstr("nothing changed")));
  WriteConfigFile("apps: [\n");
  status = ReloadConfig(ops, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("YAML syntax error"));

  pb::GetTokenResponse after;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &after).ok());
  EXPECT_EQ(after.access_token(), before.access_token());
  EXPECT_EQ(GetTokenAs(orders, "wrong-secret").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // Policy unchanged too.

  int rejected = 0;
  for (const nlohmann::json& record : AuditRecords()) {
    if (record["event"] == "reload") {
      EXPECT_EQ(record["grpc_status"], "FAILED_PRECONDITION");
      ++rejected;
    }
  }
  EXPECT_EQ(rejected, 2);
}

TEST_F(MtlsAuthTest, ReloadAppliesAppsAndPolicyAndKeepsUnchangedTokens) {
  Client orders = Connect(&orders_cert_);
  Client billing = Connect(&billing_cert_);
  Client ops = Connect(&ops_cert_);
  pb::GetTokenResponse ex_before, dc_before;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &ex_before).ok());
  ASSERT_TRUE(
      GetTokenAs(billing, "design-center", {"view:environment"}, &dc_before)
          .ok());
  // Unknown apps look like ungranted ones.
  EXPECT_EQ(GetTokenAs(orders, "exchange-2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  reloaded_ = true;
  WriteConfigFile(ConfigYaml());
  pb::ReloadConfigResponse response;
  grpc::Status status = ReloadConfig(ops, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(response.added(), ElementsAre("exchange-2"));
  EXPECT_THAT(response.changed(), ElementsAre("design-center"));
  EXPECT_THAT(response.removed(), ElementsAre("wrong-secret"));

  pb::GetTokenResponse ex_after, dc_after;
  ASSERT_TRUE(GetTokenAs(orders, "exchange-reader", {}, &ex_after).ok());
  EXPECT_EQ(ex_after.access_token(), ex_before.access_token());
  ASSERT_TRUE(
      GetTokenAs(billing, "design-center", {"view:environment"}, &dc_after)
          .ok());
  EXPECT_NE(dc_after.access_token(), dc_before.access_token());
  // The new grant works; the removed app is gone.
  status = GetTokenAs(orders, "exchange-2");
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(GetTokenAs(billing, "wrong-secret").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  bool audited = false;
  for (const nlohmann::json& record : AuditRecords()) {
    if (record["event"] == "reload" && record["grpc_status"] == "OK") {
      EXPECT_EQ(record["caller"], "ops");
      audited = true;
    }
  }
  EXPECT_TRUE(audited);
}

TEST_F(MtlsAuthTest, AuditRecordsDecisionsAndUses) {
  Client orders = Connect(&orders_cert_);
  Client billing = Connect(&billing_cert_);
  Client stranger = Connect(&stranger_cert_);
  pb::GetTokenResponse token;
  ASSERT_TRUE(
      GetTokenAs(orders, "exchange-reader", {"read:exchange"}, &token).ok());
  EXPECT_FALSE(GetTokenAs(billing, "design-center", {"read:exchange"}).ok());
  EXPECT_FALSE(GetTokenAs(stranger, "exchange-reader").ok());

  std::vector<nlohmann::json> records = AuditRecords();
  // A cold GetToken is audited twice: the decision before the upstream
  // fetch, then the use.
  ASSERT_EQ(records.size(), 4u);
  const nlohmann::json& decision = records[0];
  EXPECT_EQ(decision["event"], "decision");
  EXPECT_EQ(decision["decision"], "allow");
  EXPECT_EQ(decision["caller"], "orders");
  EXPECT_FALSE(decision.contains("token"));
  records.erase(records.begin());
  const nlohmann::json& use = records[0];
  EXPECT_EQ(use["event"], "use");
  EXPECT_EQ(use["caller"], "orders");
  EXPECT_EQ(use["rpc"], "TokenBroker.GetToken");
  EXPECT_EQ(use["app"], "exchange-reader");
  EXPECT_EQ(use["scopes"], nlohmann::json::array({"read:exchange"}));
  EXPECT_EQ(use["decision"], "allow");
  EXPECT_EQ(use["grpc_status"], "OK");
  EXPECT_EQ(use["token"], TokenFingerprint(token.access_token()));
  EXPECT_EQ(use["token"].get<std::string>().size(), 12u);
  EXPECT_THAT(use["peer"].get<std::string>(), HasSubstr("127.0.0.1"));
  EXPECT_TRUE(use.contains("latency_ms"));
  EXPECT_TRUE(use.contains("ts"));

  const nlohmann::json& deny = records[1];
  EXPECT_EQ(deny["event"], "decision");
  EXPECT_EQ(deny["caller"], "billing");
  EXPECT_EQ(deny["decision"], "deny");
  EXPECT_EQ(deny["grpc_status"], "PERMISSION_DENIED");
  EXPECT_THAT(deny["reason"].get<std::string>(), HasSubstr("read:exchange"));
  EXPECT_FALSE(deny.contains("token"));

  const nlohmann::json& unknown = records[2];
  EXPECT_EQ(unknown["caller"], "-");
  EXPECT_EQ(unknown["decision"], "deny");
  EXPECT_EQ(unknown["grpc_status"], "UNAUTHENTICATED");
  EXPECT_THAT(unknown["reason"].get<std::string>(),
              HasSubstr(TestPki::SpiffeId("other", "stranger")));
}

// Server-side TLS without client certificates: callers are known by bearer
// keys only.
class BearerAuthTest : public AuthFixture {
 protected:
  void PrepareIdentities() override {
    alpha_key_ = NewKey();
    beta_key_ = NewKey();
    beta_next_key_ = NewKey();
    admin_key_ = NewKey();
  }
  std::string ClientCaYaml() const override { return ""; }
  std::string CallersYaml() const override {
    return absl::StrCat(
        "callers:\n"
        "  - name: alpha\n"
        "    bearer_key_sha256: [",
        Sha256Hex(alpha_key_),
        "]\n"
        "    grants: [{app: exchange-reader, scopes: [read:exchange]}]\n"
        "  - name: beta\n"
        "    bearer_key_sha256:\n"
        "      - ",
        Sha256Hex(beta_key_),
        "\n"
        "      - ",
        Sha256Hex(beta_next_key_),
        "  # Rotation: both keys until the old one is gone.\n"
        "    grants: [{app: design-center, scopes: ['*']}]\n"
        "  - name: admin\n"
        "    bearer_key_sha256: [",
        Sha256Hex(admin_key_),
        "]\n"
        "    admin: true\n");
  }
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials()
      const override {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->ca().cert_pem;
    return grpc::SslCredentials(options);
  }

  std::string alpha_key_, beta_key_, beta_next_key_, admin_key_;
};

TEST_F(BearerAuthTest, KeysIdentifyCallers) {
  Client alpha = Connect(nullptr, alpha_key_);
  grpc::Status status = GetTokenAs(alpha, "exchange-reader", {"read:exchange"});
  EXPECT_TRUE(status.ok()) << status.error_message();
  Client beta = Connect(nullptr, beta_key_);
  status = GetTokenAs(beta, "design-center");
  EXPECT_TRUE(status.ok()) << status.error_message();
  Client beta_next = Connect(nullptr, beta_next_key_);
  status = GetTokenAs(beta_next, "design-center");
  EXPECT_TRUE(status.ok()) << status.error_message();
  Client admin = Connect(nullptr, admin_key_);
  EXPECT_TRUE(ListApps(admin).ok());
}

TEST_F(BearerAuthTest, KeyOfAnotherCallerGetsThatCallersGrants) {
  Client alpha = Connect(nullptr, alpha_key_);
  grpc::Status status = GetTokenAs(alpha, "design-center");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("alpha"));
  Client beta = Connect(nullptr, beta_key_);
  EXPECT_EQ(GetTokenAs(beta, "exchange-reader").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListApps(beta).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(BearerAuthTest, WrongOrMissingKeyIsUnauthenticated) {
  std::string wrong = NewKey();
  Client client = Connect(nullptr, wrong);
  grpc::Status status = GetTokenAs(client, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("not recognized"), Not(HasSubstr(wrong))));

  // The hash from the config is not a key.
  Client hash = Connect(nullptr, Sha256Hex(alpha_key_));
  EXPECT_EQ(GetTokenAs(hash, "exchange-reader").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  Client none = Connect(nullptr);
  status = GetTokenAs(none, "exchange-reader");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("no caller identity"));
  EXPECT_EQ(ListApps(none).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(AllTokenRequests(), 0);

  int unauthenticated = 0;
  for (const nlohmann::json& record : AuditRecords()) {
    if (record["grpc_status"] == "UNAUTHENTICATED") ++unauthenticated;
  }
  EXPECT_EQ(unauthenticated, 4);
}

// fail_closed with an audit log that cannot be written.
class FailClosedAuthTest : public BearerAuthTest {
 protected:
  std::string ExtraYaml() const override {
    return "audit:\n  path: /dev/full\n  fail_closed: true\n";
  }
};

TEST_F(FailClosedAuthTest, RequestsAreRefusedWhenTheAuditLogFails) {
  Client alpha = Connect(nullptr, alpha_key_);
  pb::GetTokenResponse response;
  grpc::Status status =
      GetTokenAs(alpha, "exchange-reader", {"read:exchange"}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("audit"));
  EXPECT_TRUE(response.access_token().empty());
  // A second try (now a cache hit) is refused the same way.
  status = GetTokenAs(alpha, "exchange-reader", {"read:exchange"}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(response.access_token().empty());

  // Refusals stay refusals.
  EXPECT_EQ(GetTokenAs(alpha, "design-center").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  Client admin = Connect(nullptr, admin_key_);
  EXPECT_EQ(ListApps(admin).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Plaintext is served only with development.insecure_plaintext; then a
// caller without credentials is "anonymous" (the base fixture's setup).
class PlaintextAuthTest : public BrokerFixture {
 protected:
  std::string CallersYaml() const override {
    return "callers:\n"
           "  - name: anonymous\n"
           "    grants: [{app: exchange-reader, scopes: [read:exchange]}]\n";
  }
};

TEST_F(PlaintextAuthTest, AnonymousGetsOnlyItsGrants) {
  pb::GetTokenResponse response;
  grpc::Status status = GetToken("exchange-reader", &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(GetToken("design-center", &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext context;
  pb::ListAppsResponse apps;
  EXPECT_EQ(
      admin_->ListApps(&context, pb::ListAppsRequest(), &apps).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
}

TEST(ServerTlsTest, PlaintextNeedsTheDevelopmentFlag) {
  absl::StatusOr<Config> config = ParseConfig(
      "apps:\n  - {name: a, base_url: 'http://127.0.0.1:1', client_id: i,\n"
      "     client_secret: {env: S}}\n",
      "plain.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<BrokerServer>> broker =
      BrokerServer::Create(*std::move(config));
  ASSERT_TRUE(broker.ok()) << broker.status();
  absl::Status started = (*broker)->Start("127.0.0.1:0");
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(started.message()),
              HasSubstr("development.insecure_plaintext"));
}

// Runs every other test of this binary in a child process that leaves its
// logs, audit files, keys and tokens in a directory, then scans all logs and
// audit files for any client secret, bearer key or access token.
TEST(ScannerTest, NoSecretKeyOrTokenInAnyLogOrAuditFile) {
  if (std::getenv(kScanDirEnv) != nullptr) GTEST_SKIP() << "child run";
  char dir_template[] = "/tmp/tokenbroker-scan-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;

  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=-ScannerTest.*";
  std::string output = dir + "/child-output.txt";
  std::vector<char*> argv = {self.data(), filter.data(), nullptr};
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "GTEST_")) env_strings.push_back(*e);
  }
  env_strings.push_back(absl::StrCat(kScanDirEnv, "=", dir));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(),
                        envp.data()),
            0);
  posix_spawn_file_actions_destroy(&actions);
  int wait_status = 0;
  ASSERT_EQ(waitpid(pid, &wait_status, 0), pid);
  std::string child_output = ReadFile(output);
  ASSERT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
      << "the suite failed in the child run:\n"
      << child_output.substr(
             child_output.size() > 20000 ? child_output.size() - 20000 : 0);

  std::vector<std::string> needles(std::begin(kClientSecrets),
                                   std::end(kClientSecrets));
  std::vector<std::pair<std::string, std::string>> haystacks;  // name, text
  int tests = 0, tokens = 0, audit_records = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string path = entry.path().string();
    if (absl::EndsWith(path, ".needles")) {
      ++tests;
      for (absl::string_view needle :
           absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty())) {
        needles.emplace_back(needle);
        ++tokens;
      }
    } else if (absl::EndsWith(path, ".log") || absl::EndsWith(path, ".audit")) {
      std::string text = ReadFile(path);
      if (absl::EndsWith(path, ".audit")) {
        audit_records += static_cast<int>(ParseLines(text).size());
      }
      haystacks.emplace_back(entry.path().filename().string(), text);
    }
  }
  // The child output holds every log line too (the fixture echoes them).
  haystacks.emplace_back("child output", child_output);
  // Not a vacuous pass: the run produced tokens, keys and records.
  EXPECT_GE(tests, 20);
  EXPECT_GE(tokens, 30);
  EXPECT_GE(audit_records, 100);
  for (const auto& [name, text] : haystacks) {
    for (const std::string& needle : needles) {
      EXPECT_EQ(text.find(needle), std::string::npos)
          << name << " contains a secret, key or token (" << needle.size()
          << " characters)";
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace tokenbroker
