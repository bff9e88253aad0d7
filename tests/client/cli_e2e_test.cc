// The tokenbrokerctl binary against the broker and emulator running
// in-process: output and exit codes as scripts see them.

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cli/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class CliEndToEndTest : public testing::BrokerFixture {
 protected:
  // Runs `tokenbrokerctl ARGS` with the broker's address in the environment.
  Result Run(const std::string& args) {
    std::string err_file = secrets_dir_ + "/ctl.err";
    std::string command =
        absl::StrCat("TOKENBROKER_ADDR=127.0.0.1:", broker_->port(),
                     " TOKENBROKER_PLAINTEXT=1 '", TOKENBROKERCTL, "' ", args,
                     " 2>'", err_file, "'");
    Result result;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return result;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
      result.out.append(buffer, n);
    }
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream err(err_file);
    std::stringstream content;
    content << err.rdbuf();
    result.err = content.str();
    std::remove(err_file.c_str());
    return result;
  }
};

TEST_F(CliEndToEndTest, TokenPrintsTheBrokersToken) {
  Result result = Run("token design-center");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string token(absl::StripSuffix(result.out, "\n"));
  tokens_seen_.push_back(token);
  EXPECT_FALSE(token.empty());
  EXPECT_EQ(token.find('\n'), std::string::npos);

  anypoint::tokenbroker::v1::GetTokenResponse response;
  ASSERT_TRUE(GetToken("design-center", &response).ok());
  EXPECT_EQ(response.access_token(), token);

  Result fingerprint = Run("token design-center --fingerprint");
  ASSERT_EQ(fingerprint.exit_code, 0) << fingerprint.err;
  EXPECT_EQ(fingerprint.out, cli::Fingerprint(token) + "\n");
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
}

TEST_F(CliEndToEndTest, TokenJson) {
  Result result = Run("token exchange-reader --json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("\"app\": \"exchange-reader\""));
  EXPECT_THAT(result.out, HasSubstr("\"token_type\": \"Bearer\""));
  EXPECT_THAT(result.out, HasSubstr("\"scopes\": ["));
  anypoint::tokenbroker::v1::GetTokenResponse response;
  ASSERT_TRUE(GetToken("exchange-reader", &response).ok());
}

TEST_F(CliEndToEndTest, ExitCodesOfErrors) {
  Result not_found = Run("token no-such-app");
  EXPECT_EQ(not_found.exit_code, 3);
  EXPECT_THAT(not_found.err, HasSubstr("tokenbrokerctl: NOT_FOUND: "));
  EXPECT_EQ(not_found.out, "");

  Result rejected = Run("token wrong-secret");
  EXPECT_EQ(rejected.exit_code, 5);
  EXPECT_THAT(rejected.err, HasSubstr("FAILED_PRECONDITION"));

  Result denied = Run("token exchange-reader --scope view:design_center");
  EXPECT_EQ(denied.exit_code, 4) << denied.err;

  Result usage = Run("token --min-ttl soon");
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("--min-ttl"));

  Result unreachable =
      Run("--addr 127.0.0.1:1 --timeout 5 token design-center");
  EXPECT_EQ(unreachable.exit_code, 6);
  EXPECT_THAT(unreachable.err, HasSubstr("UNAVAILABLE"));

  Result bad_file = Run("apps --bearer-file /nonexistent/key");
  EXPECT_EQ(bad_file.exit_code, 2);
  EXPECT_THAT(bad_file.err, HasSubstr("/nonexistent/key"));
}

TEST_F(CliEndToEndTest, AppsTable) {
  anypoint::tokenbroker::v1::GetTokenResponse response;
  ASSERT_TRUE(GetToken("design-center", &response).ok());
  Result result = Run("apps");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<std::string> lines =
      absl::StrSplit(absl::StripSuffix(result.out, "\n"), '\n');
  ASSERT_EQ(lines.size(), 4u) << result.out;
  EXPECT_THAT(lines[0], MatchesRegex("NAME +GRANT +CONTROL PLANE +SCOPES.*"));
  EXPECT_THAT(lines[1], HasSubstr("design-center"));
  EXPECT_THAT(lines[1], HasSubstr("valid until"));
  EXPECT_THAT(lines[2], HasSubstr("exchange-reader"));
  EXPECT_THAT(lines[3], HasSubstr("wrong-secret"));
  EXPECT_EQ(result.out.find(response.access_token()), std::string::npos);

  Result json = Run("apps --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr(absl::StrCat(
                            "\"token_fingerprint\": \"",
                            cli::Fingerprint(response.access_token()), "\"")));
}

TEST_F(CliEndToEndTest, WatchPrintsFingerprints) {
  Result result = Run("watch exchange-reader --count 1");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  anypoint::tokenbroker::v1::GetTokenResponse response;
  ASSERT_TRUE(GetToken("exchange-reader", &response).ok());
  EXPECT_THAT(result.out, HasSubstr(absl::StrCat(
                              "  ", cli::Fingerprint(response.access_token()),
                              "  expires_at=")));
  EXPECT_EQ(result.out.find(response.access_token()), std::string::npos);
}

TEST_F(CliEndToEndTest, HelpExitsZero) {
  for (const char* command :
       {"", "token", "call", "watch", "apps", "refresh", "revoke", "reload"}) {
    Result result = Run(absl::StrCat(command, " --help"));
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_THAT(result.out, HasSubstr("Usage: tokenbrokerctl")) << command;
  }
}

}  // namespace
}  // namespace tokenbroker
