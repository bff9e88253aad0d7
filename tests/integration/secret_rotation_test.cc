// A client secret rotated in its (mounted) file is used at the next token
// fetch, with no reload: secrets are re-read per fetch.

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"

namespace tokenbroker {
namespace {

namespace pb = anypoint::tokenbroker::v1;

class SecretRotationTest : public testing::BrokerFixture {
 protected:
  grpc::Status Refresh(const std::string& app) {
    grpc::ClientContext context;
    pb::RefreshTokenRequest request;
    request.set_app(app);
    pb::RefreshTokenResponse response;
    return admin_->RefreshToken(&context, request, &response);
  }
};

TEST_F(SecretRotationTest, ARotatedSecretFileIsUsedAtTheNextFetch) {
  pb::GetTokenResponse before;
  ASSERT_TRUE(GetToken("design-center", &before).ok());
  ASSERT_EQ(TokenRequests("design-center-app"), 1);

  // Anypoint: the secret is regenerated; the old one stops working.
  ASSERT_TRUE(
      emulator_->SetClientSecret("design-center-app", "dc-secret-rotated-2026")
          .ok());
  EXPECT_EQ(Refresh("design-center").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // The token fetched before is still served meanwhile.
  pb::GetTokenResponse meanwhile;
  ASSERT_TRUE(GetToken("design-center", &meanwhile).ok());

  // Kubernetes: the Secret is updated and the mounted file changes.
  {
    std::ofstream out(secrets_dir_ + "/dc", std::ios::trunc);
    out << "dc-secret-rotated-2026\n";
  }
  EXPECT_TRUE(Refresh("design-center").ok());
  EXPECT_EQ(TokenRequests("design-center-app"), 3);
  pb::GetTokenResponse after;
  ASSERT_TRUE(GetToken("design-center", &after).ok());
  EXPECT_NE(after.access_token(), before.access_token());
}

}  // namespace
}  // namespace tokenbroker
