// A reload sees a client id whose file now names another connected app
// (issue 10, defect 11): the app counts as changed, its cached tokens are
// dropped, and the next GetToken fetches with the new client id.

#include <chrono>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"

namespace tokenbroker {
namespace {

namespace pb = ::anypoint::tokenbroker::v1;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

class ReloadCredentialsTest : public testing::BrokerFixture {
 protected:
  // With id_from_file_, design-center's client id is read from a file (as
  // from a Kubernetes Secret), not written in the config.
  std::string AppsYaml() const override {
    std::string apps = BrokerFixture::AppsYaml();
    if (!id_from_file_) return apps;
    const std::string inline_id = "    client_id: design-center-app\n";
    size_t at = apps.find(inline_id);  // design-center comes first.
    EXPECT_NE(at, std::string::npos);
    if (at == std::string::npos) return apps;
    return apps.replace(
        at, inline_id.size(),
        absl::StrCat("    client_id: {file: ", IdPath(), "}\n"));
  }
  std::string IdPath() const { return secrets_dir_ + "/dc-id"; }

  grpc::Status Reload(pb::ReloadConfigResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return admin_->ReloadConfig(&context, pb::ReloadConfigRequest(), response);
  }

  bool id_from_file_ = false;
};

TEST_F(ReloadCredentialsTest, ClientIdFileSwitchedToAnotherAppIsRefetched) {
  // Move design-center's client id into a file.
  WriteFile(IdPath(), "design-center-app\n");
  id_from_file_ = true;
  WriteConfigFile(ConfigYaml());
  pb::ReloadConfigResponse response;
  grpc::Status status = Reload(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  pb::GetTokenResponse before;
  status = GetToken("design-center", &before);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(TokenRequests("design-center-app"), 1);
  ASSERT_EQ(TokenRequests("exchange-reader"), 0);

  // Nothing changed: the token is kept.
  status = Reload(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(response.changed(), IsEmpty());

  // The mounted Secret now holds another connected app's credentials; the
  // config file itself is unchanged.
  WriteFile(IdPath(), "exchange-reader\n");
  WriteFile(secrets_dir_ + "/dc", "exchange-reader-fake-secret\n");
  status = Reload(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(response.changed(), ElementsAre("design-center"));

  pb::GetTokenResponse after;
  status = GetToken("design-center", &after);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(TokenRequests("exchange-reader"), 1);
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
  EXPECT_TRUE(after.access_token() != before.access_token());
}

TEST_F(ReloadCredentialsTest, RotatedSecretKeepsTheToken) {
  pb::GetTokenResponse before;
  ASSERT_TRUE(GetToken("design-center", &before).ok());
  // Only the secret file changes (a rotation): same app, same tokens.
  WriteFile(secrets_dir_ + "/dc", "dc-secret-please-rotate-2\n");
  pb::ReloadConfigResponse response;
  grpc::Status status = Reload(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(response.changed(), IsEmpty());
  pb::GetTokenResponse after;
  ASSERT_TRUE(GetToken("design-center", &after).ok());
  EXPECT_EQ(after.access_token(), before.access_token());
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
}

}  // namespace
}  // namespace tokenbroker
