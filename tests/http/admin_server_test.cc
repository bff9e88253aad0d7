#include "service/http/admin_server.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

// Records what the listener hands to the OAuth pages and answers with two
// cookies.
class RecordingPages final : public OAuthPageHandler {
 public:
  PageResponse Handle(const PageRequest& request) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    PageResponse page;
    page.status = 302;
    page.headers = {{"Location", "https://as.example/authorize?a=1"},
                    {"Set-Cookie", "a=1; Path=/"},
                    {"Set-Cookie", "b=2; Path=/"},
                    {"Content-Type", "text/html; charset=utf-8"}};
    page.body = "<p>page</p>";
    return page;
  }
  std::vector<PageRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  absl::Mutex mu_;
  std::vector<PageRequest> requests_ ABSL_GUARDED_BY(mu_);
};

TEST(AdminHttpOAuthTest, AdminListenerHandsOAuthRequestsOverRaw) {
  RecordingPages pages;
  AdminHttpHandlers handlers;
  handlers.metrics = [] { return std::string("tokenbroker_up 1\n"); };
  handlers.oauth = &pages;
  absl::StatusOr<std::unique_ptr<AdminHttpServer>> server =
      AdminHttpServer::Start("127.0.0.1:0", std::move(handlers));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->url(),
            absl::StrCat("http://127.0.0.1:", (*server)->port()));
  httplib::Client client("127.0.0.1", (*server)->port());
  client.set_url_encode(false);  // As a browser sends it.
  httplib::Result res =
      client.Get("/oauth/callback?code=a%2Bb+c&state=s%26t",
                 {{"Cookie", "tb_oauth=v1; x=y"}, {"Cookie", "z=w"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 302);
  EXPECT_EQ(res->get_header_value("Location"),
            "https://as.example/authorize?a=1");
  EXPECT_EQ(res->get_header_value_count("Set-Cookie"), 2u);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(res->body, "<p>page</p>");
  ASSERT_TRUE(client.Head("/oauth/start?ticket=t"));
  ASSERT_TRUE(client.Post("/oauth/start", "x=1", "text/plain"));
  EXPECT_EQ(client.Get("/metrics")->status, 200) << "still the admin listener";

  std::vector<PageRequest> requests = pages.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, "/oauth/callback");
  EXPECT_EQ(requests[0].query, "code=a%2Bb+c&state=s%26t") << "undecoded";
  EXPECT_THAT(requests[0].cookie_headers,
              ::testing::ElementsAre("tb_oauth=v1; x=y", "z=w"));
  EXPECT_EQ(requests[0].peer, "127.0.0.1");
  EXPECT_EQ(requests[1].method, "HEAD") << "not turned into GET";
  EXPECT_EQ(requests[2].method, "POST");
}

TEST(AdminHttpOAuthTest, OAuthListenerNeverServesMetrics) {
  RecordingPages pages;
  AdminHttpHandlers handlers;
  handlers.metrics = [] { return std::string("tokenbroker_up 1\n"); };
  handlers.ready = [] { return true; };
  handlers.oauth = &pages;
  absl::StatusOr<std::unique_ptr<AdminHttpServer>> server =
      AdminHttpServer::Start("127.0.0.1:0", std::move(handlers),
                             AdminHttpRole::kOAuth);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  EXPECT_EQ(client.Get("/metrics")->status, 404);
  EXPECT_EQ(client.Get("/readyz")->status, 404);
  EXPECT_EQ(client.Get("/healthz")->status, 200);
  EXPECT_EQ(client.Get("/oauth/start?ticket=t")->status, 302);
  EXPECT_EQ(pages.requests().size(), 1u);
}

TEST(AdminHttpOAuthTest, OAuthRoleNeedsThePagesAndNamesItsSetting) {
  absl::StatusOr<std::unique_ptr<AdminHttpServer>> server =
      AdminHttpServer::Start("127.0.0.1:0", {}, AdminHttpRole::kOAuth);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("listen.oauth_http"));
}

}  // namespace
}  // namespace tokenbroker
