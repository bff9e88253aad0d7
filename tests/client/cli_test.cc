// tokenbrokerctl's commands, argument parsing and exit codes, through a mock
// BrokerStub.

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/cli/args.h"
#include "client/cli/commands.h"
#include "client/cli/format.h"
#include "client/cli/io.h"
#include "client/cli/stub.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::cli {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;
using ::testing::_;
using ::testing::DoAll;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::Return;
using ::testing::StartsWith;
using ::testing::StrictMock;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

class MockBrokerStub : public BrokerStub {
 public:
  MOCK_METHOD(absl::StatusOr<v1::GetTokenResponse>, GetToken,
              (const v1::GetTokenRequest&), (override));
  MOCK_METHOD(absl::Status, WatchToken,
              (const v1::WatchTokenRequest&,
               (const std::function<bool(const v1::GetTokenResponse&)>&)),
              (override));
  MOCK_METHOD(absl::StatusOr<v1::CallResponse>, Call, (const v1::CallRequest&),
              (override));
  MOCK_METHOD(
      absl::Status, CallStream,
      (const v1::CallRequest&,
       (const std::function<absl::Status(const v1::CallStreamResponse&)>&)),
      (override));
  MOCK_METHOD(absl::StatusOr<v1::ListAppsResponse>, ListApps,
              (const v1::ListAppsRequest&), (override));
  MOCK_METHOD(absl::StatusOr<v1::RefreshTokenResponse>, RefreshToken,
              (const v1::RefreshTokenRequest&), (override));
  MOCK_METHOD(absl::StatusOr<v1::RevokeTokenResponse>, RevokeToken,
              (const v1::RevokeTokenRequest&), (override));
  MOCK_METHOD(absl::StatusOr<v1::ReloadConfigResponse>, ReloadConfig,
              (const v1::ReloadConfigRequest&), (override));
  MOCK_METHOD(absl::StatusOr<v1::CreateConnectLinkResponse>, CreateConnectLink,
              (const v1::CreateConnectLinkRequest&), (override));
};

v1::GetTokenResponse MakeToken(const std::string& access_token) {
  v1::GetTokenResponse token;
  token.set_access_token(access_token);
  token.set_token_type("Bearer");
  token.mutable_expires_at()->set_seconds(1700003600);
  token.add_scopes("read:exchange");
  token.set_app("exchange-reader");
  return token;
}

TEST(RunTokenTest, PrintsTheTokenAlone) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, GetToken(_)).WillOnce(Invoke([](const auto& request) {
    EXPECT_EQ(request.app(), "exchange-reader");
    EXPECT_THAT(request.scopes(), ElementsAre("read:exchange"));
    EXPECT_EQ(request.min_ttl_seconds(), 60);
    return MakeToken("tok");
  }));
  TokenOptions options;
  options.app = "exchange-reader";
  options.scopes = {"read:exchange"};
  options.min_ttl_seconds = 60;
  std::ostringstream out;
  EXPECT_THAT(RunToken(stub, options, out), IsOk());
  EXPECT_EQ(out.str(), "tok\n");
}

TEST(RunTokenTest, JsonAndFingerprint) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, GetToken(_)).WillRepeatedly(Return(MakeToken("tok")));
  TokenOptions options;
  options.output = TokenOptions::Output::kJson;
  std::ostringstream json;
  ASSERT_THAT(RunToken(stub, options, json), IsOk());
  EXPECT_THAT(json.str(), HasSubstr("\"access_token\": \"tok\""));
  EXPECT_THAT(json.str(),
              HasSubstr("\"expires_at\": \"2023-11-14T23:13:20Z\""));
  EXPECT_THAT(json.str(), HasSubstr("\"app\": \"exchange-reader\""));

  options.output = TokenOptions::Output::kFingerprint;
  std::ostringstream fingerprint;
  ASSERT_THAT(RunToken(stub, options, fingerprint), IsOk());
  EXPECT_EQ(fingerprint.str(), Fingerprint("tok") + "\n");
  EXPECT_EQ(fingerprint.str().find("tok"), std::string::npos);
}

TEST(RunTokenTest, ErrorsPassThroughWithTheirExitCode) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, GetToken(_))
      .WillOnce(Return(absl::NotFoundError("no app x")));
  std::ostringstream out;
  absl::Status status = RunToken(stub, TokenOptions(), out);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(ExitCodeFor(status), kExitNotFound);
  EXPECT_EQ(FormatError(status), "tokenbrokerctl: NOT_FOUND: no app x");
  EXPECT_EQ(out.str(), "");
}

TEST(RunTokenTest, SendsTheUserAndShowsWhoseTokenInJson) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, GetToken(_)).WillOnce(Invoke([](const auto& request) {
    EXPECT_EQ(request.user(), "alice");
    v1::GetTokenResponse token = MakeToken("tok");
    token.set_user_id("u-1");
    token.set_username("alice");
    return token;
  }));
  TokenOptions options;
  options.app = "viewer";
  options.user = "alice";
  options.output = TokenOptions::Output::kJson;
  std::ostringstream out;
  ASSERT_THAT(RunToken(stub, options, out), IsOk());
  EXPECT_THAT(out.str(), HasSubstr("\"user_id\": \"u-1\""));
  EXPECT_THAT(out.str(), HasSubstr("\"username\": \"alice\""));
  // A token of no user keeps the JSON it always had.
  EXPECT_FALSE(TokenToJson(MakeToken("tok")).contains("user_id"));
}

TEST(RunTokenTest, ReauthorizationNeededPrintsTheBrokersMessage) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, GetToken(_))
      .WillOnce(Return(absl::FailedPreconditionError(
          "the grant of alice to viewer needs re-authorization "
          "(invalid_grant): "
          "run 'tokenbrokerctl connect viewer'")));
  TokenOptions options;
  options.app = "viewer";
  options.user = "alice";
  std::ostringstream out;
  absl::Status status = RunToken(stub, options, out);
  EXPECT_EQ(ExitCodeFor(status), kExitPrecondition);
  EXPECT_EQ(FormatError(status),
            "tokenbrokerctl: FAILED_PRECONDITION: the grant of alice to viewer "
            "needs re-authorization (invalid_grant): run 'tokenbrokerctl "
            "connect viewer'");
  EXPECT_EQ(out.str(), "");
}

TEST(ExitCodeTest, OneCodePerClassOfError) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::UnknownError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::UnimplementedError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("")), 4);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("")), 4);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("")), 5);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("")), 6);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("")), 6);
  EXPECT_EQ(ExitCodeFor(ConnectTimeoutError("nobody")), 7);
  EXPECT_THAT(ConnectTimeoutError("nobody"),
              StatusIs(absl::StatusCode::kDeadlineExceeded, "nobody"));
}

TEST(RunWatchTest, PrintsFingerprintsUntilCount) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, WatchToken(_, _))
      .WillOnce(Invoke(
          [](const v1::WatchTokenRequest& request, const auto& on_token) {
            EXPECT_EQ(request.app(), "exchange-reader");
            EXPECT_TRUE(on_token(MakeToken("first")));
            EXPECT_FALSE(on_token(MakeToken("second")));  // --count 2
            return absl::OkStatus();
          }));
  WatchOptions options;
  options.app = "exchange-reader";
  options.count = 2;
  std::ostringstream out;
  ASSERT_THAT(
      RunWatch(
          stub, options, [] { return absl::FromUnixSeconds(1700000000); }, out),
      IsOk());
  EXPECT_EQ(out.str(), "2023-11-14T22:13:20Z  " + Fingerprint("first") +
                           "  expires_at=2023-11-14T23:13:20Z\n"
                           "2023-11-14T22:13:20Z  " +
                           Fingerprint("second") +
                           "  expires_at=2023-11-14T23:13:20Z\n");
}

TEST(RunWatchTest, StreamErrorIsTheResult) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, WatchToken(_, _))
      .WillOnce(Return(absl::FailedPreconditionError("invalid_client")));
  std::ostringstream out;
  absl::Status status = RunWatch(
      stub, WatchOptions(), [] { return absl::UnixEpoch(); }, out);
  EXPECT_EQ(ExitCodeFor(status), kExitPrecondition);
}

TEST(RunAppsTest, TableAndJson) {
  v1::ListAppsResponse apps;
  v1::AppInfo* app = apps.add_apps();
  app->set_name("design-center");
  app->set_grant_type(v1::GRANT_TYPE_CLIENT_CREDENTIALS);
  app->set_control_plane("us");
  app->set_client_id("design-center-app");
  app->add_scopes("view:environment");
  v1::TokenState* state = app->add_tokens();
  state->set_valid(true);
  state->mutable_valid_until()->set_seconds(1700003600);
  state->mutable_last_refresh()->set_seconds(1700000000);
  state->set_refreshes(2);
  state->set_token_fingerprint("0123456789ab");
  v1::AppInfo* idle = apps.add_apps();
  idle->set_name("exchange-reader");

  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, ListApps(_)).WillRepeatedly(Return(apps));
  std::ostringstream table;
  ASSERT_THAT(RunApps(stub, AppsOptions(), table), IsOk());
  EXPECT_THAT(table.str(), HasSubstr("NAME "));
  EXPECT_THAT(table.str(),
              HasSubstr("design-center    client_credentials  us"));
  EXPECT_THAT(table.str(), HasSubstr("valid until 2023-11-14T23:13:20Z"));
  EXPECT_THAT(table.str(), HasSubstr("exchange-reader  unspecified"));

  AppsOptions json_options;
  json_options.json = true;
  std::ostringstream json;
  ASSERT_THAT(RunApps(stub, json_options, json), IsOk());
  EXPECT_THAT(json.str(), HasSubstr("\"token_fingerprint\": \"0123456789ab\""));
  EXPECT_THAT(json.str(), HasSubstr("\"refreshes\": 2"));
}

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(seconds);
  return timestamp;
}

// A user app "viewer" with two users (one needing re-authorization), an
// unconnected user app "editor", and a client-credentials app.
v1::ListAppsResponse AppsWithUsers() {
  v1::ListAppsResponse apps;
  v1::AppInfo* cc = apps.add_apps();
  cc->set_name("design-center");
  cc->set_grant_type(v1::GRANT_TYPE_CLIENT_CREDENTIALS);
  cc->set_control_plane("us");
  cc->add_scopes("view:environment");
  v1::AppInfo* editor = apps.add_apps();
  editor->set_name("editor");
  editor->set_grant_type(v1::GRANT_TYPE_AUTHORIZATION_CODE);
  editor->set_control_plane("us");
  editor->add_scopes("edit:environment");
  v1::AppInfo* viewer = apps.add_apps();
  viewer->set_name("viewer");
  viewer->set_grant_type(v1::GRANT_TYPE_AUTHORIZATION_CODE);
  viewer->set_control_plane("eu");
  viewer->add_scopes("view:environment");
  v1::UserGrantInfo* alice = viewer->add_users();
  alice->set_user_id("u-1");
  alice->set_username("alice");
  alice->add_scopes("view:environment");
  alice->add_scopes("offline_access");
  *alice->mutable_connected_at() = At(1700000000);
  alice->set_state(v1::USER_GRANT_STATE_CONNECTED);
  alice->mutable_token()->set_valid(true);
  *alice->mutable_token()->mutable_valid_until() = At(1700003600);
  alice->mutable_token()->set_token_fingerprint("0123456789ab");
  v1::UserGrantInfo* bob = viewer->add_users();
  bob->set_user_id("u-2");
  bob->set_username("bob");
  bob->add_scopes("view:environment");
  *bob->mutable_connected_at() = At(1690000000);
  bob->set_state(v1::USER_GRANT_STATE_NEEDS_REAUTHORIZATION);
  bob->set_reason("refresh token revoked\n(invalid_grant)");
  return apps;
}

TEST(RunAppsTest, UsersOfUserAppsInTheirOwnTable) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, ListApps(_)).WillRepeatedly(Return(AppsWithUsers()));
  std::ostringstream table;
  ASSERT_THAT(RunApps(stub, AppsOptions(), table), IsOk());
  std::vector<std::string> lines = absl::StrSplit(table.str(), '\n');
  ASSERT_EQ(lines.size(), 10u) << table.str();
  EXPECT_THAT(lines[0], StartsWith("NAME  "));
  EXPECT_THAT(lines[1], StartsWith("design-center  client_credentials  us"));
  EXPECT_THAT(lines[2], MatchesRegex("editor +authorization_code +us +"
                                     "edit:environment +no user connected +"
                                     "- +- +- +-"));
  EXPECT_THAT(lines[3], MatchesRegex("viewer +authorization_code +eu +"
                                     "view:environment +2 users \\(1 needs "
                                     "re-authorization\\) .*"));
  EXPECT_EQ(lines[4], "");
  EXPECT_THAT(lines[5], MatchesRegex("APP +USER +USER ID +CONNECTED AT +SCOPES "
                                     "+TOKEN +STATE"));
  EXPECT_THAT(lines[6], MatchesRegex("editor +- +- +- +- +none +no user "
                                     "connected; run 'tokenbrokerctl connect "
                                     "editor'"));
  EXPECT_THAT(lines[7],
              MatchesRegex("viewer +alice +u-1 +2023-11-14T22:13:20Z +"
                           "view:environment,offline_access +valid until "
                           "2023-11-14T23:13:20Z +connected"));
  EXPECT_THAT(lines[8],
              MatchesRegex("viewer +bob +u-2 +2023-07-22T04:26:40Z +"
                           "view:environment +none +NEEDS RE-AUTHORIZATION: "
                           "refresh token revoked \\(invalid_grant\\); run "
                           "'tokenbrokerctl connect viewer'"));
  EXPECT_EQ(lines[9], "");
  EXPECT_THAT(table.str(), Not(HasSubstr("0123456789ab")));
}

TEST(RunAppsTest, NoUsersTableWithoutUserApps) {
  v1::ListAppsResponse apps = AppsWithUsers();
  apps.mutable_apps()->DeleteSubrange(1, 2);
  EXPECT_EQ(UsersTable(apps), "");
  EXPECT_THAT(AppsTable(apps), Not(HasSubstr("USER")));
  // The JSON of a client-credentials app has no "users".
  EXPECT_FALSE(AppsToJson(apps)["apps"][0].contains("users"));
}

TEST(RunAppsTest, UsersInJson) {
  nlohmann::ordered_json json = AppsToJson(AppsWithUsers());
  EXPECT_EQ(json["apps"][1]["users"], nlohmann::ordered_json::array());
  const nlohmann::ordered_json& users = json["apps"][2]["users"];
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0]["user_id"], "u-1");
  EXPECT_EQ(users[0]["username"], "alice");
  EXPECT_EQ(users[0]["state"], "connected");
  EXPECT_EQ(users[0]["connected_at"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(users[0]["updated_at"], nullptr);
  EXPECT_EQ(users[0]["token"]["valid_until"], "2023-11-14T23:13:20Z");
  EXPECT_EQ(users[0]["token"]["token_fingerprint"], "0123456789ab");
  EXPECT_EQ(users[1]["state"], "needs_reauthorization");
  EXPECT_EQ(users[1]["reason"], "refresh token revoked\n(invalid_grant)");
  EXPECT_EQ(users[1]["token"], nullptr);
}

TEST(RunWatchTest, SendsTheUser) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, WatchToken(_, _))
      .WillOnce(Invoke([](const v1::WatchTokenRequest& request, const auto&) {
        EXPECT_EQ(request.user(), "alice");
        return absl::OkStatus();
      }));
  WatchOptions options;
  options.app = "viewer";
  options.user = "alice";
  std::ostringstream out;
  EXPECT_THAT(RunWatch(
                  stub, options, [] { return absl::UnixEpoch(); }, out),
              IsOk());
}

TEST(AdminCommandsTest, RefreshAndRevokeNameTheUser) {
  StrictMock<MockBrokerStub> stub;
  v1::RefreshTokenRequest refreshed;
  v1::RefreshTokenResponse new_token;
  *new_token.mutable_expires_at() = At(1700003600);
  EXPECT_CALL(stub, RefreshToken(_))
      .WillOnce(DoAll(::testing::SaveArg<0>(&refreshed), Return(new_token)));
  v1::RevokeTokenRequest revoked;
  v1::RevokeTokenResponse dropped;
  dropped.set_revoked(1);
  EXPECT_CALL(stub, RevokeToken(_))
      .WillOnce(DoAll(::testing::SaveArg<0>(&revoked), Return(dropped)));

  std::ostringstream out;
  RefreshOptions refresh;
  refresh.app = "viewer";
  refresh.user = "alice";
  ASSERT_THAT(RunRefresh(stub, refresh, out), IsOk());
  RevokeOptions revoke;
  revoke.app = "viewer";
  revoke.user = "alice";
  ASSERT_THAT(RunRevoke(stub, revoke, out), IsOk());
  EXPECT_EQ(refreshed.app(), "viewer");
  EXPECT_EQ(refreshed.user(), "alice");
  EXPECT_EQ(revoked.app(), "viewer");
  EXPECT_EQ(revoked.user(), "alice");
  EXPECT_EQ(out.str(),
            "refreshed viewer for alice: new token valid until "
            "2023-11-14T23:13:20Z\n"
            "revoked the grant of alice to viewer and deleted it; dropped 1 "
            "cached token\n");
}

// `connect` with a fake clock that only its sleeps advance.
class RunConnectTest : public ::testing::Test {
 protected:
  RunConnectTest() {
    link_.set_url("http://127.0.0.1:9090/oauth/start?ticket=t1");
    *link_.mutable_expires_at() = At(1700000600);
    options_.app = "viewer";
  }

  absl::Status Run() {
    return RunConnect(
        stub_, options_, [this] { return now_; },
        [this](absl::Duration d) {
          sleeps_.push_back(d);
          now_ += d;
        },
        out_);
  }

  // The link's lines, as scripts see them.
  static constexpr char kLinkLines[] =
      "Open this link in a browser and sign in as the user who connects "
      "viewer (single use, valid until 2023-11-14T22:23:20Z):\n"
      "http://127.0.0.1:9090/oauth/start?ticket=t1\n";

  StrictMock<MockBrokerStub> stub_;
  v1::CreateConnectLinkResponse link_;
  ConnectOptions options_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::vector<absl::Duration> sleeps_;
  std::ostringstream out_;
};

TEST_F(RunConnectTest, NoWaitPrintsTheLinkAlone) {
  options_.wait = absl::ZeroDuration();
  EXPECT_CALL(stub_, CreateConnectLink(_))
      .WillOnce(Invoke([&](const v1::CreateConnectLinkRequest& request) {
        EXPECT_EQ(request.app(), "viewer");
        return link_;
      }));
  ASSERT_THAT(Run(), IsOk());
  EXPECT_EQ(out_.str(), kLinkLines);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(RunConnectTest, WaitsForANewUser) {
  v1::ListAppsResponse before = AppsWithUsers();
  v1::ListAppsResponse after = before;
  v1::UserGrantInfo* carol = after.mutable_apps(2)->add_users();
  carol->set_user_id("u-3");
  carol->set_username("carol");
  carol->add_scopes("view:environment");
  carol->set_state(v1::USER_GRANT_STATE_CONNECTED);
  *carol->mutable_connected_at() = At(1700000010);
  {
    ::testing::InSequence in_order;
    EXPECT_CALL(stub_, ListApps(_)).WillOnce(Return(before));
    EXPECT_CALL(stub_, CreateConnectLink(_)).WillOnce(Return(link_));
    EXPECT_CALL(stub_, ListApps(_))
        .WillOnce(Return(before))
        .WillOnce(Return(absl::UnavailableError("restarting")))
        .WillOnce(Return(after));
  }
  ASSERT_THAT(Run(), IsOk());
  EXPECT_EQ(out_.str(), absl::StrCat(kLinkLines,
                                     "Waiting up to 10m for the sign-in...\n"
                                     "connected: carol (u-3) scopes: "
                                     "view:environment\n"));
  EXPECT_THAT(sleeps_, ElementsAre(absl::Seconds(2), absl::Seconds(2),
                                   absl::Seconds(2)));
}

TEST_F(RunConnectTest, AReconnectedUserCounts) {
  v1::ListAppsResponse before = AppsWithUsers();
  v1::ListAppsResponse after = before;
  // bob signs in again: connected, with a newer consent.
  v1::UserGrantInfo* bob = after.mutable_apps(2)->mutable_users(1);
  bob->set_state(v1::USER_GRANT_STATE_CONNECTED);
  bob->clear_reason();
  *bob->mutable_connected_at() = At(1700000020);
  EXPECT_CALL(stub_, CreateConnectLink(_)).WillOnce(Return(link_));
  EXPECT_CALL(stub_, ListApps(_))
      .WillOnce(Return(before))
      .WillOnce(Return(after));
  ASSERT_THAT(Run(), IsOk());
  EXPECT_THAT(out_.str(),
              HasSubstr("\nconnected: bob (u-2) scopes: view:environment\n"));
}

TEST_F(RunConnectTest, TimesOutWhenNobodySignsIn) {
  options_.wait = absl::Seconds(5);
  EXPECT_CALL(stub_, CreateConnectLink(_)).WillOnce(Return(link_));
  // Users already connected before the link do not count.
  EXPECT_CALL(stub_, ListApps(_)).WillRepeatedly(Return(AppsWithUsers()));
  absl::Status status = Run();
  EXPECT_EQ(ExitCodeFor(status), kExitConnectTimeout);
  EXPECT_THAT(status.message(),
              HasSubstr("no user connected viewer within 5s"));
  EXPECT_THAT(status.message(), HasSubstr("tokenbrokerctl connect viewer"));
  EXPECT_THAT(status.message(), Not(HasSubstr("ticket")));
  // Bounded looks, the last one at the deadline.
  EXPECT_THAT(sleeps_, ElementsAre(absl::Seconds(2), absl::Seconds(2),
                                   absl::Seconds(1)));
  EXPECT_THAT(out_.str(), StartsWith(kLinkLines));
}

TEST_F(RunConnectTest, BrokerErrors) {
  // No link for an app the broker refuses (the broker's words).
  EXPECT_CALL(stub_, ListApps(_)).WillOnce(Return(AppsWithUsers()));
  EXPECT_CALL(stub_, CreateConnectLink(_))
      .WillOnce(Return(absl::FailedPreconditionError(
          "app design-center acts on its own behalf")));
  options_.app = "design-center";
  EXPECT_EQ(ExitCodeFor(Run()), kExitPrecondition);
  EXPECT_EQ(out_.str(), "");

  // Not an admin.
  EXPECT_CALL(stub_, ListApps(_))
      .WillOnce(Return(absl::PermissionDeniedError("admin role needed")));
  EXPECT_EQ(ExitCodeFor(Run()), kExitDenied);

  // The app removed while waiting.
  options_.app = "viewer";
  v1::ListAppsResponse without = AppsWithUsers();
  without.mutable_apps()->DeleteSubrange(2, 1);
  EXPECT_CALL(stub_, CreateConnectLink(_)).WillOnce(Return(link_));
  EXPECT_CALL(stub_, ListApps(_))
      .WillOnce(Return(AppsWithUsers()))
      .WillOnce(Return(without));
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kNotFound,
                              HasSubstr("no longer configured")));
}

TEST(AdminCommandsTest, RefreshRevokeReload) {
  StrictMock<MockBrokerStub> stub;
  v1::RefreshTokenResponse refreshed;
  refreshed.mutable_expires_at()->set_seconds(1700003600);
  EXPECT_CALL(stub, RefreshToken(_)).WillOnce(Return(refreshed));
  v1::RevokeTokenResponse revoked;
  revoked.set_revoked(1);
  EXPECT_CALL(stub, RevokeToken(_)).WillOnce(Return(revoked));
  v1::ReloadConfigResponse reloaded;
  reloaded.add_added("new-app");
  EXPECT_CALL(stub, ReloadConfig(_)).WillOnce(Return(reloaded));

  std::ostringstream out;
  RefreshOptions refresh;
  refresh.app = "design-center";
  ASSERT_THAT(RunRefresh(stub, refresh, out), IsOk());
  RevokeOptions revoke;
  revoke.app = "design-center";
  ASSERT_THAT(RunRevoke(stub, revoke, out), IsOk());
  ASSERT_THAT(RunReload(stub, out), IsOk());
  EXPECT_EQ(out.str(),
            "refreshed design-center: new token valid until "
            "2023-11-14T23:13:20Z\n"
            "revoked 1 cached token of design-center\n"
            "configuration reloaded; added: new-app; changed: none; "
            "removed: none\n");
}

TEST(AdminCommandsTest, PermissionDeniedExitsWith4) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, RevokeToken(_))
      .WillOnce(Return(absl::PermissionDeniedError("admin role needed")));
  std::ostringstream out;
  absl::Status status = RunRevoke(stub, RevokeOptions(), out);
  EXPECT_EQ(ExitCodeFor(status), kExitDenied);
}

TEST(RunCallTest, PrintsStatusHeadersAndBody) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, Call(_)).WillOnce(Invoke([](const v1::CallRequest& r) {
    EXPECT_EQ(r.app(), "design-center");
    EXPECT_EQ(r.method(), "POST");
    EXPECT_EQ(r.path(), "/x");
    EXPECT_EQ(r.body(), "data");
    EXPECT_EQ(r.headers(0).name(), "Accept");
    v1::CallResponse response;
    response.set_status(403);
    v1::Header* header = response.add_headers();
    header->set_name("Content-Type");
    header->set_value("application/json");
    response.set_body("{}");
    return response;
  }));
  CallOptions options;
  options.app = "design-center";
  options.method = "POST";
  options.path = "/x";
  options.body = "data";
  options.headers = {{"Accept", "application/json"}};
  options.include_headers = true;
  std::ostringstream out;
  // The upstream 403 is data: the command succeeds.
  ASSERT_THAT(RunCall(stub, options, out), IsOk());
  EXPECT_EQ(out.str(), "HTTP 403\nContent-Type: application/json\n\n{}");
}

v1::CallStreamResponse Piece(const std::string& chunk, int status = 0) {
  v1::CallStreamResponse message;
  message.set_status(status);
  if (status != 0) {
    v1::Header* header = message.add_headers();
    header->set_name("Content-Type");
    header->set_value("application/octet-stream");
  }
  message.set_body_chunk(chunk);
  return message;
}

using OnMessage = std::function<absl::Status(const v1::CallStreamResponse&)>;

TEST(RunCallTest, StreamWritesHeadThenEachPieceAsItArrives) {
  StrictMock<MockBrokerStub> stub;
  std::ostringstream out;
  EXPECT_CALL(stub, CallStream(_, _))
      .WillOnce(Invoke([&](const v1::CallRequest& r, const OnMessage& on) {
        EXPECT_EQ(r.app(), "exchange-reader");
        EXPECT_EQ(r.method(), "GET");
        EXPECT_EQ(r.path(), "/exchange/api/v2/assets/a/b/1.0.0/x.jar");
        EXPECT_THAT(on(Piece("ab", 200)), IsOk());
        // Written before the next piece comes.
        EXPECT_EQ(out.str(),
                  "HTTP 200\nContent-Type: application/octet-stream\n\nab");
        EXPECT_THAT(on(Piece("")), IsOk());
        EXPECT_THAT(on(Piece("cd")), IsOk());
        return absl::OkStatus();
      }));
  CallOptions options;
  options.app = "exchange-reader";
  options.method = "GET";
  options.path = "/exchange/api/v2/assets/a/b/1.0.0/x.jar";
  options.include_headers = true;
  options.stream = true;
  ASSERT_THAT(RunCall(stub, options, out), IsOk());
  EXPECT_EQ(out.str(),
            "HTTP 200\nContent-Type: application/octet-stream\n\nabcd");
}

TEST(RunCallTest, StreamWithoutHeadersAndAnUpstreamErrorStatus) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, CallStream(_, _))
      .WillOnce(Invoke([](const v1::CallRequest&, const OnMessage& on) {
        EXPECT_THAT(on(Piece("{\"message\":\"no\"}", 404)), IsOk());
        return absl::OkStatus();
      }));
  CallOptions options;
  options.stream = true;
  std::ostringstream out;
  // The upstream 404 is data.
  ASSERT_THAT(RunCall(stub, options, out), IsOk());
  EXPECT_EQ(out.str(), "{\"message\":\"no\"}");
}

TEST(RunCallTest, StreamErrorAfterPartOfTheBody) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, CallStream(_, _))
      .WillOnce(Invoke([](const v1::CallRequest&, const OnMessage& on) {
        EXPECT_THAT(on(Piece("ab", 200)), IsOk());
        return absl::UnavailableError("upstream connection reset");
      }));
  CallOptions options;
  options.stream = true;
  std::ostringstream out;
  absl::Status status = RunCall(stub, options, out);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ExitCodeFor(status), kExitUnavailable);
  EXPECT_EQ(out.str(), "ab");
}

TEST(RunCallTest, StreamStopsWhenWritingFails) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, CallStream(_, _))
      .WillOnce(Invoke([](const v1::CallRequest&, const OnMessage& on) {
        absl::Status handled = on(Piece("ab", 200));
        EXPECT_THAT(handled, StatusIs(absl::StatusCode::kDataLoss));
        return handled;  // As the gRPC stub does: cancelled, not read on.
      }));
  CallOptions options;
  options.stream = true;
  std::ostringstream out;
  std::ostringstream body;
  body.setstate(std::ios::badbit);  // A full disk.
  absl::Status status = RunCall(stub, options, out, &body);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss,
                               HasSubstr("download was cancelled")));
  EXPECT_EQ(ExitCodeFor(status), kExitError);
}

TEST(RunCallTest, BodyToItsOwnStreamHeadersToOut) {
  StrictMock<MockBrokerStub> stub;
  EXPECT_CALL(stub, Call(_)).WillOnce(Invoke([](const v1::CallRequest&) {
    v1::CallResponse response;
    response.set_status(200);
    response.set_body("unary");
    return response;
  }));
  EXPECT_CALL(stub, CallStream(_, _))
      .WillOnce(Invoke([](const v1::CallRequest&, const OnMessage& on) {
        EXPECT_THAT(on(Piece("str", 200)), IsOk());
        EXPECT_THAT(on(Piece("eamed")), IsOk());
        return absl::OkStatus();
      }));
  CallOptions options;
  options.include_headers = true;
  std::ostringstream out;
  std::ostringstream body;
  ASSERT_THAT(RunCall(stub, options, out, &body), IsOk());
  EXPECT_EQ(out.str(), "HTTP 200\n\n");
  EXPECT_EQ(body.str(), "unary");

  options.stream = true;
  std::ostringstream stream_out;
  std::ostringstream stream_body;
  ASSERT_THAT(RunCall(stub, options, stream_out, &stream_body), IsOk());
  EXPECT_EQ(stream_out.str(),
            "HTTP 200\nContent-Type: application/octet-stream\n\n");
  EXPECT_EQ(stream_body.str(), "streamed");
}

// A temporary directory, removed with its content.
class TempDir {
 public:
  TempDir() {
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "tokenbrokerctl-test-XXXXXX")
            .string();
    if (mkdtemp(dir_template.data()) != nullptr) path_ = dir_template;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(OutputFileTest, KeptOnlyWhenCommitted) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string kept = dir.path() + "/kept";
  {
    absl::StatusOr<std::unique_ptr<OutputFile>> file = OutputFile::Open(kept);
    ASSERT_THAT(file, IsOk());
    (*file)->stream() << "body";
    EXPECT_THAT((*file)->Commit(), IsOk());
  }
  EXPECT_EQ(Slurp(kept), "body");

  const std::string dropped = dir.path() + "/dropped";
  {
    absl::StatusOr<std::unique_ptr<OutputFile>> file =
        OutputFile::Open(dropped);
    ASSERT_THAT(file, IsOk());
    (*file)->stream() << "partial";
    EXPECT_TRUE(std::filesystem::exists(dropped));
  }
  EXPECT_FALSE(std::filesystem::exists(dropped));

  EXPECT_THAT(OutputFile::Open(dir.path() + "/no/such/dir/file"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/no/such/dir/file")));
}

// ParseArgs, with the environment as a map.
absl::StatusOr<Invocation> Parse(
    const std::vector<std::string>& args,
    const std::map<std::string, std::string>& env = {}) {
  return ParseArgs(args, [&](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

TEST(ParseArgsTest, TokenCommand) {
  absl::StatusOr<Invocation> invocation =
      Parse({"--addr", "b:1", "token", "app", "--scope", "a", "--scope=b",
             "--json", "--plaintext", "--min-ttl", "60"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->command, "token");
  EXPECT_EQ(invocation->connection.addr, "b:1");
  EXPECT_TRUE(invocation->connection.plaintext);
  EXPECT_EQ(invocation->token.app, "app");
  EXPECT_THAT(invocation->token.scopes, ElementsAre("a", "b"));
  EXPECT_EQ(invocation->token.output, TokenOptions::Output::kJson);
  EXPECT_EQ(invocation->token.min_ttl_seconds, 60);
}

TEST(ParseArgsTest, EnvironmentVariablesAndFlagsWin) {
  std::map<std::string, std::string> env = {{"TOKENBROKER_ADDR", "env:1"},
                                            {"TOKENBROKER_CA", "ca.pem"},
                                            {"TOKENBROKER_BEARER_FILE", "key"}};
  absl::StatusOr<Invocation> invocation = Parse({"apps"}, env);
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->connection.addr, "env:1");
  EXPECT_EQ(invocation->connection.ca_file, "ca.pem");
  EXPECT_EQ(invocation->connection.bearer_file, "key");
  EXPECT_FALSE(invocation->connection.plaintext);

  invocation = Parse({"apps", "--addr", "flag:2", "--plaintext"}, env);
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->connection.addr, "flag:2");
  EXPECT_TRUE(invocation->connection.plaintext);

  invocation = Parse({"apps"}, {{"TOKENBROKER_PLAINTEXT", "1"}});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_TRUE(invocation->connection.plaintext);
}

TEST(ParseArgsTest, CallCommand) {
  absl::StatusOr<Invocation> invocation =
      Parse({"call", "app", "get", "/accounts/api/me", "-H", "Accept: a/b",
             "-d", "@body.json", "-i"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->call.method, "GET");
  EXPECT_EQ(invocation->call.path, "/accounts/api/me");
  ASSERT_EQ(invocation->call.headers.size(), 1u);
  EXPECT_EQ(invocation->call.headers[0].second, "a/b");
  EXPECT_EQ(invocation->call_data, "@body.json");
  EXPECT_TRUE(invocation->call.include_headers);
  EXPECT_FALSE(invocation->call.stream);
  EXPECT_EQ(invocation->call_output, std::nullopt);

  invocation = Parse({"call", "app", "GET", "/x", "--stream", "-o", "out.bin"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_TRUE(invocation->call.stream);
  EXPECT_EQ(invocation->call_output, "out.bin");
  invocation = Parse({"call", "app", "GET", "/x", "--output=-"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->call_output, "-");
  EXPECT_THAT(HelpText("call"), HasSubstr("--stream"));
  EXPECT_THAT(HelpText("call"), HasSubstr("-o, --output FILE"));
}

TEST(ParseArgsTest, UserFlags) {
  absl::StatusOr<Invocation> invocation =
      Parse({"token", "viewer", "--user", "alice"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->token.user, "alice");
  invocation = Parse({"call", "viewer", "GET", "/x", "--user=u-1"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->call.user, "u-1");
  invocation = Parse({"revoke", "viewer", "--user", " bob "});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->revoke.user, "bob");
  invocation = Parse({"revoke", "design-center"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->revoke.user, "");
  invocation = Parse({"watch", "viewer", "--user", "alice"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->watch.user, "alice");
  invocation = Parse({"refresh", "viewer", "--user", "alice"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->refresh.user, "alice");
}

TEST(ParseArgsTest, ConnectCommand) {
  absl::StatusOr<Invocation> invocation = Parse({"connect", "viewer"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->command, "connect");
  EXPECT_EQ(invocation->connect.app, "viewer");
  EXPECT_EQ(invocation->connect.wait, absl::Minutes(10));
  EXPECT_EQ(invocation->connect.poll_interval, absl::Seconds(2));
  const std::vector<std::pair<std::string, absl::Duration>> waits = {
      {"1s", absl::Seconds(1)},         {"90s", absl::Seconds(90)},
      {"1h30m", absl::Minutes(90)},     {"45", absl::Seconds(45)},
      {"0.5", absl::Milliseconds(500)},
  };
  for (const auto& [text, wait] : waits) {
    invocation = Parse({"connect", "viewer", "--wait", text});
    ASSERT_THAT(invocation, IsOk()) << text;
    EXPECT_EQ(invocation->connect.wait, wait) << text;
  }
  invocation = Parse({"connect", "--no-wait", "viewer"});
  ASSERT_THAT(invocation, IsOk());
  EXPECT_EQ(invocation->connect.wait, absl::ZeroDuration());
}

TEST(ParseArgsTest, HelpForEachCommand) {
  for (const char* command : {"token", "call", "watch", "apps", "refresh",
                              "revoke", "connect", "reload"}) {
    absl::StatusOr<Invocation> invocation = Parse({command, "--help"});
    ASSERT_THAT(invocation, IsOk()) << command;
    EXPECT_TRUE(invocation->help);
    EXPECT_EQ(invocation->help_topic, command);
    EXPECT_THAT(
        HelpText(command),
        HasSubstr(std::string("tokenbrokerctl [global flags] ") + command));
    EXPECT_THAT(HelpText(command), HasSubstr("Exit codes:"));
  }
  absl::StatusOr<Invocation> overview = Parse({"help"});
  ASSERT_THAT(overview, IsOk());
  EXPECT_TRUE(overview->help);
}

TEST(ParseArgsTest, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"watch"},
      {"revoke", "a", "b"},
      {"token", "--min-ttl", "soon"},
      {"token", "--json", "--fingerprint"},
      {"watch", "a", "--count", "0"},
      {"call", "a", "GET", "/x", "--header", "no-colon"},
      {"call", "a", "GET", "/x", "-o"},
      {"call", "a", "GET", "/x", "--output="},
      {"call", "a", "GET", "/x", "--stream=yes"},
      {"token", "--stream"},
      {"apps", "--plaintext", "--ca", "ca.pem"},
      {"apps", "--cert", "c.pem"},
      {"apps", "--timeout", "-1"},
      {"apps", "--no-such-flag"},
      {"token", "a", "--user"},
      {"token", "a", "--user="},
      {"call", "a", "GET", "/x", "--user", " "},
      {"connect"},
      {"connect", "a", "b"},
      {"connect", "a", "--wait", "soon"},
      {"connect", "a", "--wait", "0"},
      {"connect", "a", "--wait", "-1m"},
      {"connect", "a", "--wait", "25h"},
      {"connect", "a", "--wait", "1m", "--no-wait"},
      {"connect", "a", "--user", "x"},
  };
  for (const auto& args : bad) {
    absl::StatusOr<Invocation> invocation = Parse(args);
    EXPECT_THAT(invocation, StatusIs(absl::StatusCode::kInvalidArgument))
        << ::testing::PrintToString(args);
  }
}

TEST(MakeGrpcBrokerStubTest, UnreadableFilesAreUsageErrors) {
  ConnectionOptions options;
  options.bearer_file = "/nonexistent/bearer";
  EXPECT_THAT(MakeGrpcBrokerStub(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/nonexistent/bearer")));
}

}  // namespace
}  // namespace tokenbroker::cli
