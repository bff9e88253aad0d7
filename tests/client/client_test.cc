// tokenbroker::Client against an in-process fake TokenBroker service that
// counts RPCs and scripts WatchToken streams; and against the real broker.

#include "client/lib/client.h"

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(absl::ToUnixSeconds(t));
  return timestamp;
}

// A TokenBroker that hands out numbered tokens ("token-1", ...) valid for
// `lifetime` from the test's fake time, answers scripted errors first, and
// lets the test push tokens down, or end, every open WatchToken stream.
class FakeBroker final : public v1::TokenBroker::Service {
 public:
  grpc::Status GetToken(grpc::ServerContext* context,
                        const v1::GetTokenRequest* request,
                        v1::GetTokenResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++get_token_calls_;
    last_request_ = *request;
    RecordAuthorization(*context);
    if (!errors_.empty()) {
      grpc::Status error = errors_.front();
      errors_.pop_front();
      return error;
    }
    if (request->app() == "unknown") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no app unknown");
    }
    *response =
        NewTokenLocked(request->app().empty() ? "picked" : request->app());
    return grpc::Status::OK;
  }

  grpc::Status WatchToken(
      grpc::ServerContext* context, const v1::WatchTokenRequest* request,
      grpc::ServerWriter<v1::GetTokenResponse>* writer) override {
    absl::MutexLock lock(&mu_);
    ++watch_calls_;
    ++open_watches_;
    watch_apps_.push_back(request->app());
    size_t sent = pushed_.size();  // Only tokens pushed from now on.
    const int generation = watch_generation_;
    grpc::Status result = grpc::Status::OK;
    while (true) {
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return sent < pushed_.size() || watch_generation_ != generation;
      };
      // The client cancelling is not signalled through `mu_`: look again
      // every 50 ms.
      while (!ready() && !context->IsCancelled()) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(50));
      }
      if (context->IsCancelled()) break;
      if (watch_generation_ != generation) {
        result = end_status_;
        break;
      }
      v1::GetTokenResponse token = pushed_[sent++];
      mu_.Unlock();
      bool ok = writer->Write(token);
      mu_.Lock();
      if (!ok) break;
    }
    --open_watches_;
    return result;
  }

  grpc::Status Call(grpc::ServerContext* context,
                    const v1::CallRequest* request,
                    v1::CallResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++call_calls_;
    last_call_ = *request;
    RecordAuthorization(*context);
    if (!errors_.empty()) {
      grpc::Status error = errors_.front();
      errors_.pop_front();
      return error;
    }
    response->set_status(200);
    v1::Header* header = response->add_headers();
    header->set_name("Content-Type");
    header->set_value("application/json");
    response->set_body(absl::StrCat("{\"path\":\"", request->path(), "\"}"));
    return grpc::Status::OK;
  }

  // Blocks until `n` watch streams have been opened in all.
  void WaitForWatches(int n) {
    absl::MutexLock lock(&mu_);
    auto opened = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return watch_calls_ >= n;
    };
    mu_.Await(absl::Condition(&opened));
  }

  // Sends a new token of `app` down every open watch stream.
  v1::GetTokenResponse PushToken(const std::string& app) {
    absl::MutexLock lock(&mu_);
    pushed_.push_back(NewTokenLocked(app));
    return pushed_.back();
  }

  // Ends every open watch stream with `status`.
  void EndWatches(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    end_status_ = status;
    ++watch_generation_;
  }

  void FailNext(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    errors_.push_back(status);
  }

  void SetNow(absl::Time now) {
    absl::MutexLock lock(&mu_);
    now_ = now;
  }
  void SetLifetime(absl::Duration lifetime) {
    absl::MutexLock lock(&mu_);
    lifetime_ = lifetime;
  }

  int get_token_calls() const {
    absl::MutexLock lock(&mu_);
    return get_token_calls_;
  }
  int watch_calls() const {
    absl::MutexLock lock(&mu_);
    return watch_calls_;
  }
  int call_calls() const {
    absl::MutexLock lock(&mu_);
    return call_calls_;
  }
  std::vector<std::string> watch_apps() const {
    absl::MutexLock lock(&mu_);
    return watch_apps_;
  }
  v1::GetTokenRequest last_request() const {
    absl::MutexLock lock(&mu_);
    return last_request_;
  }
  v1::CallRequest last_call() const {
    absl::MutexLock lock(&mu_);
    return last_call_;
  }
  std::vector<std::string> authorizations() const {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }

 private:
  v1::GetTokenResponse NewTokenLocked(const std::string& app)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::GetTokenResponse token;
    token.set_access_token(absl::StrCat("token-", ++issued_));
    token.set_token_type("Bearer");
    *token.mutable_expires_at() = ToProto(now_ + lifetime_);
    token.add_scopes("read:exchange");
    token.set_app(app);
    return token;
  }

  void RecordAuthorization(const grpc::ServerContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = context.client_metadata().find("authorization");
    authorizations_.push_back(
        it == context.client_metadata().end()
            ? std::string()
            : std::string(it->second.data(), it->second.size()));
  }

  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = kStart;
  absl::Duration lifetime_ ABSL_GUARDED_BY(mu_) = absl::Hours(1);
  int issued_ ABSL_GUARDED_BY(mu_) = 0;
  int get_token_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int watch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int call_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int open_watches_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> watch_apps_ ABSL_GUARDED_BY(mu_);
  std::deque<grpc::Status> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GetTokenResponse> pushed_ ABSL_GUARDED_BY(mu_);
  int watch_generation_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  v1::GetTokenRequest last_request_ ABSL_GUARDED_BY(mu_);
  v1::CallRequest last_call_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
};

// Counts the client's watch events so that a test can wait for the n-th.
class WatchEvents {
 public:
  void Record(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    statuses_.push_back(status);
  }
  // Blocks until `n` events have arrived; returns the n-th.
  absl::Status WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return statuses_.size() >= n;
    };
    mu_.Await(absl::Condition(&arrived));
    return statuses_[n - 1];
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::Status> statuses_ ABSL_GUARDED_BY(mu_);
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }

  void TearDown() override {
    client_.reset();  // Cancels the watches first.
    server_->Shutdown(std::chrono::system_clock::now());
  }

  // A client of the fake, with the fake's clock and no real sleeping.
  void MakeClient(ClientOptions options = {}, std::string bearer_key = "") {
    ClientChannelOptions channel;
    channel.target = absl::StrCat("127.0.0.1:", port_);
    channel.plaintext = true;
    channel.bearer_key = std::move(bearer_key);
    options.clock = [this] {
      absl::MutexLock lock(&clock_mu_);
      return now_;
    };
    options.sleep = [this](absl::Duration d) {
      absl::MutexLock lock(&clock_mu_);
      sleeps_.push_back(d);
    };
    options.on_watch_event = [this](const std::string&,
                                    const absl::Status& status) {
      events_.Record(status);
    };
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(channel, std::move(options));
    ASSERT_THAT(client, IsOk());
    client_ = *std::move(client);
  }

  void Advance(absl::Duration d) {
    absl::MutexLock lock(&clock_mu_);
    now_ += d;
    fake_.SetNow(now_);
  }

  std::vector<absl::Duration> sleeps() {
    absl::MutexLock lock(&clock_mu_);
    return sleeps_;
  }

  FakeBroker fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<Client> client_;
  WatchEvents events_;
  absl::Mutex clock_mu_;
  absl::Time now_ ABSL_GUARDED_BY(clock_mu_) = kStart;
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(clock_mu_);
};

TEST_F(ClientTest, HitNeedsNoRpc) {
  MakeClient();
  absl::StatusOr<AccessToken> first = client_->GetToken("exchange");
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->access_token, "token-1");
  EXPECT_EQ(first->token_type, "Bearer");
  EXPECT_EQ(first->app, "exchange");
  EXPECT_EQ(first->expires_at, kStart + absl::Hours(1));
  EXPECT_THAT(first->scopes, ElementsAre("read:exchange"));
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<AccessToken> again = client_->GetToken("exchange");
    ASSERT_THAT(again, IsOk());
    EXPECT_EQ(again->access_token, "token-1");
  }
  EXPECT_EQ(fake_.get_token_calls(), 1);
  ClientStats stats = client_->stats();
  EXPECT_EQ(stats.get_token_rpcs, 1);
  EXPECT_EQ(stats.cache_hits, 100);
}

TEST_F(ClientTest, ScopeOrderAndDuplicatesShareAnEntry) {
  ClientOptions options;
  options.watch = false;
  MakeClient(options);
  ASSERT_THAT(client_->GetToken("exchange", {"b", "a"}), IsOk());
  EXPECT_THAT(fake_.last_request().scopes(), ElementsAre("a", "b"));
  ASSERT_THAT(client_->GetToken("exchange", {"a", "b", "a"}), IsOk());
  EXPECT_EQ(fake_.get_token_calls(), 1);
  ASSERT_THAT(client_->GetToken("exchange", {"a"}), IsOk());
  EXPECT_EQ(fake_.get_token_calls(), 2);
}

TEST_F(ClientTest, HonoursExpiryAndMinTtl) {
  ClientOptions options;
  options.watch = false;
  MakeClient(options);
  fake_.SetLifetime(absl::Seconds(100));
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());
  EXPECT_EQ(fake_.last_request().min_ttl_seconds(), 30);

  Advance(absl::Seconds(70));  // 30 s left: still enough for the default.
  EXPECT_EQ(client_->GetToken("exchange")->access_token, "token-1");
  EXPECT_EQ(fake_.get_token_calls(), 1);

  // Asking for more than is left goes to the broker, with that min_ttl.
  absl::StatusOr<AccessToken> longer =
      client_->GetToken("exchange", {}, absl::Seconds(31));
  ASSERT_THAT(longer, IsOk());
  EXPECT_EQ(longer->access_token, "token-2");
  EXPECT_EQ(fake_.last_request().min_ttl_seconds(), 31);
  EXPECT_EQ(fake_.get_token_calls(), 2);

  Advance(absl::Seconds(71));  // token-2: 29 s left.
  EXPECT_EQ(client_->GetToken("exchange")->access_token, "token-3");
  Advance(absl::Seconds(200));  // Expired.
  EXPECT_EQ(client_->GetToken("exchange")->access_token, "token-4");
  EXPECT_EQ(fake_.get_token_calls(), 4);
}

TEST_F(ClientTest, WatchKeepsTheCacheFresh) {
  MakeClient();
  fake_.SetLifetime(absl::Seconds(100));
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());

  // The broker refreshes at two thirds of the lifetime and pushes the new
  // token down the watch.
  Advance(absl::Seconds(67));
  fake_.WaitForWatches(1);
  v1::GetTokenResponse pushed = fake_.PushToken("exchange");
  ASSERT_THAT(events_.WaitFor(1), IsOk());

  Advance(absl::Seconds(20));  // token-1 has 13 s left, token-2 80 s.
  absl::StatusOr<AccessToken> token = client_->GetToken("exchange");
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(token->access_token, pushed.access_token());
  EXPECT_EQ(fake_.get_token_calls(), 1);
  EXPECT_EQ(fake_.watch_calls(), 1);
  ClientStats stats = client_->stats();
  EXPECT_EQ(stats.watch_updates, 1);
  EXPECT_EQ(stats.watches_started, 1);
}

TEST_F(ClientTest, FallsBackToGetTokenWhenTheWatchBreaks) {
  MakeClient();
  fake_.SetLifetime(absl::Seconds(100));
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());
  fake_.WaitForWatches(1);
  fake_.EndWatches(grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting"));
  EXPECT_THAT(events_.WaitFor(1), StatusIs(absl::StatusCode::kUnavailable,
                                           HasSubstr("restarting")));
  EXPECT_EQ(client_->stats().watch_breaks, 1);

  // Still valid: served from the cache without a stream.
  EXPECT_EQ(client_->GetToken("exchange")->access_token, "token-1");
  EXPECT_EQ(fake_.get_token_calls(), 1);

  // Too close to expiry: a GetToken RPC, which opens a new watch.
  Advance(absl::Seconds(80));
  EXPECT_EQ(client_->GetToken("exchange")->access_token, "token-2");
  EXPECT_EQ(fake_.get_token_calls(), 2);
  EXPECT_EQ(client_->stats().watches_started, 2);

  // The new watch works.
  Advance(absl::Seconds(50));
  fake_.WaitForWatches(2);
  v1::GetTokenResponse pushed = fake_.PushToken("exchange");
  ASSERT_THAT(events_.WaitFor(2), IsOk());
  Advance(absl::Seconds(30));
  EXPECT_EQ(client_->GetToken("exchange")->access_token, pushed.access_token());
  EXPECT_EQ(fake_.get_token_calls(), 2);
}

TEST_F(ClientTest, EmptyAppWatchesTheAppTheBrokerPicked) {
  MakeClient();
  absl::StatusOr<AccessToken> token = client_->GetToken("", {"read:exchange"});
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(token->app, "picked");
  EXPECT_EQ(client_->GetToken("", {"read:exchange"})->access_token,
            token->access_token);
  EXPECT_EQ(fake_.get_token_calls(), 1);
  // The watch request names the resolved app.
  fake_.WaitForWatches(1);
  fake_.PushToken("picked");
  ASSERT_THAT(events_.WaitFor(1), IsOk());
  EXPECT_THAT(fake_.watch_apps(), ElementsAre("picked"));
}

TEST_F(ClientTest, RetriesUnavailableWithBackoff) {
  ClientOptions options;
  options.watch = false;
  MakeClient(options);
  fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  absl::StatusOr<AccessToken> token = client_->GetToken("exchange");
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(fake_.get_token_calls(), 3);
  std::vector<absl::Duration> waited = sleeps();
  ASSERT_EQ(waited.size(), 2u);
  EXPECT_LE(waited[0], absl::Milliseconds(100));
  EXPECT_LE(waited[1], absl::Milliseconds(200));
}

TEST_F(ClientTest, GivesUpAfterMaxAttempts) {
  ClientOptions options;
  options.watch = false;
  options.retry.max_attempts = 2;
  MakeClient(options);
  for (int i = 0; i < 3; ++i) {
    fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  }
  EXPECT_THAT(client_->GetToken("exchange"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("down")));
  EXPECT_EQ(fake_.get_token_calls(), 2);
}

TEST_F(ClientTest, OtherErrorsAreNotRetried) {
  MakeClient();
  EXPECT_THAT(client_->GetToken("unknown"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no app")));
  fake_.FailNext(
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "invalid_client"));
  EXPECT_THAT(client_->GetToken("exchange"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(fake_.get_token_calls(), 2);
  EXPECT_TRUE(sleeps().empty());
  EXPECT_EQ(fake_.watch_calls(), 0);
}

TEST_F(ClientTest, SendsTheBearerKeyOnEveryRpc) {
  MakeClient({}, "k3y");
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());
  ASSERT_THAT(client_->Get("exchange", "/accounts/api/me"), IsOk());
  EXPECT_THAT(fake_.authorizations(), ElementsAre("Bearer k3y", "Bearer k3y"));
}

TEST_F(ClientTest, CallForwardsTheRequest) {
  MakeClient();
  ClientCallRequest request;
  request.method = "post";
  request.path = "/exchange/api/v2/assets";
  request.headers = {{"Content-Type", "application/json"}};
  request.body = "{}";
  request.scopes = {"manage:exchange"};
  absl::StatusOr<ClientCallResponse> response =
      client_->Call("exchange", request);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "{\"path\":\"/exchange/api/v2/assets\"}");
  ASSERT_EQ(response->headers.size(), 1u);
  EXPECT_EQ(response->headers[0].first, "Content-Type");
  v1::CallRequest sent = fake_.last_call();
  EXPECT_EQ(sent.app(), "exchange");
  EXPECT_EQ(sent.method(), "POST");
  EXPECT_EQ(sent.body(), "{}");
  ASSERT_EQ(sent.headers_size(), 1);
  EXPECT_EQ(sent.headers(0).value(), "application/json");
  EXPECT_THAT(sent.scopes(), ElementsAre("manage:exchange"));
}

TEST_F(ClientTest, CallRetriesOnlyIdempotentMethods) {
  MakeClient();
  fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_THAT(client_->Get("exchange", "/accounts/api/me"), IsOk());
  EXPECT_EQ(fake_.call_calls(), 2);

  fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  ClientCallRequest post;
  post.method = "POST";
  post.path = "/x";
  EXPECT_THAT(client_->Call("exchange", post),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(fake_.call_calls(), 3);
}

TEST(ClientUnreachableTest, DeadlineBoundsRetries) {
  ClientChannelOptions channel;
  channel.target = "127.0.0.1:1";  // Nothing listens on port 1.
  channel.plaintext = true;
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  options.retry.max_attempts = 3;
  int slept = 0;
  options.sleep = [&](absl::Duration) { ++slept; };
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create(channel, options);
  ASSERT_THAT(client, IsOk());
  EXPECT_THAT((*client)->GetToken("exchange"),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("broker at 127.0.0.1:1")));
  EXPECT_EQ((*client)->stats().get_token_rpcs, 3);
  EXPECT_EQ(slept, 2);
}

TEST(BackoffDelayTest, FullJitterUnderTruncatedExponentialBound) {
  ClientRetryOptions retry;
  retry.initial_backoff = absl::Seconds(1);
  retry.max_backoff = absl::Seconds(5);
  absl::BitGen gen;
  for (int i = 0; i < 200; ++i) {
    EXPECT_LE(BackoffDelay(retry, 1, gen), absl::Seconds(1));
    EXPECT_LE(BackoffDelay(retry, 3, gen), absl::Seconds(4));
    absl::Duration capped = BackoffDelay(retry, 30, gen);
    EXPECT_GE(capped, absl::ZeroDuration());
    EXPECT_LE(capped, absl::Seconds(5));
  }
}

TEST(MakeConnectionTest, RejectsBadSettings) {
  ClientChannelOptions options;
  options.plaintext = true;
  options.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(
      MakeClientConnection(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("plaintext")));
  options.plaintext = false;
  EXPECT_THAT(MakeClientConnection(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/nonexistent/ca.pem")));
  options.ca_file.clear();
  options.cert_file = "cert.pem";
  EXPECT_THAT(
      MakeClientConnection(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("go together")));
  options.cert_file.clear();
  options.bearer_key = "bad\nkey";
  EXPECT_THAT(MakeClientConnection(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("printable ASCII")));
  options.bearer_key.clear();
  options.load_balancing_policy = "random";
  EXPECT_THAT(
      MakeClientConnection(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("round_robin")));
}

TEST(MakeConnectionTest, RoundRobinServiceConfig) {
  EXPECT_EQ(LoadBalancingServiceConfig("round_robin"),
            R"({"loadBalancingConfig":[{"round_robin":{}}]})");
  ClientChannelOptions options;
  options.target = "dns:///token-broker.tb.svc.cluster.local:50051";
  options.load_balancing_policy = "round_robin";
  absl::StatusOr<ClientConnection> connection = MakeClientConnection(options);
  ASSERT_THAT(connection, IsOk());
  EXPECT_NE(connection->channel, nullptr);
}

// Against the real broker and emulator, in-process.
class ClientBrokerTest : public testing::BrokerFixture {};

TEST_F(ClientBrokerTest, CachesTokensFromTheBroker) {
  ClientChannelOptions channel;
  channel.target = absl::StrCat("127.0.0.1:", broker_->port());
  channel.plaintext = true;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(channel);
  ASSERT_THAT(client, IsOk());
  absl::StatusOr<AccessToken> token = (*client)->GetToken("design-center");
  ASSERT_THAT(token, IsOk());
  tokens_seen_.push_back(token->access_token);
  EXPECT_EQ(token->app, "design-center");
  EXPECT_GT(token->expires_at, absl::Now() + absl::Minutes(55));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*client)->GetToken("design-center")->access_token,
              token->access_token);
  }
  EXPECT_EQ((*client)->stats().get_token_rpcs, 1);
  EXPECT_EQ((*client)->stats().cache_hits, 20);
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
  EXPECT_THAT((*client)->GetToken("no-such-app"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace tokenbroker
