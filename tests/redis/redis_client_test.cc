#include "service/redis/redis_client.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/poll_until.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::PollUntil;
using ::tokenbroker::testing::RedisServerOptions;
using ::tokenbroker::testing::RedisServerProcess;
using ::tokenbroker::testing::StatusIs;

std::unique_ptr<RedisClient> StartClient(RedisOptions options) {
  absl::StatusOr<std::unique_ptr<RedisClient>> client =
      StartRedisClient(std::move(options));
  EXPECT_THAT(client, IsOk());
  return client.ok() ? std::move(*client) : nullptr;
}

// Command() and wait for the answer, at most 30 s (a safety bound: a client
// that never answers fails the test instead of hanging it).
absl::StatusOr<RedisReply> Await(RedisClient& client,
                                 std::vector<std::string> args) {
  struct State {
    absl::Notification done;
    absl::StatusOr<RedisReply> result;
  };
  auto state = std::make_shared<State>();
  client.Command(std::move(args), [state](absl::StatusOr<RedisReply> reply) {
    state->result = std::move(reply);
    state->done.Notify();
  });
  if (!state->done.WaitForNotificationWithTimeout(absl::Seconds(30))) {
    return absl::InternalError("the client never answered");
  }
  return std::move(state->result);
}

bool WaitConnected(const RedisClient& client, bool connected = true) {
  return PollUntil([&] { return client.stats().connected == connected; });
}

// Counts the calls of each of many callbacks and keeps their statuses.
class CallRecorder {
 public:
  explicit CallRecorder(int n) : calls_(n, 0), codes_(n) {}

  RedisCallback Callback(int i) {
    return [this, i](absl::StatusOr<RedisReply> reply) {
      absl::MutexLock lock(&mu_);
      ++calls_[i];
      codes_[i] = reply.status().code();
    };
  }
  bool AllCalled() {
    absl::MutexLock lock(&mu_);
    for (int c : calls_) {
      if (c == 0) return false;
    }
    return true;
  }
  std::vector<int> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<absl::StatusCode> codes() {
    absl::MutexLock lock(&mu_);
    return codes_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::StatusCode> codes_ ABSL_GUARDED_BY(mu_);
};

TEST(ParseRedisAddressTest, Forms) {
  absl::StatusOr<RedisAddress> tcp = ParseRedisAddress("redis.internal:6380");
  ASSERT_THAT(tcp, IsOk());
  EXPECT_EQ(tcp->host, "redis.internal");
  EXPECT_EQ(tcp->port, 6380);
  absl::StatusOr<RedisAddress> v6 = ParseRedisAddress("[::1]:6379");
  ASSERT_THAT(v6, IsOk());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 6379);
  absl::StatusOr<RedisAddress> unix_socket =
      ParseRedisAddress("unix:/run/redis/redis.sock");
  ASSERT_THAT(unix_socket, IsOk());
  EXPECT_EQ(unix_socket->unix_path, "/run/redis/redis.sock");
  EXPECT_TRUE(unix_socket->host.empty());

  for (const char* bad :
       {"", "redis", "redis:", ":6379", "redis:0", "redis:65536", "redis:63a9",
        "redis:-1", "::1:6379", "[::1]", "[::1]6379", "unix:", "unix:relative",
        "red is:6379", "redis:+6379"}) {
    EXPECT_THAT(ParseRedisAddress(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

TEST(StartRedisClientTest, RefusesBadOptions) {
  RedisOptions no_address;
  EXPECT_THAT(StartRedisClient(no_address),
              StatusIs(absl::StatusCode::kInvalidArgument));
  RedisOptions no_master;
  no_master.sentinels.push_back({"127.0.0.1", 26379, ""});
  EXPECT_THAT(StartRedisClient(no_master),
              StatusIs(absl::StatusCode::kInvalidArgument));
  RedisOptions user_only;
  user_only.address = {"127.0.0.1", 6379, ""};
  user_only.username = "broker";
  EXPECT_THAT(StartRedisClient(user_only),
              StatusIs(absl::StatusCode::kInvalidArgument));
  RedisOptions bad_backoff;
  bad_backoff.address = {"127.0.0.1", 6379, ""};
  bad_backoff.reconnect_min = absl::Seconds(2);
  bad_backoff.reconnect_max = absl::Seconds(1);
  EXPECT_THAT(StartRedisClient(bad_backoff),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TB_SKIP_WITHOUT_REDIS_SERVER();
    server_ = RedisServerProcess::StartNew();
    ASSERT_NE(server_, nullptr);
    client_ = StartClient(server_->ClientOptions());
    ASSERT_NE(client_, nullptr);
  }

  std::unique_ptr<RedisServerProcess> server_;
  std::unique_ptr<RedisClient> client_;
};

TEST_F(RedisClientTest, RepliesOfEveryType) {
  absl::StatusOr<RedisReply> status = client_->CommandSync({"SET", "k", "v"});
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->type, RedisReply::Type::kStatus);
  EXPECT_EQ(status->str, "OK");

  absl::StatusOr<RedisReply> bulk = client_->CommandSync({"GET", "k"});
  ASSERT_THAT(bulk, IsOk());
  EXPECT_EQ(bulk->type, RedisReply::Type::kString);
  EXPECT_EQ(bulk->str, "v");

  absl::StatusOr<RedisReply> integer = client_->CommandSync({"INCR", "n"});
  ASSERT_THAT(integer, IsOk());
  EXPECT_EQ(integer->type, RedisReply::Type::kInteger);
  EXPECT_EQ(integer->integer, 1);

  absl::StatusOr<RedisReply> nil = client_->CommandSync({"GET", "missing"});
  ASSERT_THAT(nil, IsOk());
  EXPECT_TRUE(nil->is_nil());

  ASSERT_THAT(client_->CommandSync({"RPUSH", "l", "a", "b"}), IsOk());
  absl::StatusOr<RedisReply> array =
      client_->CommandSync({"LRANGE", "l", "0", "-1"});
  ASSERT_THAT(array, IsOk());
  ASSERT_EQ(array->type, RedisReply::Type::kArray);
  ASSERT_EQ(array->elements.size(), 2u);
  EXPECT_EQ(array->elements[0].str, "a");
  EXPECT_EQ(array->elements[1].str, "b");

  absl::StatusOr<RedisReply> empty =
      client_->CommandSync({"LRANGE", "none", "0", "-1"});
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ(empty->type, RedisReply::Type::kArray);
  EXPECT_TRUE(empty->elements.empty());

  // A Redis error is INTERNAL with Redis's text.
  EXPECT_THAT(
      client_->CommandSync({"INCR", "k"}),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("not an integer")));
  EXPECT_THAT(client_->CommandSync({"NOSUCHCOMMAND"}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("unknown")));

  // Nested arrays and nil inside an array.
  absl::StatusOr<RedisReply> nested =
      client_->CommandSync({"EVAL", "return {1, 'x', {2, 'y'}, false}", "0"});
  ASSERT_THAT(nested, IsOk());
  ASSERT_EQ(nested->elements.size(), 4u);
  EXPECT_EQ(nested->elements[0].integer, 1);
  EXPECT_EQ(nested->elements[1].str, "x");
  ASSERT_EQ(nested->elements[2].elements.size(), 2u);
  EXPECT_EQ(nested->elements[2].elements[1].str, "y");
  EXPECT_TRUE(nested->elements[3].is_nil());

  RedisClientStats stats = client_->stats();
  EXPECT_TRUE(stats.connected);
  EXPECT_EQ(stats.commands, 10);
  EXPECT_EQ(stats.command_errors, 2);
  EXPECT_EQ(stats.reconnects, 0);
}

TEST_F(RedisClientTest, ArgumentsAreBinarySafe) {
  const std::string key = std::string("k\0ey\r\n", 6);
  // NUL, CR/LF and a whole RESP command inside a value.
  static constexpr char kValue[] =
      "v\0\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n\xff";
  const std::string value(kValue, sizeof(kValue) - 1);
  ASSERT_THAT(client_->CommandSync({"SET", key, value}), IsOk());
  absl::StatusOr<RedisReply> got = client_->CommandSync({"GET", key});
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->str, value);
  // Exactly one key: nothing in the value was taken as a command.
  absl::StatusOr<RedisReply> size = server_->Cli({"DBSIZE"});
  ASSERT_THAT(size, IsOk());
  EXPECT_EQ(size->integer, 1);
  absl::StatusOr<RedisReply> direct = server_->Cli({"GET", key});
  ASSERT_THAT(direct, IsOk());
  EXPECT_EQ(direct->str, value);
}

TEST_F(RedisClientTest, EvalUsesTheScriptCacheAndSurvivesScriptFlush) {
  const std::string script =
      "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])";
  absl::StatusOr<RedisReply> first =
      client_->EvalSync(script, {"ek"}, {std::string("a\0b", 3)});
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->str, std::string("a\0b", 3));
  // Now cached on the server under its SHA-1: the next call is one EVALSHA.
  int64_t before = client_->stats().commands;
  ASSERT_THAT(client_->EvalSync(script, {"ek"}, {"c"}), IsOk());
  EXPECT_EQ(client_->stats().commands, before + 1);

  ASSERT_THAT(server_->Cli({"SCRIPT", "FLUSH"}), IsOk());
  absl::StatusOr<RedisReply> again = client_->EvalSync(script, {"ek"}, {"d"});
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->str, "d");
  // EVALSHA (NOSCRIPT), then EVAL.
  EXPECT_EQ(client_->stats().commands, before + 3);

  // A script error is an error, not a retry.
  EXPECT_THAT(
      client_->EvalSync("return redis.call('INCR', KEYS[1])", {"ek"}, {}),
      StatusIs(absl::StatusCode::kInternal));
}

TEST_F(RedisClientTest, AsyncCommandsAnswerOnTheLoopThread) {
  absl::Notification done;
  std::thread::id caller = std::this_thread::get_id();
  std::thread::id answered_on;
  absl::StatusOr<RedisReply> result;
  client_->Command({"PING"}, [&](absl::StatusOr<RedisReply> reply) {
    answered_on = std::this_thread::get_id();
    result = std::move(reply);
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->str, "PONG");
  EXPECT_NE(answered_on, caller);

  // The *Sync helpers refuse to wait on the loop thread (they would wait
  // for themselves).
  absl::Notification nested_done;
  absl::Status nested;
  client_->Command({"PING"}, [&](absl::StatusOr<RedisReply>) {
    nested = client_->CommandSync({"PING"}).status();
    nested_done.Notify();
  });
  ASSERT_TRUE(nested_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(nested, StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(RedisClientTest, UnavailableWhileDownThenReconnects) {
  ASSERT_TRUE(WaitConnected(*client_));
  ASSERT_THAT(client_->CommandSync({"SET", "a", "1"}), IsOk());
  ASSERT_THAT(server_->Stop(), IsOk());
  ASSERT_TRUE(WaitConnected(*client_, false));
  EXPECT_THAT(client_->CommandSync({"GET", "a"}),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client_->stats().last_error, Not(::testing::IsEmpty()));

  ASSERT_THAT(server_->Start(), IsOk());
  ASSERT_TRUE(WaitConnected(*client_));
  EXPECT_THAT(client_->CommandSync({"PING"}), IsOk());
  EXPECT_GE(client_->stats().reconnects, 1);
}

TEST_F(RedisClientTest, PausedServerGivesDeadlineExceededThenRecovers) {
  client_.reset();
  RedisOptions options = server_->ClientOptions();
  options.command_timeout = absl::Milliseconds(200);
  options.connect_timeout = absl::Milliseconds(200);
  client_ = StartClient(options);
  ASSERT_TRUE(WaitConnected(*client_));

  ASSERT_THAT(server_->Pause(), IsOk());
  EXPECT_THAT(Await(*client_, {"PING"}),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  // The connection is dropped (its answers would be out of step).
  ASSERT_TRUE(WaitConnected(*client_, false));
  // Reconnecting to a hung server does not succeed.
  EXPECT_THAT(Await(*client_, {"PING"}),
              StatusIs(absl::StatusCode::kUnavailable));

  ASSERT_THAT(server_->Resume(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return client_->CommandSync({"PING"}).ok(); }));
  EXPECT_TRUE(client_->stats().connected);
}

TEST_F(RedisClientTest, StopCancelsQueuedAndInFlightExactlyOnce) {
  ASSERT_TRUE(WaitConnected(*client_));
  client_.reset();
  RedisOptions options = server_->ClientOptions();
  options.command_timeout = absl::Seconds(60);
  client_ = StartClient(options);
  ASSERT_TRUE(WaitConnected(*client_));
  ASSERT_THAT(server_->Pause(), IsOk());

  constexpr int kCommands = 200;
  CallRecorder recorder(kCommands + 1);
  for (int i = 0; i < kCommands; ++i) {
    client_->Command({"INCR", "counter"}, recorder.Callback(i));
  }
  // Wait until some are on the wire (the rest may still be queued).
  ASSERT_TRUE(PollUntil([&] { return client_->stats().commands > 0; }));
  client_->Stop();
  // After Stop(): answered inline.
  client_->Command({"PING"}, recorder.Callback(kCommands));

  std::vector<int> calls = recorder.calls();
  std::vector<absl::StatusCode> codes = recorder.codes();
  for (int i = 0; i <= kCommands; ++i) {
    EXPECT_EQ(calls[i], 1) << "command " << i;
    EXPECT_EQ(codes[i], absl::StatusCode::kCancelled) << "command " << i;
  }
  client_.reset();  // Stop() again, through the destructor: no second call.
  calls = recorder.calls();
  for (int i = 0; i <= kCommands; ++i) EXPECT_EQ(calls[i], 1);
  ASSERT_THAT(server_->Resume(), IsOk());
}

TEST_F(RedisClientTest, OutstandingCommandsAreBounded) {
  client_.reset();
  RedisOptions options = server_->ClientOptions();
  options.command_timeout = absl::Seconds(60);
  client_ = StartClient(options);
  ASSERT_TRUE(WaitConnected(*client_));
  ASSERT_THAT(server_->Pause(), IsOk());
  constexpr int kBound = 100000;
  std::atomic<int> cancelled{0};
  for (int i = 0; i < kBound; ++i) {
    client_->Command({"PING"}, [&](absl::StatusOr<RedisReply> reply) {
      if (reply.status().code() == absl::StatusCode::kCancelled) ++cancelled;
    });
  }
  absl::Status over;
  client_->Command({"PING"}, [&](absl::StatusOr<RedisReply> reply) {
    over = reply.status();  // Inline: the queue is full.
  });
  EXPECT_THAT(over, StatusIs(absl::StatusCode::kResourceExhausted));
  client_->Stop();
  EXPECT_EQ(cancelled.load(), kBound);
  ASSERT_THAT(server_->Resume(), IsOk());
}

TEST_F(RedisClientTest, DestroyedWhileServerPaused) {
  ASSERT_TRUE(WaitConnected(*client_));
  ASSERT_THAT(server_->Pause(), IsOk());
  CallRecorder recorder(50);
  for (int i = 0; i < 50; ++i) {
    client_->Command({"GET", absl::StrCat("k", i)}, recorder.Callback(i));
  }
  client_.reset();
  std::vector<int> calls = recorder.calls();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(calls[i], 1) << "command " << i;
  ASSERT_THAT(server_->Resume(), IsOk());
}

TEST_F(RedisClientTest, ManyThreadsConcurrently) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  std::atomic<int> ok{0};
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (i % 10 == 0) {
          // Some blocking ones mixed in.
          if (client_->CommandSync({"INCR", "total"}).ok()) ++ok;
          ++answered;
          continue;
        }
        client_->Command({"INCR", "total"},
                         [&](absl::StatusOr<RedisReply> reply) {
                           if (reply.ok()) ++ok;
                           ++answered;
                         });
      }
      client_->Command({"SADD", "threads", absl::StrCat(t)},
                       [&](absl::StatusOr<RedisReply>) { ++answered; });
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(PollUntil(
      [&] { return answered.load() == kThreads * (kPerThread + 1); }));
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  absl::StatusOr<RedisReply> total = server_->Cli({"GET", "total"});
  ASSERT_THAT(total, IsOk());
  EXPECT_EQ(total->str, absl::StrCat(kThreads * kPerThread));
  absl::StatusOr<RedisReply> members = server_->Cli({"SCARD", "threads"});
  ASSERT_THAT(members, IsOk());
  EXPECT_EQ(members->integer, kThreads);
}

// Collects what a subscription reports.
class Listener {
 public:
  void OnMessage(const std::string& channel, const std::string& payload) {
    absl::MutexLock lock(&mu_);
    messages_.push_back(channel + "=" + payload);
  }
  void OnState(bool up) {
    absl::MutexLock lock(&mu_);
    (up ? ups_ : downs_)++;
  }
  int ups() {
    absl::MutexLock lock(&mu_);
    return ups_;
  }
  int downs() {
    absl::MutexLock lock(&mu_);
    return downs_;
  }
  std::vector<std::string> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }

 private:
  absl::Mutex mu_;
  int ups_ ABSL_GUARDED_BY(mu_) = 0;
  int downs_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RedisClientTest, SubscribePublishAndResubscribeAfterRestart) {
  auto listener = std::make_shared<Listener>();
  client_->Subscribe(
      {"events", "other"},
      [listener](const std::string& channel, const std::string& payload) {
        listener->OnMessage(channel, payload);
      },
      [listener](bool up) { listener->OnState(up); });
  ASSERT_TRUE(PollUntil([&] { return listener->ups() == 1; }));
  EXPECT_TRUE(client_->stats().subscribed);

  absl::Notification published;
  client_->Publish("events", std::string("one\0\r\n", 6),
                   [&](absl::StatusOr<RedisReply> reply) {
                     EXPECT_THAT(reply, IsOk());
                     EXPECT_EQ(reply->integer, 1);  // One subscriber.
                     published.Notify();
                   });
  ASSERT_TRUE(published.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_THAT(server_->Cli({"PUBLISH", "other", "two"}), IsOk());
  ASSERT_TRUE(PollUntil([&] { return listener->messages().size() == 2; }));
  EXPECT_THAT(listener->messages(),
              ElementsAre(std::string("events=one\0\r\n", 13), "other=two"));

  ASSERT_THAT(server_->Restart(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return listener->ups() == 2; }))
      << "resubscribed after the restart";
  EXPECT_EQ(listener->downs(), 1);
  ASSERT_THAT(server_->Cli({"PUBLISH", "events", "three"}), IsOk());
  ASSERT_TRUE(PollUntil([&] { return listener->messages().size() == 3; }));
  EXPECT_EQ(listener->messages().back(), "events=three");
}

TEST(RedisClientAuthTest, PasswordAndWrongPassword) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  const std::string password = "pw-Zq8v1e-secret";
  ::testing::internal::CaptureStderr();  // The client's log.
  std::unique_ptr<RedisServerProcess> server =
      RedisServerProcess::StartWithPassword(password);
  ASSERT_NE(server, nullptr);

  std::unique_ptr<RedisClient> good = StartClient(server->ClientOptions());
  ASSERT_THAT(good->CommandSync({"SET", "x", "1"}), IsOk());
  EXPECT_TRUE(good->stats().connected);

  RedisOptions wrong = server->ClientOptions();
  wrong.password = "not-the-pw-Xk3";
  std::unique_ptr<RedisClient> bad = StartClient(wrong);
  ASSERT_TRUE(PollUntil(
      [&] { return absl::StrContains(bad->stats().last_error, "WRONGPASS"); }));
  absl::StatusOr<RedisReply> refused = bad->CommandSync({"GET", "x"});
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("AUTH")));
  EXPECT_FALSE(bad->stats().connected);
  for (const std::string& text :
       {std::string(refused.status().message()), bad->stats().last_error}) {
    EXPECT_THAT(text, Not(HasSubstr(wrong.password)));
    EXPECT_THAT(text, Not(HasSubstr(password)));
  }

  // No password at all: a clear NOAUTH.
  RedisOptions none = server->ClientOptions();
  none.password.clear();
  std::unique_ptr<RedisClient> anonymous = StartClient(none);
  ASSERT_TRUE(PollUntil([&] {
    return absl::StrContains(anonymous->stats().last_error, "NOAUTH");
  }));
  EXPECT_THAT(anonymous->CommandSync({"GET", "x"}),
              StatusIs(absl::StatusCode::kUnavailable));

  good.reset();
  bad.reset();
  anonymous.reset();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("WRONGPASS"));    // The log says why...
  EXPECT_THAT(log, Not(HasSubstr(password)));  // ...and never the secret.
  EXPECT_THAT(log, Not(HasSubstr(wrong.password)));
}

TEST(RedisClientAuthTest, AclUserAndPassword) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> server = RedisServerProcess::StartNew();
  ASSERT_NE(server, nullptr);
  ASSERT_THAT(server->Cli({"ACL", "SETUSER", "broker", "on", ">acl-pw-Q7", "~*",
                           "&*", "+@all"}),
              IsOk());
  RedisOptions options = server->ClientOptions();
  options.username = "broker";
  options.password = "acl-pw-Q7";
  std::unique_ptr<RedisClient> client = StartClient(options);
  absl::StatusOr<RedisReply> whoami = client->CommandSync({"ACL", "WHOAMI"});
  ASSERT_THAT(whoami, IsOk());
  EXPECT_EQ(whoami->str, "broker");
}

TEST(RedisClientUnixSocketTest, ConnectsOverAUnixSocket) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  RedisServerOptions server_options;
  RedisServerProcess probe;  // Only for a temp dir name of our own.
  std::string socket = probe.dir() + "/redis.sock";
  server_options.extra_config = {"unixsocket " + socket, "unixsocketperm 700"};
  std::unique_ptr<RedisServerProcess> server =
      RedisServerProcess::StartNew(server_options);
  ASSERT_NE(server, nullptr);
  RedisOptions options;
  options.address.unix_path = socket;
  std::unique_ptr<RedisClient> client = StartClient(options);
  absl::StatusOr<RedisReply> pong = client->CommandSync({"PING"});
  ASSERT_THAT(pong, IsOk());
  EXPECT_EQ(pong->str, "PONG");
}

TEST(RedisClientSentinelTest, AsksTheSentinelsForTheMaster) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> master =
      RedisServerProcess::StartWithPassword("sentinel-test-pw");
  ASSERT_NE(master, nullptr);
  std::unique_ptr<RedisServerProcess> sentinel =
      RedisServerProcess::StartSentinel(*master, "mymaster");
  ASSERT_NE(sentinel, nullptr);
  // A Sentinel that is down comes first in the list.
  RedisServerProcess gone;
  ASSERT_THAT(gone.Start(), IsOk());
  RedisAddress gone_address = gone.redis_address();
  ASSERT_THAT(gone.Stop(), IsOk());

  RedisOptions options = master->ClientOptions();
  options.address = {};
  options.sentinels = {gone_address, sentinel->redis_address()};
  options.sentinel_master = "mymaster";
  std::unique_ptr<RedisClient> client = StartClient(options);
  ASSERT_TRUE(WaitConnected(*client));
  ASSERT_THAT(client->CommandSync({"SET", "via", "sentinel"}), IsOk());
  absl::StatusOr<RedisReply> stored = master->Cli({"GET", "via"});
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->str, "sentinel");

  // A master name no Sentinel knows: a clear error.
  RedisOptions unknown = options;
  unknown.sentinel_master = "nosuchmaster";
  std::unique_ptr<RedisClient> lost = StartClient(unknown);
  ASSERT_TRUE(PollUntil([&] {
    return absl::StrContains(lost->stats().last_error, "nosuchmaster");
  }));
  EXPECT_THAT(lost->CommandSync({"PING"}),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST(RedisClientSentinelTest, FollowsAFailover) {
  TB_SKIP_WITHOUT_REDIS_SERVER();
  std::unique_ptr<RedisServerProcess> master = RedisServerProcess::StartNew();
  ASSERT_NE(master, nullptr);
  RedisServerOptions replica_options;
  replica_options.extra_config = {
      absl::StrCat("replicaof 127.0.0.1 ", master->port())};
  std::unique_ptr<RedisServerProcess> replica =
      RedisServerProcess::StartNew(replica_options);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<RedisReply> info = master->Cli({"INFO", "replication"});
    return info.ok() && absl::StrContains(info->str, "connected_slaves:1");
  }));
  std::unique_ptr<RedisServerProcess> sentinel =
      RedisServerProcess::StartSentinel(*master, "mymaster");
  ASSERT_NE(sentinel, nullptr);
  // The Sentinel must know the replica before it can promote it.
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<RedisReply> replicas =
        sentinel->Cli({"SENTINEL", "replicas", "mymaster"});
    return replicas.ok() && replicas->elements.size() == 1;
  }));

  RedisOptions options;
  options.sentinels = {sentinel->redis_address()};
  options.sentinel_master = "mymaster";
  options.reconnect_min = absl::Milliseconds(20);
  options.reconnect_max = absl::Milliseconds(200);
  std::unique_ptr<RedisClient> client = StartClient(options);
  ASSERT_THAT(client->CommandSync({"SET", "before", "1"}), IsOk());

  ASSERT_THAT(master->Kill(), IsOk());
  // The Sentinel promotes the replica; the client asks again on reconnect
  // and writes reach the new master.
  ASSERT_TRUE(PollUntil(
      [&] {
        return client->CommandSync({"SET", "after", "2"}).ok();
      },
      absl::Seconds(60), absl::Milliseconds(50)));
  absl::StatusOr<RedisReply> role = replica->Cli({"ROLE"});
  ASSERT_THAT(role, IsOk());
  EXPECT_EQ(role->elements[0].str, "master");
  absl::StatusOr<RedisReply> after = replica->Cli({"GET", "after"});
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->str, "2");
}

}  // namespace
}  // namespace tokenbroker
