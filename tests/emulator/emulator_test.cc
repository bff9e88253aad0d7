#include "emulator/emulator.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/poll_until.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::emulator {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::StatusIs;

constexpr char kOrg[] = "c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f";
constexpr char kOtherOrg[] = "99999999-0000-4000-8000-000000000000";
constexpr char kProd[] = "7f3a9b2e-1d4c-4e8f-a6b5-0c9d8e7f6a51";
constexpr char kSandbox[] = "2b8c4d6e-9f1a-4b3c-8d5e-7a6b5c4d3e22";
constexpr char kTokenPath[] = "/accounts/api/v2/oauth2/token";
constexpr char kProjectsPath[] = "/designcenter/api-designer/projects";

constexpr char kFixture[] = R"yaml(
token_lifetime_seconds: 3600
organizations:
  - id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    name: Acme Corp
    environments:
      - {id: 7f3a9b2e-1d4c-4e8f-a6b5-0c9d8e7f6a51, name: Production, is_production: true}
      - {id: 2b8c4d6e-9f1a-4b3c-8d5e-7a6b5c4d3e22, name: Sandbox}
  - id: 99999999-0000-4000-8000-000000000000
    name: Other Corp
users:
  - {id: user-1, username: alice, org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
  - {id: user-2, username: bob, org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
apps:
  - client_id: design-center-app
    client_secret: dc-secret
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    grant_types: [client_credentials]
    scopes:
      - {scope: view:design_center, org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
      - {scope: view:environment, org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
      - read:exchange
  - client_id: cloudhub-viewer
    client_secret: ch-secret
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    scopes:
      - scope: read:applications
        org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
        env: 2b8c4d6e-9f1a-4b3c-8d5e-7a6b5c4d3e22
  - client_id: user-app
    client_secret: user-secret
    org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f
    grant_types: [authorization_code, refresh_token]
    scopes:
      - {scope: view:design_center, org: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
    redirect_uris: [http://127.0.0.1:8080/oauth/callback]
design_center_projects:
  - {id: p1, name: Orders API, org_id: c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f}
  - {id: p2, name: Other API, org_id: 99999999-0000-4000-8000-000000000000}
exchange_assets:
  - {group_id: g, asset_id: orders-api, version: 1.0.0, name: Orders API}
  - {group_id: g, asset_id: customers-api, version: 2.0.0, name: Customers API}
cloudhub_applications:
  - {domain: orders-prod, env_id: 7f3a9b2e-1d4c-4e8f-a6b5-0c9d8e7f6a51}
  - {domain: orders-sandbox, env_id: 2b8c4d6e-9f1a-4b3c-8d5e-7a6b5c4d3e22}
)yaml";

std::string Form(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string out;
  for (const auto& [k, v] : kv) {
    if (!out.empty()) out += "&";
    out += k + "=" + httplib::detail::encode_query_param(v);
  }
  return out;
}

json Json(const httplib::Result& res) {
  return json::parse(res->body, nullptr, false);
}

class EmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith(kFixture); }

  void StartWith(const std::string& yaml) {
    emulator_.reset();
    absl::StatusOr<Fixture> fixture = ParseFixture(yaml, "test fixture");
    ASSERT_THAT(fixture, IsOk());
    emulator_ = std::make_unique<Emulator>(*std::move(fixture));
    ASSERT_THAT(emulator_->Start(Options()), IsOk());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", emulator_->port());
    client_->set_read_timeout(5, 0);
  }

  httplib::Result TokenRequest(const std::string& client_id,
                               const std::string& secret) {
    return client_->Post(kTokenPath,
                         Form({{"grant_type", "client_credentials"},
                               {"client_id", client_id},
                               {"client_secret", secret}}),
                         "application/x-www-form-urlencoded");
  }

  std::string Token(const std::string& client_id = "design-center-app",
                    const std::string& secret = "dc-secret") {
    httplib::Result res = TokenRequest(client_id, secret);
    if (!res || res->status != 200) return "";
    return Json(res)["access_token"].get<std::string>();
  }

  httplib::Result GetProjects(const std::string& token,
                              const std::string& org = kOrg) {
    return client_->Get(kProjectsPath, {{"Authorization", "Bearer " + token},
                                        {"X-ORGANIZATION-ID", org},
                                        {"X-OWNER-ID", "user-1"}});
  }

  httplib::Result PostJson(const std::string& path, const std::string& body) {
    return client_->Post(path.c_str(), body, "application/json");
  }

  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<httplib::Client> client_;
};

// --- Token endpoint ---------------------------------------------------------

TEST_F(EmulatorTest, ClientCredentialsForm) {
  httplib::Result res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(res->get_header_value("Cache-Control"), "no-store");
  const json body = Json(res);
  EXPECT_EQ(body["token_type"], "bearer");
  EXPECT_EQ(body["expires_in"], 3600);
  EXPECT_EQ(body["access_token"].get<std::string>().size(), 64u);
  EXPECT_FALSE(body.contains("refresh_token"));
  EXPECT_NE(Token(), body["access_token"]);  // random, not reused
}

TEST_F(EmulatorTest, ClientCredentialsJsonAndBasic) {
  httplib::Result res = PostJson(
      kTokenPath,
      R"({"grant_type":"client_credentials",)"
      R"("client_id":"design-center-app","client_secret":"dc-secret"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(Json(res).contains("access_token"));

  httplib::Client basic("127.0.0.1", emulator_->port());
  basic.set_basic_auth("design-center-app", "dc-secret");
  res = basic.Post(kTokenPath, "grant_type=client_credentials",
                   "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(EmulatorTest, BadCredentialsAreInvalidClient) {
  for (const auto& [id, secret] :
       std::vector<std::pair<std::string, std::string>>{
           {"design-center-app", "wrong"}, {"nobody", "dc-secret"}}) {
    httplib::Result res = TokenRequest(id, secret);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    EXPECT_EQ(Json(res)["error"], "invalid_client");
    EXPECT_THAT(res->body, Not(HasSubstr("dc-secret")));
  }
}

TEST_F(EmulatorTest, MalformedTokenRequests) {
  struct Case {
    std::string body, content_type, error;
    int status;
  };
  const std::vector<Case> cases = {
      {"client_id=design-center-app&client_secret=dc-secret",
       "application/x-www-form-urlencoded", "invalid_request", 400},
      {"grant_type=password&client_id=design-center-app&client_secret=dc-"
       "secret",
       "application/x-www-form-urlencoded", "unsupported_grant_type", 400},
      {"grant_type=client_credentials&client_id=design-center-app",
       "application/x-www-form-urlencoded", "invalid_request", 400},
      {"grant_type=client_credentials", "text/plain", "invalid_request", 400},
      {"{not json", "application/json", "invalid_request", 400},
      {R"({"grant_type":"client_credentials","client_id":1})",
       "application/json", "invalid_request", 400},
      {"grant_type=client_credentials&client_id=user-app&client_secret=user-"
       "secret",
       "application/x-www-form-urlencoded", "unauthorized_client", 400},
      {"grant_type=refresh_token&refresh_token=nope&client_id=user-app&"
       "client_secret=user-secret",
       "application/x-www-form-urlencoded", "invalid_grant", 400},
      {"grant_type=authorization_code&code=nope&redirect_uri=x&client_id=user-"
       "app&client_secret=user-secret",
       "application/x-www-form-urlencoded", "invalid_grant", 400},
  };
  for (const Case& c : cases) {
    httplib::Result res =
        client_->Post(kTokenPath, c.body, c.content_type.c_str());
    ASSERT_TRUE(res) << c.body;
    EXPECT_EQ(res->status, c.status) << c.body;
    EXPECT_EQ(Json(res)["error"], c.error) << c.body;
  }
}

// --- Resources and scopes ---------------------------------------------------

TEST_F(EmulatorTest, TokenThenDesignCenterProjects) {
  const std::string token = Token();
  httplib::Result res = GetProjects(token);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const json body = Json(res);
  ASSERT_EQ(body.size(), 1u);
  EXPECT_EQ(body[0]["id"], "p1");
  EXPECT_EQ(body[0]["name"], "Orders API");

  res = GetProjects(token, kOtherOrg);  // scope only in kOrg
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_THAT(Json(res)["message"].get<std::string>(),
              HasSubstr("view:design_center"));

  res = client_->Get(kProjectsPath, {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);  // no X-ORGANIZATION-ID

  for (const std::string& bad : {std::string(""), std::string("nope")}) {
    res = GetProjects(bad);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    EXPECT_TRUE(Json(res).contains("message"));
  }
}

TEST_F(EmulatorTest, SetAppScopesInvalidatesOldTokensAndEnforcesNewScopes) {
  const std::string old_token = Token();
  ASSERT_EQ(GetProjects(old_token)->status, 200);
  ASSERT_THAT(emulator_->SetAppScopes("design-center-app",
                                      {{"view:environment", kOrg, ""}}),
              IsOk());
  EXPECT_EQ(GetProjects(old_token)->status, 401);
  const std::string new_token = Token();
  httplib::Result res = GetProjects(new_token);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_EQ(Json(res)["missing_scope"], "view:design_center");
  EXPECT_THAT(Json(res)["message"].get<std::string>(),
              HasSubstr("lacks the scope view:design_center"));
  EXPECT_THAT(emulator_->SetAppScopes("nobody", {}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EmulatorTest, RevokeAppInvalidatesTokens) {
  const std::string token = Token();
  ASSERT_THAT(emulator_->RevokeApp("design-center-app"), IsOk());
  EXPECT_EQ(GetProjects(token)->status, 401);
  EXPECT_EQ(GetProjects(Token())->status, 200);
  EXPECT_THAT(emulator_->RevokeApp("nobody"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EmulatorTest, RevokeEndpoint) {
  const std::string token = Token();
  httplib::Result res = client_->Post("/accounts/api/v2/oauth2/revoke",
                                      Form({{"token", token},
                                            {"client_id", "cloudhub-viewer"},
                                            {"client_secret", "ch-secret"}}),
                                      "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);  // another client's token: ignored
  EXPECT_EQ(GetProjects(token)->status, 200);

  res = client_->Post("/accounts/api/v2/oauth2/revoke",
                      Form({{"token", token},
                            {"client_id", "design-center-app"},
                            {"client_secret", "wrong"}}),
                      "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);

  for (const std::string& t : {token, std::string("unknown")}) {
    res = client_->Post("/accounts/api/v2/oauth2/revoke",
                        Form({{"token", t},
                              {"client_id", "design-center-app"},
                              {"client_secret", "dc-secret"}}),
                        "application/x-www-form-urlencoded");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_EQ(GetProjects(token)->status, 401);
}

TEST_F(EmulatorTest, SecretRotation) {
  const std::string token = Token();
  ASSERT_THAT(emulator_->SetClientSecret("design-center-app", "new-secret"),
              IsOk());
  EXPECT_EQ(TokenRequest("design-center-app", "dc-secret")->status, 401);
  EXPECT_EQ(TokenRequest("design-center-app", "new-secret")->status, 200);
  EXPECT_EQ(GetProjects(token)->status, 200);
  EXPECT_THAT(emulator_->SetClientSecret("design-center-app", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EmulatorTest, OtherResources) {
  const std::string token = Token();
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  httplib::Result res = client_->Get(
      absl::StrCat("/accounts/api/organizations/", kOrg, "/environments"),
      auth);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  json body = Json(res);
  EXPECT_EQ(body["total"], 2);
  EXPECT_EQ(body["data"][0]["name"], "Production");
  EXPECT_EQ(body["data"][0]["isProduction"], true);
  EXPECT_EQ(body["data"][0]["organizationId"], kOrg);
  res = client_->Get(
      absl::StrCat("/accounts/api/organizations/", kOtherOrg, "/environments"),
      auth);
  EXPECT_EQ(res->status, 403);

  res = client_->Get("/exchange/api/v2/assets/search?search=orders&limit=10",
                     auth);
  ASSERT_EQ(res->status, 200);
  body = Json(res);
  ASSERT_EQ(body.size(), 1u);
  EXPECT_EQ(body[0]["assetId"], "orders-api");
  res = client_->Get("/exchange/api/v2/assets/search?offset=1", auth);
  EXPECT_EQ(Json(res).size(), 1u);
  res = client_->Get("/exchange/api/v2/assets/search?limit=x", auth);
  EXPECT_EQ(res->status, 400);

  res = client_->Get("/accounts/api/me", auth);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["client"]["client_id"], "design-center-app");
  EXPECT_EQ(Json(res)["client"]["org_id"], kOrg);

  // read:applications only in Sandbox.
  const std::string ch = Token("cloudhub-viewer", "ch-secret");
  httplib::Headers headers = {{"Authorization", "Bearer " + ch},
                              {"X-ANYPNT-ORG-ID", kOrg},
                              {"X-ANYPNT-ENV-ID", kSandbox}};
  res = client_->Get("/cloudhub/api/applications", headers);
  ASSERT_EQ(res->status, 200);
  ASSERT_EQ(Json(res).size(), 1u);
  EXPECT_EQ(Json(res)[0]["domain"], "orders-sandbox");
  headers.erase("X-ANYPNT-ENV-ID");
  headers.emplace("X-ANYPNT-ENV-ID", kProd);
  res = client_->Get("/cloudhub/api/applications", headers);
  EXPECT_EQ(res->status, 403);
  res = client_->Get("/cloudhub/api/applications", auth);
  EXPECT_EQ(res->status, 400);  // headers missing
  res = client_->Get(kProjectsPath, {{"Authorization", "Bearer " + ch},
                                     {"X-ORGANIZATION-ID", kOrg}});
  EXPECT_EQ(res->status, 403);

  res = client_->Get("/no/such/thing");
  EXPECT_EQ(res->status, 404);
  res =
      client_->Get("/accounts/api/v2/oauth2/.well-known/openid-configuration");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["token_endpoint"],
            emulator_->base_url() + "/accounts/api/v2/oauth2/token");
}

// The user-app tests (authorization code, refresh, userinfo, scopes of user
// tokens, authorize errors) are in authorize_test.cc, through the sign-in and
// consent pages.

// --- Faults -----------------------------------------------------------------

TEST_F(EmulatorTest, FaultKindsAsSeenByAClient) {
  Fault fault;
  fault.count = 1;

  fault.kind = FaultKind::kStatus500;
  emulator_->AddFault(fault);
  httplib::Result res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);

  fault.kind = FaultKind::kRateLimit503;
  fault.retry_after_seconds = 7;
  emulator_->AddFault(fault);
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_THAT(res->body, IsEmpty());
  const int64_t reset = std::stoll(res->get_header_value("X-RateLimit-Reset"));
  EXPECT_GE(reset, now + 7);
  EXPECT_LE(reset, now + 9);

  fault.kind = FaultKind::kTooMany429;
  fault.retry_after_seconds = 3;
  emulator_->AddFault(fault);
  res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "3");

  fault.kind = FaultKind::kReset;
  emulator_->AddFault(fault);
  res = TokenRequest("design-center-app", "dc-secret");
  EXPECT_FALSE(res);
  EXPECT_EQ(res.error(), httplib::Error::Read);

  fault.kind = FaultKind::kMalformedJson;
  emulator_->AddFault(fault);
  res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_TRUE(Json(res).is_discarded());

  fault.kind = FaultKind::kPlainText401;
  emulator_->AddFault(fault);
  res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain");

  fault.kind = FaultKind::kInvalidClient;
  emulator_->AddFault(fault);
  res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(Json(res)["error"], "invalid_client");

  fault.kind = FaultKind::kLatency;
  fault.latency_ms = 150;
  emulator_->AddFault(fault);
  const absl::Time start = absl::Now();
  res = TokenRequest("design-center-app", "dc-secret");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));

  // All faults were used up.
  EXPECT_EQ(TokenRequest("design-center-app", "dc-secret")->status, 200);
}

TEST_F(EmulatorTest, FaultCountAndEndpointSelection) {
  const std::string token = Token();
  Fault fault;
  fault.kind = FaultKind::kStatus500;
  fault.count = 2;
  fault.endpoint = "resource";
  emulator_->AddFault(fault);
  EXPECT_EQ(TokenRequest("design-center-app", "dc-secret")->status, 200);
  EXPECT_EQ(GetProjects(token)->status, 500);
  EXPECT_EQ(GetProjects(token)->status, 500);
  EXPECT_EQ(GetProjects(token)->status, 200);

  fault.endpoint = "*";
  fault.count = -1;
  emulator_->AddFault(fault);
  EXPECT_EQ(TokenRequest("design-center-app", "dc-secret")->status, 500);
  EXPECT_EQ(GetProjects(token)->status, 500);
  EXPECT_EQ(client_->Get("/_emulator/counters")->status, 200);  // never
  emulator_->ClearFaults();
  EXPECT_EQ(GetProjects(token)->status, 200);
}

TEST_F(EmulatorTest, LatencyFaultCountsClientsThatGoAway) {
  Fault fault;
  fault.endpoint = "echo";
  fault.kind = FaultKind::kLatency;
  fault.count = 1;

  // A client that waits for the answer gets it; nothing counts as aborted.
  fault.latency_ms = 50;
  emulator_->AddFault(fault);
  httplib::Result res = client_->Get("/_emulator/echo/patient");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(emulator_->GetCounters().aborted_by_client, IsEmpty());

  // A client that gives up first closes the connection: the emulator stops
  // waiting (long before the latency is over) and counts the abort.
  fault.latency_ms = 120000;
  emulator_->AddFault(fault);
  httplib::Client impatient("127.0.0.1", emulator_->port());
  impatient.set_read_timeout(0, 200000);
  EXPECT_FALSE(impatient.Get("/_emulator/echo/impatient"));
  ASSERT_TRUE(PollUntil([&] {
    return emulator_->GetCounters().aborted_by_client["echo"] == 1;
  })) << "the emulator saw the client close the connection";
  Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.requests_by_endpoint["echo"], 2);
  EXPECT_EQ(counters.aborted_by_client.size(), 1u);

  res = client_->Get("/_emulator/counters");
  ASSERT_TRUE(res);
  EXPECT_EQ(Json(res)["aborted_by_client"]["echo"], 1);
  // The fault was used up: the next request is answered at once.
  EXPECT_EQ(client_->Get("/_emulator/echo/after")->status, 200);
}

// --- Counters ---------------------------------------------------------------

TEST_F(EmulatorTest, Counters) {
  emulator_->ResetCounters();
  TokenRequest("design-center-app", "dc-secret");
  TokenRequest("design-center-app", "wrong");
  TokenRequest("cloudhub-viewer", "ch-secret");
  client_->Post(kTokenPath, "grant_type=client_credentials",
                "application/x-www-form-urlencoded");
  Fault fault;
  fault.kind = FaultKind::kStatus500;
  fault.count = 1;
  emulator_->AddFault(fault);
  TokenRequest("design-center-app", "dc-secret");

  Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.token_requests_by_client["design-center-app"], 3);
  EXPECT_EQ(counters.token_requests_by_client["cloudhub-viewer"], 1);
  EXPECT_EQ(counters.token_requests_by_client[""], 1);
  EXPECT_EQ(counters.requests_by_endpoint["token"], 5);
  EXPECT_EQ(counters.tokens_issued, 2);
  EXPECT_EQ(counters.connections, 5);  // this client does not keep alive

  // Keep-alive: three requests on one connection.
  emulator_->ResetCounters();
  httplib::Client keep("127.0.0.1", emulator_->port());
  keep.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(keep.Get("/_emulator/echo")->status, 200);
  }
  counters = emulator_->GetCounters();
  EXPECT_EQ(counters.connections, 1);
  EXPECT_EQ(counters.requests_by_endpoint["echo"], 3);

  httplib::Result res = client_->Get("/_emulator/counters");
  ASSERT_EQ(res->status, 200);
  const json body = Json(res);
  EXPECT_EQ(body["requests_by_endpoint"]["echo"], 3);
  EXPECT_EQ(body["connections"], 2);
  EXPECT_EQ(client_->Post("/_emulator/counters/reset", "", "application/json")
                ->status,
            200);
  EXPECT_EQ(emulator_->GetCounters().requests_by_endpoint.size(), 0u);
}

// --- Control API ------------------------------------------------------------

TEST_F(EmulatorTest, ControlApi) {
  const std::string token = Token();
  httplib::Result res =
      PostJson("/_emulator/apps/design-center-app/scopes",
               absl::StrCat(R"({"scopes":[{"scope":"read:exchange"},)",
                            R"({"scope":"view:design_center","org":")",
                            kOtherOrg, R"("}]})"));
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(GetProjects(token)->status, 401);
  EXPECT_EQ(GetProjects(Token(), kOtherOrg)->status, 200);
  EXPECT_EQ(GetProjects(Token(), kOrg)->status, 403);

  res = PostJson("/_emulator/token-lifetime", R"({"seconds":120})");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(TokenRequest("design-center-app", "dc-secret"))["expires_in"],
            120);

  res = PostJson("/_emulator/apps/design-center-app/secret",
                 R"({"client_secret":"rotated"})");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(TokenRequest("design-center-app", "rotated")->status, 200);

  const std::string t2 = Token("design-center-app", "rotated");
  res = PostJson("/_emulator/apps/design-center-app/revoke", "");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(GetProjects(t2, kOtherOrg)->status, 401);

  res = PostJson("/_emulator/faults",
                 R"({"endpoint":"token","kind":"too_many_429","count":1,)"
                 R"("retry_after_seconds":4})");
  ASSERT_EQ(res->status, 200);
  res = TokenRequest("design-center-app", "rotated");
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "4");
  PostJson("/_emulator/faults", R"({"kind":"status_500"})");
  EXPECT_EQ(TokenRequest("design-center-app", "rotated")->status, 500);
  EXPECT_EQ(client_->Delete("/_emulator/faults")->status, 200);
  EXPECT_EQ(TokenRequest("design-center-app", "rotated")->status, 200);
}

TEST_F(EmulatorTest, ControlApiRejectsBadInput) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"/_emulator/faults", "not json"},
      {"/_emulator/faults", "[]"},
      {"/_emulator/faults", R"({"endpoint":"token"})"},
      {"/_emulator/faults", R"({"kind":"explode"})"},
      {"/_emulator/faults", R"({"kind":"reset","endpoint":"nowhere"})"},
      {"/_emulator/faults", R"({"kind":"reset","count":0})"},
      {"/_emulator/faults", R"({"kind":"reset","count":"2"})"},
      {"/_emulator/faults", R"({"kind":"latency","latency_ms":-5})"},
      {"/_emulator/faults", R"({"kind":"reset","colour":"red"})"},
      {"/_emulator/token-lifetime", R"({"seconds":0})"},
      {"/_emulator/token-lifetime", R"({"seconds":"60"})"},
      {"/_emulator/token-lifetime", R"({})"},
      {"/_emulator/apps/design-center-app/scopes", R"({"scopes":"x"})"},
      {"/_emulator/apps/design-center-app/scopes", R"({"scopes":[{}]})"},
      {"/_emulator/apps/design-center-app/scopes",
       R"({"scopes":[{"scope":"a","org":5}]})"},
      {"/_emulator/apps/design-center-app/secret", R"({"client_secret":""})"},
      {"/_emulator/apps/design-center-app/secret", R"({})"},
  };
  for (const auto& [path, body] : bad) {
    httplib::Result res = PostJson(path, body);
    ASSERT_TRUE(res) << path << " " << body;
    EXPECT_EQ(res->status, 400) << path << " " << body;
    EXPECT_TRUE(Json(res).contains("message")) << path << " " << body;
  }
  EXPECT_EQ(
      PostJson("/_emulator/apps/nobody/scopes", R"({"scopes":[]})")->status,
      404);
  EXPECT_EQ(PostJson("/_emulator/apps/nobody/revoke", "")->status, 404);
  EXPECT_EQ(PostJson("/_emulator/nonsense", "{}")->status, 404);
  // Still serving, state untouched.
  EXPECT_EQ(GetProjects(Token())->status, 200);
}

// --- Echo -------------------------------------------------------------------

TEST_F(EmulatorTest, Echo) {
  httplib::Headers headers = {{"X-Multi", "one"}, {"X-Multi", "two"}};
  httplib::Result res =
      client_->Put("/_emulator/echo/some/path?a=1&a=2&b=x%20y", headers,
                   "hello", "text/plain");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  json body = Json(res);
  EXPECT_EQ(body["method"], "PUT");
  EXPECT_EQ(body["path"], "/_emulator/echo/some/path");
  EXPECT_EQ(body["query"], json::parse(R"([["a","1"],["a","2"],["b","x y"]])"));
  EXPECT_EQ(body["body"], "hello");
  std::vector<std::string> multi;
  for (const json& h : body["headers"]) {
    if (h[0] == "X-Multi") multi.push_back(h[1]);
    EXPECT_NE(h[0], "REMOTE_ADDR");
  }
  EXPECT_THAT(multi, ElementsAre("one", "two"));

  res = client_->Post("/_emulator/echo", std::string("\xff\x00\x01", 3),
                      "application/octet-stream");
  EXPECT_EQ(Json(res)["body_base64"], "/wAB");

  res = client_->Get("/_emulator/echo/x?status=418");
  EXPECT_EQ(res->status, 418);
  res = client_->Get("/_emulator/echo/x?bytes=100000");
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body.size(), 100000u);
  res = client_->Get("/_emulator/echo/x?status=abc");
  EXPECT_EQ(res->status, 400);

  res = client_->Get("/_emulator/authed-echo/x");
  EXPECT_EQ(res->status, 401);
  res = client_->Get("/_emulator/authed-echo/x",
                     {{"Authorization", "Bearer " + Token()}});
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json(res)["client_id"], "design-center-app");
}

// --- Lifecycle --------------------------------------------------------------

TEST_F(EmulatorTest, Lifecycle) {
  EXPECT_EQ(emulator_->base_url(),
            absl::StrCat("http://127.0.0.1:", emulator_->port()));
  EXPECT_THAT(emulator_->Start(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  Emulator other(*ParseFixture(kFixture, "f"));
  Options taken;
  taken.port = emulator_->port();
  EXPECT_THAT(other.Start(taken), StatusIs(absl::StatusCode::kUnavailable));
  emulator_->Stop();
  emulator_->Stop();
  EXPECT_FALSE(client_->Get("/_emulator/echo"));
}

// --- Fixtures ---------------------------------------------------------------

TEST(FixtureTest, ParseErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"apps: [", "invalid YAML"},
      {"", "empty"},
      {"colour: red\n", "unknown key \"colour\""},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "org_id: o}\n",
       "\"client_secret\" is required"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: nope}\n",
       "unknown organization \"nope\""},
      {"organizations:\n  - {id: o, name: O}\napps:\n"
       "  - {client_id: a, client_secret: s, org_id: o}\n"
       "  - {client_id: a, client_secret: s, org_id: o}\n",
       "duplicate client_id"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, grant_types: [implicit]}\n",
       "unsupported grant type \"implicit\""},
      {"token_lifetime_seconds: soon\n", "must be an integer"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, scopes: [{scope: x, env: e}]}\n",
       "unknown environment"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, audience: everyone}\n",
       "audience must be all_users or org_members"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, rotate_refresh_tokens: maybe}\n",
       "must be true or false"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, refresh_token_lifetime_seconds: 0}\n",
       "refresh_token_lifetime_seconds must be positive"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, redirect_uris: [\"http://h/cb#x\"]}\n",
       "without a fragment"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, redirect_uris: [/cb]}\n",
       "absolute http(s) URI"},
      {"organizations:\n  - {id: o, name: O}\napps:\n  - {client_id: a, "
       "client_secret: s, org_id: o, colour: red}\n",
       "unknown key \"colour\" in an app"},
      {"organizations:\n  - {id: o, name: O}\nusers:\n  - {id: u, username: "
       "x, org_id: o, org_ids: [nope]}\n",
       "unknown organization \"nope\""},
      {"organizations:\n  - {id: o, name: O}\nusers:\n  - {id: u, username: "
       "x, org_id: o}\n  - {id: v, username: x, org_id: o}\n",
       "duplicate username"},
      {"organizations:\n  - {id: o, name: O}\nusers:\n  - {id: u, username: "
       "x, org_id: o, pasword: p}\n",
       "unknown key \"pasword\" in a user"},
  };
  for (const auto& [yaml, message] : cases) {
    EXPECT_THAT(
        ParseFixture(yaml, "bad.yaml"),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << yaml;
  }
  EXPECT_THAT(ParseFixture("colour: red\n", "bad.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("bad.yaml: line 1:")));
  EXPECT_THAT(LoadFixtureFile("/nonexistent/fixture.yaml"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(FixtureTest, DemoFixture) {
  absl::StatusOr<Fixture> fixture = LoadFixtureFile(EMULATOR_DEMO_FIXTURE);
  ASSERT_THAT(fixture, IsOk());
  ASSERT_EQ(fixture->organizations.size(), 2u);
  EXPECT_EQ(fixture->organizations[0].name, "Acme Corp");
  EXPECT_EQ(fixture->organizations[0].environments.size(), 2u);
  std::vector<std::string> ids;
  for (const AppFixture& app : fixture->apps) ids.push_back(app.client_id);
  EXPECT_THAT(ids,
              ::testing::IsSupersetOf({"design-center-app", "exchange-reader",
                                       "user-app", "env-viewer-app"}));
  ASSERT_GE(fixture->users.size(), 2u);
  // The walkthrough's members-only app, and a user outside its org.
  for (const AppFixture& app : fixture->apps) {
    if (app.client_id != "env-viewer-app") continue;
    EXPECT_EQ(app.name, "Environment Viewer");
    EXPECT_EQ(app.audience, Audience::kOrgMembers);
    EXPECT_THAT(app.grant_types,
                ElementsAre("authorization_code", "refresh_token"));
    ASSERT_THAT(app.scopes, ::testing::SizeIs(1));
    EXPECT_EQ(app.scopes[0].scope, "view:environment");
    EXPECT_EQ(app.scopes[0].org, kOrg);
    EXPECT_THAT(app.redirect_uris,
                ElementsAre("http://127.0.0.1:9090/oauth/callback",
                            "http://localhost:9090/oauth/callback"));
    EXPECT_EQ(app.refresh_token_lifetime_seconds, 90 * 86400);
    EXPECT_FALSE(app.rotate_refresh_tokens.has_value());
  }
  std::map<std::string, UserFixture> users;
  for (const UserFixture& user : fixture->users) users[user.username] = user;
  EXPECT_FALSE(users["alice.acme"].password.empty());
  EXPECT_THAT(users["alice.acme"].org_ids, ElementsAre(kOrg));
  EXPECT_FALSE(users["bob.globex"].password.empty());
  EXPECT_THAT(users["bob.globex"].org_ids, Not(::testing::Contains(kOrg)));
}

TEST(FixtureTest, UserAndAppDefaults) {
  absl::StatusOr<Fixture> fixture = ParseFixture(R"yaml(
rotate_refresh_tokens: false
organizations:
  - {id: o, name: O}
  - {id: p, name: P}
users:
  - {id: u, username: x, org_id: o}
  - {id: v, username: y, org_id: o, org_ids: [p], password: pw}
apps:
  - {client_id: a, client_secret: s, org_id: o}
  - client_id: b
    client_secret: s
    org_id: o
    audience: all_users
    rotate_refresh_tokens: true
    refresh_token_lifetime_seconds: 60
)yaml",
                                                 "f");
  ASSERT_THAT(fixture, IsOk());
  EXPECT_FALSE(fixture->rotate_refresh_tokens);
  EXPECT_THAT(fixture->users[0].org_ids, ElementsAre("o"));
  EXPECT_EQ(fixture->users[0].password, "");
  EXPECT_THAT(fixture->users[1].org_ids, ElementsAre("o", "p"));
  EXPECT_EQ(fixture->apps[0].audience, Audience::kAllUsers);
  EXPECT_FALSE(fixture->apps[0].rotate_refresh_tokens.has_value());
  EXPECT_EQ(fixture->apps[0].refresh_token_lifetime_seconds,
            kDefaultRefreshTokenLifetimeSeconds);
  EXPECT_EQ(fixture->apps[1].rotate_refresh_tokens, true);
  EXPECT_EQ(fixture->apps[1].refresh_token_lifetime_seconds, 60);
}

}  // namespace
}  // namespace tokenbroker::emulator
