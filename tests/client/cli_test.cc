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
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;
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

TEST(ParseArgsTest, HelpForEachCommand) {
  for (const char* command :
       {"token", "call", "watch", "apps", "refresh", "revoke", "reload"}) {
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
