// Apps acting on behalf of users, end to end in-process: the emulator, the
// broker (gRPC and its OAuth pages) and a scripted browser over real
// sockets. Connect a user with a one-time link, get the user's token, Call
// with it, the caller's users, a refused grant (password changed), a
// reconnect, revocation, rotation. The real-browser version of the sign-in
// is tests/browser/broker_oauth.js.

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anypoint/tokenbroker/v1/broker_admin.grpc.pb.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/scripted_browser.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::BrowserResponse;
using ::tokenbroker::testing::ScriptedBrowser;

constexpr char kAcme[] = "c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f";
constexpr char kAlice[] = "alice.acme";
constexpr char kAlicePassword[] = "alice-demo-password";

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
  return context;
}

class UserAppsTest : public testing::BrokerFixture {
 protected:
  std::string ListenYaml() const override {
    return "listen:\n  grpc: 127.0.0.1:0\n  admin_http: 127.0.0.1:0\n"
           "development:\n  insecure_plaintext: true\n";
  }

  std::string AppsYaml() const override {
    return absl::StrCat(BrokerFixture::AppsYaml(),
                        "  - name: viewer\n"
                        "    base_url: ",
                        emulator_->base_url(),
                        "\n"
                        "    grant_type: authorization_code\n"
                        "    client_id: env-viewer-app\n"
                        "    client_secret: {file: ",
                        secrets_dir_,
                        "/viewer}\n"
                        "    scopes: [view:environment]\n");
  }

  std::string CallersYaml() const override { return Callers(users_); }

  std::string Callers(const std::string& users) const {
    return absl::StrCat(
        BrokerFixture::CallersYaml(),
        "      - {app: viewer, scopes: ['*'], users: ", users,
        ", routes: ['GET /accounts/api/organizations/*/environments', "
        "'GET /exchange/api/v2/assets/search']}\n");
  }

  std::string ExtraYaml() const override {
    WriteFile(secrets_dir_ + "/viewer", "env-viewer-fake-secret\n");
    WriteFile(
        secrets_dir_ + "/k1",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    return absl::StrCat("grant_store:\n  directory: ", secrets_dir_,
                        "/grants\n  keys: [{id: k1, file: ", secrets_dir_,
                        "/k1}]\n");
  }

  void SetUp() override {
    BrokerFixture::SetUp();
    ASSERT_TRUE(broker_->StartHttp().ok());
    ASSERT_NE(broker_->admin_http_port(), 0);
    ASSERT_TRUE(emulator_
                    ->AddRedirectUri("env-viewer-app",
                                     absl::StrCat("http://127.0.0.1:",
                                                  broker_->admin_http_port(),
                                                  "/oauth/callback"))
                    .ok());
  }

  // Mints a link and signs `user` in with the scripted browser; returns the
  // broker's callback page.
  BrowserResponse Connect(const std::string& user = kAlice,
                          const std::string& password = kAlicePassword,
                          bool approve = true) {
    pb::CreateConnectLinkRequest request;
    request.set_app("viewer");
    pb::CreateConnectLinkResponse link;
    grpc::Status status =
        admin_->CreateConnectLink(Context().get(), request, &link);
    EXPECT_TRUE(status.ok()) << status.error_message();
    ScriptedBrowser browser;
    absl::StatusOr<BrowserResponse> page =
        browser.SignInAndConsent(link.url(), user, password, approve);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : BrowserResponse();
  }

  grpc::Status UserToken(const std::string& user,
                         pb::GetTokenResponse* response) {
    pb::GetTokenRequest request;
    request.set_app("viewer");
    request.set_user(user);
    grpc::Status status = stub_->GetToken(Context().get(), request, response);
    if (status.ok()) tokens_seen_.push_back(response->access_token());
    return status;
  }

  grpc::Status Call(const std::string& path, pb::CallResponse* response,
                    const std::string& user = kAlice) {
    pb::CallRequest request;
    request.set_app("viewer");
    request.set_method("GET");
    request.set_path(path);
    request.set_user(user);
    return stub_->Call(Context().get(), request, response);
  }

  pb::AppInfo Viewer() {
    pb::ListAppsResponse apps;
    EXPECT_TRUE(admin_->ListApps(Context().get(), {}, &apps).ok());
    for (const pb::AppInfo& app : apps.apps()) {
      if (app.name() == "viewer") return app;
    }
    ADD_FAILURE() << "no app viewer";
    return pb::AppInfo();
  }

  std::string users_ = "['*']";
};

TEST_F(UserAppsTest, ConnectThenTokensAndCallsForTheUser) {
  // Nobody connected yet: the caller is told what to do.
  pb::GetTokenResponse token;
  grpc::Status status = UserToken("", &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("tokenbrokerctl connect"));

  BrowserResponse page = Connect();
  EXPECT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(page.body, HasSubstr(kAlice));
  EXPECT_THAT(page.body, HasSubstr("view:environment"));

  pb::AppInfo viewer = Viewer();
  ASSERT_EQ(viewer.users_size(), 1);
  EXPECT_EQ(viewer.users(0).username(), kAlice);
  EXPECT_EQ(viewer.users(0).state(), pb::USER_GRANT_STATE_CONNECTED);

  ASSERT_TRUE(UserToken(kAlice, &token).ok());
  EXPECT_EQ(token.username(), kAlice);
  EXPECT_FALSE(token.user_id().empty());
  // One connected user: the user may be left out.
  pb::GetTokenResponse same;
  ASSERT_TRUE(UserToken("", &same).ok());
  EXPECT_EQ(same.access_token(), token.access_token());
  ASSERT_TRUE(UserToken(token.user_id(), &same).ok());
  EXPECT_EQ(same.access_token(), token.access_token());

  pb::CallResponse answer;
  ASSERT_TRUE(
      Call(absl::StrCat("/accounts/api/organizations/", kAcme, "/environments"),
           &answer)
          .ok());
  EXPECT_EQ(answer.status(), 200) << answer.body();
  // Outside view:environment: Anypoint refuses, the status is data.
  ASSERT_TRUE(
      Call("/exchange/api/v2/assets/search?search=orders", &answer).ok());
  EXPECT_EQ(answer.status(), 403);

  // A user that never connected, and a user app's user on an app that has
  // none.
  EXPECT_EQ(UserToken("bob.globex", &same).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  pb::GetTokenRequest request;
  request.set_app("design-center");
  request.set_user(kAlice);
  EXPECT_EQ(stub_->GetToken(Context().get(), request, &same).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // An empty app never picks a user app.
  request.Clear();
  request.add_scopes("view:environment");
  ASSERT_TRUE(stub_->GetToken(Context().get(), request, &same).ok());
  EXPECT_EQ(same.app(), "design-center");
  tokens_seen_.push_back(same.access_token());
}

TEST_F(UserAppsTest, CallersActOnlyForTheirUsers) {
  Connect();
  pb::GetTokenResponse token;
  ASSERT_TRUE(UserToken(kAlice, &token).ok());

  // A watch of alice's token, then a reload that takes alice away from the
  // caller: the watch ends, and new requests are refused.
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
  pb::WatchTokenRequest watch;
  watch.set_app("viewer");
  watch.set_user(kAlice);
  std::unique_ptr<grpc::ClientReader<pb::GetTokenResponse>> reader =
      stub_->WatchToken(&watch_context, watch);
  pb::GetTokenResponse first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.username(), kAlice);

  WriteConfigFile(absl::StrCat(ListenYaml(), AppsYaml(),
                               Callers("[bob.globex]"), ExtraYaml()));
  pb::ReloadConfigResponse reloaded;
  ASSERT_TRUE(admin_->ReloadConfig(Context().get(), {}, &reloaded).ok());
  pb::GetTokenResponse more;
  while (reader->Read(&more)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  grpc::Status status = UserToken(kAlice, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("may not act for user"));
  // A user the caller may act for who has not connected is named so; one it
  // may not act for is refused the same way whether or not it exists.
  EXPECT_EQ(UserToken("bob.globex", &token).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(UserToken("nobody", &token).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  pb::CallResponse answer;
  EXPECT_EQ(
      Call(absl::StrCat("/accounts/api/organizations/", kAcme, "/environments"),
           &answer)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(UserAppsTest, ARefusedGrantNeedsReauthorizationUntilTheUserConnects) {
  Connect();
  pb::GetTokenResponse token;
  ASSERT_TRUE(UserToken(kAlice, &token).ok());

  // The user changes their password: Anypoint revokes their grants.
  ASSERT_TRUE(emulator_->SetUserPassword(kAlice, "a-new-password").ok());
  pb::RefreshTokenRequest refresh;
  refresh.set_app("viewer");
  refresh.set_user(kAlice);
  pb::RefreshTokenResponse refreshed;
  grpc::Status status =
      admin_->RefreshToken(Context().get(), refresh, &refreshed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr("tokenbrokerctl connect viewer"));

  broker_->user_grants()->Drain();
  status = UserToken(kAlice, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("re-authorization"));
  pb::AppInfo viewer = Viewer();
  ASSERT_EQ(viewer.users_size(), 1);
  EXPECT_EQ(viewer.users(0).state(),
            pb::USER_GRANT_STATE_NEEDS_REAUTHORIZATION);
  EXPECT_THAT(viewer.users(0).reason(), HasSubstr("invalid_grant"));
  EXPECT_THAT(broker_->metrics().Serialize(),
              HasSubstr("tokenbroker_user_grants{app=\"viewer\",state="
                        "\"needs_reauthorization\"} 1"));

  // Signing in again (with the new password) restores the grant.
  BrowserResponse page = Connect(kAlice, "a-new-password");
  EXPECT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(Viewer().users(0).state(), pb::USER_GRANT_STATE_CONNECTED);
  ASSERT_TRUE(UserToken(kAlice, &token).ok());
}

TEST_F(UserAppsTest, RevokeDeletesTheGrantAndRevokesItUpstream) {
  Connect();
  pb::GetTokenResponse token;
  ASSERT_TRUE(UserToken(kAlice, &token).ok());
  ASSERT_EQ(emulator_->ListGrants().size(), 1u);

  pb::RevokeTokenRequest revoke;
  revoke.set_app("viewer");
  pb::RevokeTokenResponse revoked;
  // A user app needs the user named.
  EXPECT_EQ(admin_->RevokeToken(Context().get(), revoke, &revoked).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  revoke.set_user(kAlice);
  grpc::Status status = admin_->RevokeToken(Context().get(), revoke, &revoked);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(revoked.revoked(), 1);
  EXPECT_EQ(Viewer().users_size(), 0);
  EXPECT_TRUE(emulator_->ListGrants().empty());
  EXPECT_EQ(UserToken(kAlice, &token).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(UserAppsTest, RotatedRefreshTokensAreUsedOnceEach) {
  ASSERT_TRUE(emulator_->SetRotateRefreshTokens("env-viewer-app", true).ok());
  Connect();
  pb::RefreshTokenRequest refresh;
  refresh.set_app("viewer");
  refresh.set_user(kAlice);
  for (int i = 0; i < 3; ++i) {
    pb::RefreshTokenResponse refreshed;
    grpc::Status status =
        admin_->RefreshToken(Context().get(), refresh, &refreshed);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  pb::GetTokenResponse token;
  ASSERT_TRUE(UserToken(kAlice, &token).ok());
  EXPECT_EQ(emulator_->GetCounters().refresh_token_reuse_detected, 0);
  ASSERT_EQ(emulator_->ListGrants().size(), 1u);
  // The newest refresh token, and its predecessor until the newest is
  // first presented (the emulator's reuse grace): never more.
  EXPECT_LE(emulator_->ListGrants()[0].live_refresh_tokens, 2);
}

TEST_F(UserAppsTest, A401RefreshesTheUsersTokenOnceAndRetries) {
  Connect();
  pb::GetTokenResponse before;
  ASSERT_TRUE(UserToken(kAlice, &before).ok());
  const int64_t refreshes =
      emulator_->GetCounters().token_requests_by_grant_type["refresh_token"];
  emulator::Fault fault;
  fault.endpoint = "resource";
  fault.kind = emulator::FaultKind::kPlainText401;
  fault.count = 1;
  emulator_->AddFault(fault);
  pb::CallResponse answer;
  ASSERT_TRUE(
      Call(absl::StrCat("/accounts/api/organizations/", kAcme, "/environments"),
           &answer)
          .ok());
  EXPECT_EQ(answer.status(), 200) << answer.body();
  EXPECT_EQ(
      emulator_->GetCounters().token_requests_by_grant_type["refresh_token"],
      refreshes + 1);
  pb::GetTokenResponse after;
  ASSERT_TRUE(UserToken(kAlice, &after).ok());
  EXPECT_NE(after.access_token(), before.access_token());
}

TEST_F(UserAppsTest, DeclinedSignInStoresNothing) {
  BrowserResponse page = Connect(kAlice, kAlicePassword, /*approve=*/false);
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(page.body, HasSubstr("declined"));
  EXPECT_EQ(Viewer().users_size(), 0);
}

}  // namespace
}  // namespace tokenbroker
