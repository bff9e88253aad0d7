// tokenbroker::Client against an in-process fake TokenBroker service that
// counts RPCs and scripts WatchToken and CallStream streams; and against the
// real broker and emulator.

#include "client/lib/client.h"

#include <chrono>
#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
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
using ::testing::UnorderedElementsAre;
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
// lets the test push tokens down, or end, every open WatchToken stream. A
// request naming a user gets a token of that user (username as named, user
// id "id-" + name), unless IgnoreUsers() plays an older broker.
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
    if (!request->user().empty() && !ignore_users_) {
      response->set_username(request->user());
      response->set_user_id(absl::StrCat("id-", request->user()));
    }
    return grpc::Status::OK;
  }

  grpc::Status WatchToken(
      grpc::ServerContext* context, const v1::WatchTokenRequest* request,
      grpc::ServerWriter<v1::GetTokenResponse>* writer) override {
    absl::MutexLock lock(&mu_);
    ++watch_calls_;
    ++open_watches_;
    watch_apps_.push_back(request->app());
    watch_users_.push_back(request->user());
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

  // Answers the scripted errors first; then writes the messages of
  // SetStream() and ends with its status.
  grpc::Status CallStream(
      grpc::ServerContext* context, const v1::CallRequest* request,
      grpc::ServerWriter<v1::CallStreamResponse>* writer) override {
    std::vector<v1::CallStreamResponse> messages;
    grpc::Status end;
    {
      absl::MutexLock lock(&mu_);
      ++call_stream_calls_;
      last_call_ = *request;
      RecordAuthorization(*context);
      if (!errors_.empty()) {
        grpc::Status error = errors_.front();
        errors_.pop_front();
        return error;
      }
      messages = stream_messages_;
      end = stream_end_;
    }
    for (const v1::CallStreamResponse& message : messages) {
      if (!writer->Write(message)) break;
    }
    return end;
  }

  void SetStream(std::vector<v1::CallStreamResponse> messages,
                 grpc::Status end) {
    absl::MutexLock lock(&mu_);
    stream_messages_ = std::move(messages);
    stream_end_ = std::move(end);
  }

  // Blocks until `n` watch streams have been opened in all.
  void WaitForWatches(int n) {
    absl::MutexLock lock(&mu_);
    auto opened = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return watch_calls_ >= n;
    };
    mu_.Await(absl::Condition(&opened));
  }

  // Sends a new token of `app` (of `username`, if set) down every open
  // watch stream.
  v1::GetTokenResponse PushToken(const std::string& app,
                                 const std::string& username = "") {
    absl::MutexLock lock(&mu_);
    pushed_.push_back(NewTokenLocked(app));
    if (!username.empty()) {
      pushed_.back().set_username(username);
      pushed_.back().set_user_id(absl::StrCat("id-", username));
    }
    return pushed_.back();
  }

  // Answers as a broker older than user apps: the user field is ignored.
  void IgnoreUsers() {
    absl::MutexLock lock(&mu_);
    ignore_users_ = true;
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
  int call_stream_calls() const {
    absl::MutexLock lock(&mu_);
    return call_stream_calls_;
  }
  std::vector<std::string> watch_apps() const {
    absl::MutexLock lock(&mu_);
    return watch_apps_;
  }
  std::vector<std::string> watch_users() const {
    absl::MutexLock lock(&mu_);
    return watch_users_;
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
  bool ignore_users_ ABSL_GUARDED_BY(mu_) = false;
  int get_token_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int watch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int call_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int call_stream_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::CallStreamResponse> stream_messages_ ABSL_GUARDED_BY(mu_);
  grpc::Status stream_end_ ABSL_GUARDED_BY(mu_);
  int open_watches_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> watch_apps_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> watch_users_ ABSL_GUARDED_BY(mu_);
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

TEST_F(ClientTest, IdleKeysAreEvictedWithTheirWatch) {
  ClientOptions options;
  options.idle_eviction = absl::Minutes(10);
  MakeClient(options);
  fake_.SetLifetime(absl::Hours(24));  // Valid throughout: only idleness.
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());
  ASSERT_THAT(client_->GetToken("design"), IsOk());
  fake_.WaitForWatches(2);
  // "design" stays in use, "exchange" does not.
  Advance(absl::Minutes(6));
  ASSERT_THAT(client_->GetToken("design"), IsOk());  // Sweeps: none idle.
  EXPECT_EQ(client_->stats().evictions, 0);
  Advance(absl::Minutes(6));
  ASSERT_THAT(client_->GetToken("design"), IsOk());  // Sweeps: "exchange".
  EXPECT_EQ(client_->stats().evictions, 1);
  // Its stream is cancelled, which is not a break.
  EXPECT_THAT(events_.WaitFor(1), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(client_->stats().watch_breaks, 0);
  EXPECT_EQ(fake_.get_token_calls(), 2);
  // Asked for again: fetched and watched anew.
  absl::StatusOr<AccessToken> again = client_->GetToken("exchange");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->access_token, "token-3");
  EXPECT_EQ(fake_.get_token_calls(), 3);
  ClientStats stats = client_->stats();
  EXPECT_EQ(stats.watches_started, 3);
  EXPECT_EQ(stats.cache_hits, 2);
  fake_.WaitForWatches(3);
}

TEST_F(ClientTest, InfiniteIdleEvictionKeepsEveryKey) {
  ClientOptions options;
  options.watch = false;
  options.idle_eviction = absl::InfiniteDuration();
  MakeClient(options);
  fake_.SetLifetime(absl::Hours(48));
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());
  Advance(absl::Hours(24));
  ASSERT_THAT(client_->GetToken("design"), IsOk());
  EXPECT_EQ(client_->GetToken("exchange")->access_token, "token-1");
  EXPECT_EQ(client_->stats().evictions, 0);
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

ClientTokenRequest ForUser(const std::string& user) {
  ClientTokenRequest request;
  request.user = user;
  return request;
}

TEST_F(ClientTest, CacheKeysByUser) {
  MakeClient();
  absl::StatusOr<AccessToken> alice = client_->GetToken("viewer", ForUser("a"));
  ASSERT_THAT(alice, IsOk());
  EXPECT_EQ(fake_.last_request().user(), "a");
  EXPECT_EQ(alice->username, "a");
  EXPECT_EQ(alice->user_id, "id-a");
  // Another user, and no user at all, are other keys: never alice's token.
  absl::StatusOr<AccessToken> bob = client_->GetToken("viewer", ForUser("b"));
  ASSERT_THAT(bob, IsOk());
  EXPECT_EQ(fake_.last_request().user(), "b");
  EXPECT_EQ(bob->username, "b");
  EXPECT_NE(bob->access_token, alice->access_token);
  absl::StatusOr<AccessToken> app = client_->GetToken("viewer");
  ASSERT_THAT(app, IsOk());
  EXPECT_EQ(fake_.last_request().user(), "");
  EXPECT_EQ(app->username, "");
  EXPECT_NE(app->access_token, alice->access_token);
  EXPECT_NE(app->access_token, bob->access_token);
  EXPECT_EQ(fake_.get_token_calls(), 3);

  // Each is served from its own entry.
  EXPECT_EQ(client_->GetToken("viewer", ForUser("b"))->access_token,
            bob->access_token);
  EXPECT_EQ(client_->GetToken("viewer", ForUser("a"))->access_token,
            alice->access_token);
  EXPECT_EQ(client_->GetToken("viewer")->access_token, app->access_token);
  EXPECT_EQ(fake_.get_token_calls(), 3);
  // One watch each, naming whose token it follows.
  EXPECT_EQ(client_->stats().watches_started, 3);
  fake_.WaitForWatches(3);
  EXPECT_THAT(fake_.watch_users(), UnorderedElementsAre("id-a", "id-b", ""));
}

TEST_F(ClientTest, UserWithScopesAndMinTtl) {
  ClientOptions options;
  options.watch = false;
  MakeClient(options);
  ClientTokenRequest request = ForUser("a");
  request.scopes = {"b", "a", "b"};
  request.min_ttl = absl::Seconds(90);
  ASSERT_THAT(client_->GetToken("viewer", request), IsOk());
  EXPECT_THAT(fake_.last_request().scopes(), ElementsAre("a", "b"));
  EXPECT_EQ(fake_.last_request().min_ttl_seconds(), 90);
  request.scopes = {"a", "b"};
  ASSERT_THAT(client_->GetToken("viewer", request), IsOk());
  EXPECT_EQ(fake_.get_token_calls(), 1);
  // Same scopes, no user: not the user's entry.
  ASSERT_THAT(client_->GetToken("viewer", {"a", "b"}), IsOk());
  EXPECT_EQ(fake_.get_token_calls(), 2);
}

TEST_F(ClientTest, BrokerIgnoringTheUserIsRefusedAndNothingCached) {
  MakeClient();
  fake_.IgnoreUsers();
  EXPECT_THAT(client_->GetToken("viewer", ForUser("a")),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("does not act on behalf of users")));
  EXPECT_THAT(client_->GetToken("viewer", ForUser("a")),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_EQ(fake_.get_token_calls(), 2);
  EXPECT_EQ(client_->stats().watches_started, 0);
}

TEST_F(ClientTest, WatchesServeOnlyTheirOwnUsersTokens) {
  MakeClient();
  fake_.SetLifetime(absl::Seconds(100));
  ASSERT_THAT(client_->GetToken("viewer", ForUser("a")), IsOk());
  ASSERT_THAT(client_->GetToken("exchange"), IsOk());
  fake_.WaitForWatches(2);
  EXPECT_THAT(fake_.watch_users(), UnorderedElementsAre("id-a", ""));
  // Every token goes down both streams. Another user's, which would outlive
  // every other, is taken by neither; each stream takes its own.
  fake_.SetLifetime(absl::Hours(10));
  fake_.PushToken("viewer", "b");
  fake_.SetLifetime(absl::Seconds(200));
  v1::GetTokenResponse alice = fake_.PushToken("viewer", "a");
  v1::GetTokenResponse app = fake_.PushToken("exchange");
  ASSERT_THAT(events_.WaitFor(1), IsOk());
  ASSERT_THAT(events_.WaitFor(2), IsOk());
  EXPECT_EQ(client_->GetToken("viewer", ForUser("a"))->access_token,
            alice.access_token());
  EXPECT_EQ(client_->GetToken("exchange")->access_token, app.access_token());
  EXPECT_EQ(fake_.get_token_calls(), 2);
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

v1::CallStreamResponse StreamMessage(int status, const std::string& chunk) {
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

TEST_F(ClientTest, CallStreamHandsOverHeadThenPieces) {
  MakeClient();
  fake_.SetStream({StreamMessage(200, ""), StreamMessage(0, "abc"),
                   StreamMessage(0, ""), StreamMessage(0, "def")},
                  grpc::Status::OK);
  std::vector<std::string> seen;
  ClientCallStreamHandlers handlers;
  handlers.on_head = [&](const ClientCallResponse& head) {
    seen.push_back(absl::StrCat("head ", head.status));
  };
  handlers.on_body = [&](absl::string_view piece) {
    seen.emplace_back(piece);
    return absl::OkStatus();
  };
  ClientCallRequest request;
  request.path = "/exchange/api/v2/assets/x/download";
  absl::StatusOr<ClientCallResponse> head =
      client_->CallStream("exchange", request, handlers);
  ASSERT_THAT(head, IsOk());
  EXPECT_EQ(head->status, 200);
  ASSERT_EQ(head->headers.size(), 1u);
  EXPECT_EQ(head->headers[0].second, "application/octet-stream");
  EXPECT_EQ(head->body, "");
  // Empty pieces are not handed over.
  EXPECT_THAT(seen, ElementsAre("head 200", "abc", "def"));
  EXPECT_EQ(fake_.last_call().method(), "GET");
  EXPECT_EQ(client_->stats().call_stream_rpcs, 1);
}

TEST_F(ClientTest, CallStreamRetriesUnavailableOnlyBeforeTheAnswer) {
  MakeClient();
  fake_.SetStream({StreamMessage(200, "abc")}, grpc::Status::OK);
  fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  std::ostringstream body;
  ClientCallRequest get;
  get.path = "/x";
  ASSERT_THAT(client_->CallStream("exchange", get, body), IsOk());
  EXPECT_EQ(body.str(), "abc");
  EXPECT_EQ(fake_.call_stream_calls(), 2);

  // Not a POST.
  fake_.FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  ClientCallRequest post = get;
  post.method = "POST";
  std::ostringstream unused;
  EXPECT_THAT(client_->CallStream("exchange", post, unused),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(fake_.call_stream_calls(), 3);

  // Nor a GET whose answer had begun: the caller has part of it.
  fake_.SetStream({StreamMessage(200, "abc")},
                  grpc::Status(grpc::StatusCode::UNAVAILABLE, "reset"));
  std::ostringstream partial;
  EXPECT_THAT(client_->CallStream("exchange", get, partial),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("reset")));
  EXPECT_EQ(partial.str(), "abc");
  EXPECT_EQ(fake_.call_stream_calls(), 4);
  EXPECT_EQ(sleeps().size(), 1u);
}

TEST_F(ClientTest, CallStreamStopsWhenTheCallerFails) {
  MakeClient();
  fake_.SetStream({StreamMessage(200, "abc"), StreamMessage(0, "def")},
                  grpc::Status::OK);
  int pieces = 0;
  ClientCallStreamHandlers handlers;
  handlers.on_body = [&](absl::string_view) {
    ++pieces;
    return absl::DataLossError("disk full");
  };
  ClientCallRequest request;
  request.path = "/x";
  EXPECT_THAT(client_->CallStream("exchange", request, handlers),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("disk full")));
  EXPECT_EQ(pieces, 1);
  EXPECT_THAT(client_->CallStream("exchange", request, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ClientTest, CallAndCallStreamSendTheUser) {
  MakeClient();
  ClientCallRequest request;
  request.path = "/accounts/api/me";
  request.user = "a";
  ASSERT_THAT(client_->Call("viewer", request), IsOk());
  EXPECT_EQ(fake_.last_call().user(), "a");
  fake_.SetStream({StreamMessage(200, "x")}, grpc::Status::OK);
  request.user = "b";
  std::ostringstream body;
  ASSERT_THAT(client_->CallStream("viewer", request, body), IsOk());
  EXPECT_EQ(fake_.last_call().user(), "b");
  ASSERT_THAT(client_->Get("viewer", "/x"), IsOk());
  EXPECT_EQ(fake_.last_call().user(), "");
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

// Against the real broker and emulator, in-process. The fixture's callers
// grant every route of every app.
class ClientBrokerTest : public testing::BrokerFixture {
 protected:
  std::unique_ptr<Client> MakeClient(ClientOptions options = {}) {
    ClientChannelOptions channel;
    channel.target = absl::StrCat("127.0.0.1:", broker_->port());
    channel.plaintext = true;
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(channel, std::move(options));
    EXPECT_THAT(client, IsOk());
    return client.ok() ? *std::move(client) : nullptr;
  }

  int64_t Requests(const std::string& endpoint) const {
    emulator::Counters counters = emulator_->GetCounters();
    auto it = counters.requests_by_endpoint.find(endpoint);
    return it == counters.requests_by_endpoint.end() ? 0 : it->second;
  }

  static constexpr char kOrg[] = "c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f";
};

TEST_F(ClientBrokerTest, CachesTokensFromTheBroker) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<AccessToken> token = client->GetToken("design-center");
  ASSERT_THAT(token, IsOk());
  tokens_seen_.push_back(token->access_token);
  EXPECT_EQ(token->app, "design-center");
  EXPECT_GT(token->expires_at, absl::Now() + absl::Minutes(55));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(client->GetToken("design-center")->access_token,
              token->access_token);
  }
  EXPECT_EQ(client->stats().get_token_rpcs, 1);
  EXPECT_EQ(client->stats().cache_hits, 20);
  EXPECT_EQ(TokenRequests("design-center-app"), 1);
  // An unknown app looks like one without a grant.
  EXPECT_THAT(client->GetToken("no-such-app"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(ClientBrokerTest, CallListsEnvironmentsWithoutAToken) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);
  ClientCallRequest request;
  request.path =
      absl::StrCat("/accounts/api/organizations/", kOrg, "/environments");
  request.headers = {{"Accept", "application/json"}};
  request.scopes = {"view:environment"};
  absl::StatusOr<ClientCallResponse> response =
      client->Call("design-center", request);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->body, HasSubstr("\"Production\""));
  EXPECT_THAT(response->body, HasSubstr("\"Sandbox\""));
  EXPECT_EQ(Requests("environments"), 1);
  EXPECT_EQ(client->stats().call_rpcs, 1);
}

TEST_F(ClientBrokerTest, UpstreamErrorsAreData) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);
  // exchange-reader lacks view:environment: Anypoint answers 403.
  absl::StatusOr<ClientCallResponse> forbidden = client->Get(
      "exchange-reader",
      absl::StrCat("/accounts/api/organizations/", kOrg, "/environments"));
  ASSERT_THAT(forbidden, IsOk());
  EXPECT_EQ(forbidden->status, 403);
  EXPECT_THAT(forbidden->body, HasSubstr("view:environment"));

  absl::StatusOr<ClientCallResponse> missing =
      client->Get("design-center", "/accounts/api/no-such-thing");
  ASSERT_THAT(missing, IsOk());
  EXPECT_EQ(missing->status, 404);

  // The same through CallStream.
  ClientCallRequest request;
  request.path = "/_emulator/authed-echo/x?status=404&bytes=3";
  std::ostringstream body;
  absl::StatusOr<ClientCallResponse> streamed =
      client->CallStream("design-center", request, body);
  ASSERT_THAT(streamed, IsOk());
  EXPECT_EQ(streamed->status, 404);
  EXPECT_EQ(body.str(), "xxx");
  // Upstream statuses are answers, not failures: nothing was retried.
  EXPECT_EQ(client->stats().call_rpcs, 2);
  EXPECT_EQ(client->stats().call_stream_rpcs, 1);
}

TEST_F(ClientBrokerTest, HostilePathsAreRejectedBeforeAnyRequest) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);
  for (const char* path :
       {"https://evil.example/accounts/api/me", "//evil.example/x",
        "/accounts/../api/me", "/accounts/%2e%2e/api/me", "/a\r\nHost: evil",
        "@evil.example/x"}) {
    EXPECT_THAT(client->Get("design-center", path),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << path;
    ClientCallRequest request;
    request.path = path;
    std::ostringstream body;
    EXPECT_THAT(client->CallStream("design-center", request, body),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << path;
    EXPECT_EQ(body.str(), "");
  }
  // Not retried, and nothing reached Anypoint: not even a token request.
  EXPECT_EQ(client->stats().call_rpcs, 6);
  EXPECT_EQ(client->stats().call_stream_rpcs, 6);
  EXPECT_EQ(TokenRequests("design-center-app"), 0);
  EXPECT_TRUE(emulator_->GetCounters().requests_by_endpoint.empty());
}

TEST_F(ClientBrokerTest, RetriesUnavailableOnlyForGetAndHead) {
  ClientOptions options;
  options.retry.max_attempts = 2;
  int waits = 0;
  options.sleep = [&waits](absl::Duration) { ++waits; };
  std::unique_ptr<Client> client = MakeClient(options);
  ASSERT_NE(client, nullptr);
  // Every request to Anypoint's resource endpoints has its connection reset:
  // the broker answers UNAVAILABLE.
  emulator::Fault reset;
  reset.endpoint = "resource";
  reset.kind = emulator::FaultKind::kReset;
  emulator_->AddFault(reset);

  for (const char* method : {"GET", "HEAD"}) {
    ClientCallRequest request;
    request.method = method;
    request.path = "/_emulator/authed-echo/x";
    const int64_t before = client->stats().call_rpcs;
    EXPECT_THAT(client->Call("design-center", request),
                StatusIs(absl::StatusCode::kUnavailable))
        << method;
    EXPECT_EQ(client->stats().call_rpcs - before, 2) << method;
  }
  const int64_t stream_before = client->stats().call_stream_rpcs;
  std::ostringstream body;
  ClientCallRequest get;
  get.path = "/_emulator/authed-echo/x";
  EXPECT_THAT(client->CallStream("design-center", get, body),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(client->stats().call_stream_rpcs - stream_before, 2);
  EXPECT_EQ(waits, 3);

  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    ClientCallRequest request;
    request.method = method;
    request.path = "/_emulator/authed-echo/x";
    request.body = "{}";
    request.headers = {{"Content-Type", "application/json"}};
    const int64_t before = client->stats().call_rpcs;
    EXPECT_THAT(client->Call("design-center", request),
                StatusIs(absl::StatusCode::kUnavailable))
        << method;
    EXPECT_EQ(client->stats().call_rpcs - before, 1) << method;
  }
  EXPECT_EQ(waits, 3);
}

TEST_F(ClientBrokerTest, CallStreamDownloadsALargeBody) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);
  // Over gRPC's default 4 MiB message size and the broker's 1 MiB pause mark.
  constexpr size_t kBytes = 6 << 20;
  ClientCallRequest request;
  request.path = absl::StrCat("/_emulator/authed-echo/asset?bytes=", kBytes);
  size_t received = 0;
  size_t pieces = 0;
  bool only_x = true;
  bool head_first = false;
  ClientCallStreamHandlers handlers;
  handlers.on_head = [&](const ClientCallResponse& head) {
    head_first = received == 0 && head.status == 200;
  };
  handlers.on_body = [&](absl::string_view piece) {
    received += piece.size();
    ++pieces;
    only_x = only_x && piece.find_first_not_of('x') == absl::string_view::npos;
    return absl::OkStatus();
  };
  absl::StatusOr<ClientCallResponse> head =
      client->CallStream("design-center", request, handlers);
  ASSERT_THAT(head, IsOk());
  EXPECT_TRUE(head_first);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(received, kBytes);
  EXPECT_TRUE(only_x);
  // In many pieces. (Their size is the broker's business: about 64 KiB.)
  EXPECT_GE(pieces, 16u);

  // Into a stream.
  std::ostringstream body;
  ASSERT_THAT(client->CallStream("design-center", request, body), IsOk());
  EXPECT_EQ(body.str().size(), kBytes);
  EXPECT_EQ(client->stats().call_stream_rpcs, 2);
}

}  // namespace
}  // namespace tokenbroker
