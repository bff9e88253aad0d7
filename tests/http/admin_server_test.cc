#include "service/http/admin_server.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace tokenbroker {
namespace {

using ::testing::HasSubstr;

class AdminHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminHttpHandlers handlers;
    handlers.metrics = [] { return std::string("tokenbroker_up 1\n"); };
    handlers.ready = [this] { return ready_.load(); };
    absl::StatusOr<std::unique_ptr<AdminHttpServer>> server =
        AdminHttpServer::Start("127.0.0.1:0", std::move(handlers));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }

  std::atomic<bool> ready_{true};
  std::unique_ptr<AdminHttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminHttpServerTest, ServesMetricsInTextFormat) {
  httplib::Result res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res->body, "tokenbroker_up 1\n");
}

TEST_F(AdminHttpServerTest, ReadinessFollowsTheBrokerLivenessStaysUp) {
  httplib::Result ready = client_->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);

  ready_ = false;  // Shutdown began: draining.
  httplib::Result draining = client_->Get("/readyz");
  ASSERT_TRUE(draining);
  EXPECT_EQ(draining->status, 503);
  EXPECT_THAT(draining->body, HasSubstr("shutting down"));
  httplib::Result live = client_->Get("/healthz");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
}

TEST_F(AdminHttpServerTest, OtherPathsAndMethods) {
  httplib::Result missing = client_->Get("/debug");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  httplib::Result post = client_->Post("/metrics", "", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  httplib::Result head = client_->Head("/healthz");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
}

TEST_F(AdminHttpServerTest, StopsListening) {
  server_->Stop();
  EXPECT_FALSE(client_->Get("/healthz"));
}

TEST(AdminHttpServerStartTest, RejectsBadAddressesAndBusyPorts) {
  EXPECT_EQ(AdminHttpServer::Start("no-port", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AdminHttpServer::Start("127.0.0.1:99999", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<AdminHttpServer>> first =
      AdminHttpServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<AdminHttpServer>> second =
      AdminHttpServer::Start(absl::StrCat("127.0.0.1:", (*first)->port()), {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tokenbroker
