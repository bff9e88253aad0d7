#include "service/redis/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "service/common/backoff_policy.h"
#include "service/common/log.h"
#include "service/common/thread_name.h"
#include "service/redis/hiredis_reply.h"

// How it works (why, mostly):
// - One loop thread owns both hiredis async contexts and everything the
//   hiredis callbacks touch; other threads only put requests on a queue under
//   `mu_` and wake the loop through an eventfd. hiredis is not thread-safe,
//   so no other thread ever calls into it.
// - The loop is poll() over the eventfd and the contexts' sockets. The event
//   "adapter" is four hooks that only record whether hiredis wants to read or
//   write, and a cleanup hook that tells us hiredis is freeing the context
//   (it does so itself on an I/O error or a failed connect): after that the
//   context pointer is never used again.
// - hiredis runs every command callback exactly once: with the reply, or
//   with NULL when the context is freed (by us or by itself). A request is
//   completed from that callback and nowhere else, so each user callback runs
//   exactly once; a request that hiredis refused is completed at once.
// - Contexts are freed only from the top of the loop (never inside a hiredis
//   callback, where 0.14's connect/disconnect callbacks would make that a
//   use after free); callbacks only record what happened and the loop acts.
// - Time here is I/O timing (poll timeouts, deadlines of requests on the
//   wire), so it reads the (monotonic) clock itself: no token logic depends
//   on it.

namespace tokenbroker {
namespace {

// Requests queued, waiting for a connection or on the wire, at most.
constexpr size_t kMaxOutstanding = 100000;

// Deadlines and poll timeouts are measured on the monotonic clock: a step of
// the wall clock must neither expire every command nor stall the timeouts.
absl::Time MonotonicNow() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

std::string Describe(const RedisAddress& address) {
  if (!address.unix_path.empty()) return "unix:" + address.unix_path;
  if (address.host.find(':') != std::string::npos) {
    return absl::StrCat("[", address.host, "]:", address.port);
  }
  return absl::StrCat(address.host, ":", address.port);
}

std::string Sha1Hex(const std::string& text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(),
       digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA_DIGEST_LENGTH);
  for (unsigned char byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
  }
  return out;
}

// The first word of a command, for messages (never its arguments).
std::string CommandName(const std::vector<std::string>& args) {
  return args.empty() ? std::string("?") : args[0];
}

class RedisClientImpl;
struct Conn;
void OnReply(redisAsyncContext* ac, void* reply, void* privdata);
void OnPubSub(redisAsyncContext* ac, void* reply, void* privdata);

struct Request {
  std::vector<std::string> args;
  RedisCallback done;
  absl::Time deadline;
  bool internal = false;  // The client's own (handshake), not counted.
  bool timed_out = false;
  Conn* conn = nullptr;
  std::list<Request*>::iterator pos;
};

enum class Phase { kIdle, kAskSentinel, kConnecting, kReady };

// One connection (commands or pub/sub) and its connect state machine. Loop
// thread only.
struct Conn {
  RedisClientImpl* client = nullptr;
  const char* name = "";
  bool pubsub = false;

  redisAsyncContext* ac = nullptr;  // Null once hiredis cleaned it up.
  bool has_ac = false;  // We made `ac` and have not freed it ourselves.
  bool want_read = false;
  bool want_write = false;
  std::string io_error;     // hiredis's text when it dropped `ac` itself.
  uint64_t generation = 0;  // Bumped per context: stale callbacks are ignored.

  Phase phase = Phase::kIdle;
  absl::Time step_deadline = absl::InfiniteFuture();
  absl::Time retry_at = absl::InfinitePast();
  std::unique_ptr<BackoffPolicy> backoff;
  size_t sentinel_index = 0;
  RedisAddress target;
  bool ever_ready = false;
  bool announced_failure = false;  // Logged since the last success.

  // Outcome of the current handshake (set by internal callbacks).
  bool step_done = false;
  absl::Status step_error;
  std::optional<RedisReply> step_reply;

  std::list<Request*> inflight;  // Sent, in order.

  size_t confirmations = 0;  // SUBSCRIBE confirmations on this context.
  bool subscribed = false;
};

struct Subscription {
  std::vector<std::string> channels;
  std::function<void(const std::string&, const std::string&)> on_message;
  std::function<void(bool)> on_state;
};

// hiredis event hooks: record interest; the loop polls accordingly.
void HookAddRead(void* data) { static_cast<Conn*>(data)->want_read = true; }
void HookDelRead(void* data) { static_cast<Conn*>(data)->want_read = false; }
void HookAddWrite(void* data) { static_cast<Conn*>(data)->want_write = true; }
void HookDelWrite(void* data) { static_cast<Conn*>(data)->want_write = false; }
void HookCleanup(void* data) {
  Conn* conn = static_cast<Conn*>(data);
  if (conn->ac != nullptr && conn->ac->c.err != 0 && conn->io_error.empty()) {
    conn->io_error = conn->ac->c.errstr;
  }
  conn->ac = nullptr;
  conn->want_read = false;
  conn->want_write = false;
}
// Needed so that hiredis asks for the first write event (its way of seeing
// the connect finish); a failed connect frees the context, which the cleanup
// hook reports.
void OnConnect(const redisAsyncContext*, int) {}

class RedisClientImpl final : public RedisClient {
 public:
  explicit RedisClientImpl(RedisOptions options)
      : options_(std::move(options)) {
    for (Conn* conn : {&commands_, &pubsub_}) {
      conn->client = this;
      conn->backoff = std::make_unique<ExponentialBackoffPolicy>(
          options_.reconnect_min, options_.reconnect_max);
    }
    commands_.name = "commands";
    pubsub_.name = "pubsub";
    pubsub_.pubsub = true;
  }

  ~RedisClientImpl() override {
    Stop();
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  absl::Status Start() {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return absl::InternalError("eventfd failed");
    absl::MutexLock lock(&mu_);  // The loop starts by taking mu_ too.
    thread_ = std::thread([this] { Run(); });
    loop_thread_id_ = thread_.get_id();
    return absl::OkStatus();
  }

  void Command(std::vector<std::string> args, RedisCallback done) override {
    auto request = std::make_unique<Request>();
    request->args = std::move(args);
    request->done = std::move(done);
    request->deadline = MonotonicNow() + options_.command_timeout;
    absl::Status refused;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        refused = absl::CancelledError("the Redis client is stopped");
      } else if (outstanding_ >= kMaxOutstanding) {
        refused = absl::ResourceExhaustedError(
            "too many Redis commands outstanding; Redis is slow or down");
        ++stats_.command_errors;
      } else {
        ++outstanding_;
        submitted_.push_back(std::move(request));
      }
    }
    if (refused.ok()) {
      Wake();
      return;
    }
    request->done(std::move(refused));
  }

  void Eval(const std::string& script, std::vector<std::string> keys,
            std::vector<std::string> args, RedisCallback done) override {
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVALSHA");
    argv.push_back(Sha1Hex(script));
    argv.push_back(std::to_string(keys.size()));
    for (std::string& key : keys) argv.push_back(std::move(key));
    for (std::string& arg : args) argv.push_back(std::move(arg));
    // After NOSCRIPT (a restarted or flushed server) EVAL runs the script
    // and puts it back into the server's script cache in one round trip.
    std::vector<std::string> retry = argv;
    retry[0] = "EVAL";
    retry[1] = script;
    Command(std::move(argv), [this, retry = std::move(retry),
                              done = std::move(done)](
                                 absl::StatusOr<RedisReply> reply) mutable {
      if (!reply.ok() && reply.status().code() == absl::StatusCode::kInternal &&
          absl::StartsWith(reply.status().message(), "NOSCRIPT")) {
        Command(std::move(retry), std::move(done));
        return;
      }
      done(std::move(reply));
    });
  }

  void Subscribe(
      std::vector<std::string> channels,
      std::function<void(const std::string&, const std::string&)> on_message,
      std::function<void(bool)> on_state) override {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (subscribed_once_ || channels.empty()) {
        LogError(
            "RedisClient::Subscribe called twice or without channels; "
            "ignored");
        return;
      }
      subscribed_once_ = true;
      new_subscription_ = Subscription{
          std::move(channels), std::move(on_message), std::move(on_state)};
    }
    Wake();
  }

  RedisClientStats stats() const override {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

  void Stop() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    // From a callback (the loop thread) we cannot join ourselves: the loop
    // stops after this round and the owner's Stop() or destructor joins.
    if (OnLoopThread()) return;
    absl::MutexLock lock(&join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 protected:
  bool OnLoopThread() const override {
    absl::MutexLock lock(&mu_);
    return std::this_thread::get_id() == loop_thread_id_;
  }

 private:
  friend void OnReply(redisAsyncContext*, void*, void*);
  friend void OnPubSub(redisAsyncContext*, void*, void*);

  void Wake() {
    uint64_t one = 1;
    // The counter cannot overflow with these writes; EAGAIN would only mean
    // the loop is already due to wake.
    [[maybe_unused]] ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  }

  // ---- Loop thread from here on. ----

  void Run() {
    SetCurrentThreadName("redis-loop");
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) break;
      }
      absl::Time now = MonotonicNow();
      Pump(now);

      std::vector<pollfd> fds;
      std::vector<Conn*> owners;
      fds.push_back({wake_fd_, POLLIN, 0});
      owners.push_back(nullptr);
      for (Conn* conn : {&commands_, &pubsub_}) {
        if (conn->ac == nullptr) continue;
        short events = 0;
        if (conn->want_read) events |= POLLIN;
        if (conn->want_write) events |= POLLOUT;
        fds.push_back({conn->ac->c.fd, events, 0});
        owners.push_back(conn);
      }
      absl::Duration wait = NextDeadline() - MonotonicNow();
      int timeout_ms = 60000;
      if (wait < absl::Milliseconds(60000)) {
        timeout_ms = static_cast<int>(std::max<int64_t>(
            0, absl::ToInt64Milliseconds(wait + absl::Milliseconds(1) -
                                         absl::Nanoseconds(1))));
      }
      int ready = poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0) continue;  // EINTR.
      if (fds[0].revents != 0) {
        uint64_t count;
        [[maybe_unused]] ssize_t ignored =
            read(wake_fd_, &count, sizeof(count));
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        Conn* conn = owners[i];
        short revents = fds[i].revents;
        if (revents == 0) continue;
        if (conn->ac != nullptr && (revents & (POLLIN | POLLERR | POLLHUP))) {
          redisAsyncHandleRead(conn->ac);
        }
        if (conn->ac != nullptr && conn->want_write &&
            (revents & (POLLOUT | POLLERR | POLLHUP))) {
          redisAsyncHandleWrite(conn->ac);
        }
      }
    }
    Shutdown();
  }

  absl::Time NextDeadline() const {
    absl::Time next = absl::InfiniteFuture();
    for (const Conn* conn : {&commands_, &pubsub_}) {
      if (conn == &pubsub_ && !subscription_.has_value()) continue;
      switch (conn->phase) {
        case Phase::kIdle:
          next = std::min(next, conn->retry_at);
          break;
        case Phase::kAskSentinel:
        case Phase::kConnecting:
          next = std::min(next, conn->step_deadline);
          break;
        case Phase::kReady:
          // Sent in the order they were submitted, so the first is due
          // first.
          if (!conn->inflight.empty()) {
            next = std::min(next, conn->inflight.front()->deadline);
          }
          break;
      }
    }
    if (!waiting_.empty()) next = std::min(next, waiting_.front()->deadline);
    return next;
  }

  void Pump(absl::Time now) {
    std::optional<Subscription> subscription;
    {
      absl::MutexLock lock(&mu_);
      while (!submitted_.empty()) {
        waiting_.push_back(std::move(submitted_.front()));
        submitted_.pop_front();
      }
      subscription.swap(new_subscription_);
    }
    if (subscription.has_value()) {
      subscription_ = std::move(subscription);
      if (pubsub_.phase == Phase::kReady) SendSubscribe(pubsub_);
    }

    Drive(commands_, now);
    if (subscription_.has_value()) Drive(pubsub_, now);

    // A command without an answer by its deadline: the answers on this
    // connection are out of step now, so it is dropped and re-made.
    if (commands_.phase == Phase::kReady) {
      bool expired = false;
      for (Request* request : commands_.inflight) {
        if (request->deadline > now) break;  // In deadline order.
        request->timed_out = true;
        expired = true;
      }
      if (expired) {
        std::string why = "a command got no answer within the command timeout";
        AbortAc(commands_);
        Dropped(commands_, why, now);
        // The pub/sub connection goes to the same server, which is hung or
        // gone: re-make it too, so its listener hears it was down.
        if (pubsub_.phase == Phase::kReady) {
          AbortAc(pubsub_);
          Dropped(pubsub_, why, now);
        }
      }
    }

    if (commands_.phase == Phase::kReady) {
      while (!waiting_.empty()) {
        std::unique_ptr<Request> request = std::move(waiting_.front());
        waiting_.pop_front();
        Send(commands_, std::move(request));
        if (commands_.phase != Phase::kReady) break;
      }
    }
    if (commands_.phase == Phase::kIdle) {
      FailWaiting([](const Request&) { return true; });
    } else if (commands_.phase != Phase::kReady) {
      FailWaiting([now](const Request& r) { return r.deadline <= now; });
    }
  }

  template <typename Pred>
  void FailWaiting(Pred should_fail) {
    std::deque<std::unique_ptr<Request>> keep;
    std::deque<std::unique_ptr<Request>> failed;
    for (auto& request : waiting_) {
      (should_fail(*request) ? failed : keep).push_back(std::move(request));
    }
    waiting_.swap(keep);
    for (auto& request : failed) {
      Complete(std::move(request),
               absl::UnavailableError(
                   absl::StrCat("Redis is not connected (", LastError(), ")")));
    }
  }

  std::string LastError() {
    absl::MutexLock lock(&mu_);
    return stats_.last_error.empty() ? std::string("connecting")
                                     : stats_.last_error;
  }

  void Drive(Conn& conn, absl::Time now) {
    if (conn.has_ac && conn.ac == nullptr) {  // hiredis dropped it.
      conn.has_ac = false;
      OnAcLost(conn,
               conn.io_error.empty() ? std::string("connection closed")
                                     : conn.io_error,
               now);
    }
    if (conn.has_ac && conn.step_done) {
      conn.step_done = false;
      OnStepDone(conn, now);
    }
    if (conn.has_ac && conn.phase != Phase::kReady &&
        now >= conn.step_deadline) {
      AbortAc(conn);
      OnAcLost(conn, "no connection within the connect timeout", now);
    }
    if (conn.phase == Phase::kIdle && now >= conn.retry_at) {
      StartAttempt(conn, now);
    }
  }

  void OnAcLost(Conn& conn, const std::string& why, absl::Time now) {
    switch (conn.phase) {
      case Phase::kAskSentinel:
        NextSentinel(conn, why, now);
        break;
      case Phase::kConnecting:
        AttemptFailed(conn, why, now);
        break;
      case Phase::kReady:
        Dropped(conn, why, now);
        break;
      case Phase::kIdle:
        break;
    }
  }

  void StartAttempt(Conn& conn, absl::Time now) {
    if (!options_.sentinels.empty()) {
      conn.sentinel_index = 0;
      AskSentinel(conn, now);
    } else {
      ConnectToServer(conn, options_.address, now);
    }
  }

  void AskSentinel(Conn& conn, absl::Time now) {
    conn.phase = Phase::kAskSentinel;
    const RedisAddress& sentinel = options_.sentinels[conn.sentinel_index];
    std::string error;
    if (!Connect(conn, sentinel, now, &error)) {
      NextSentinel(conn, error, now);
      return;
    }
    SendInternal(
        conn, {"SENTINEL", "get-master-addr-by-name", options_.sentinel_master},
        /*last=*/true, /*check_role=*/false, /*keep_reply=*/true);
  }

  void NextSentinel(Conn& conn, const std::string& why, absl::Time now) {
    std::string where = Describe(options_.sentinels[conn.sentinel_index]);
    ++conn.sentinel_index;
    if (conn.sentinel_index < options_.sentinels.size()) {
      LogDebug("Redis Sentinel did not answer; asking the next",
               {{"sentinel", where}, {"error", why}});
      AskSentinel(conn, now);
      return;
    }
    AttemptFailed(conn,
                  absl::StrCat("no Sentinel named the master of '",
                               options_.sentinel_master, "' (last: ", where,
                               ": ", why, ")"),
                  now);
  }

  void ConnectToServer(Conn& conn, const RedisAddress& address,
                       absl::Time now) {
    conn.phase = Phase::kConnecting;
    conn.target = address;
    std::string error;
    if (!Connect(conn, address, now, &error)) {
      AttemptFailed(conn, error, now);
      return;
    }
    // AUTH (or a PING, so that "connected" means the server answers) and,
    // behind Sentinel, ROLE: pipelined, nothing else goes out before they
    // are answered.
    bool sentinel = !options_.sentinels.empty();
    if (!options_.password.empty()) {
      std::vector<std::string> auth = {"AUTH"};
      if (!options_.username.empty()) auth.push_back(options_.username);
      auth.push_back(options_.password);
      SendInternal(conn, std::move(auth), /*last=*/!sentinel,
                   /*check_role=*/false, /*keep_reply=*/false);
    } else {
      SendInternal(conn, {"PING"}, /*last=*/!sentinel, /*check_role=*/false,
                   /*keep_reply=*/false);
    }
    if (sentinel) {
      SendInternal(conn, {"ROLE"}, /*last=*/true, /*check_role=*/true,
                   /*keep_reply=*/false);
    }
  }

  // Makes a context for `address` and attaches our hooks. False with the
  // reason when hiredis fails at once (a refused loopback connect does).
  bool Connect(Conn& conn, const RedisAddress& address, absl::Time now,
               std::string* error) {
    redisAsyncContext* ac =
        address.unix_path.empty()
            ? redisAsyncConnect(address.host.c_str(), address.port)
            : redisAsyncConnectUnix(address.unix_path.c_str());
    if (ac == nullptr) {
      *error = "out of memory";
      return false;
    }
    if (ac->err != 0) {
      *error = absl::StrCat(Describe(address), ": ", ac->errstr);
      redisAsyncFree(ac);
      return false;
    }
    ++conn.generation;
    conn.io_error.clear();
    conn.step_done = false;
    conn.step_error = absl::OkStatus();
    conn.step_reply.reset();
    conn.confirmations = 0;
    conn.ac = ac;
    conn.has_ac = true;
    conn.want_read = false;
    conn.want_write = false;
    conn.step_deadline = now + options_.connect_timeout;
    ac->ev.data = &conn;
    ac->ev.addRead = HookAddRead;
    ac->ev.delRead = HookDelRead;
    ac->ev.addWrite = HookAddWrite;
    ac->ev.delWrite = HookDelWrite;
    ac->ev.cleanup = HookCleanup;
    redisAsyncSetConnectCallback(ac, OnConnect);
    conn.want_write = true;
    if (address.unix_path.empty()) redisEnableKeepAlive(&ac->c);
    return true;
  }

  // Frees the context on purpose; its pending callbacks run now (NULL
  // replies). The caller decides the next state.
  void AbortAc(Conn& conn) {
    if (conn.ac != nullptr) redisAsyncFree(conn.ac);
    conn.ac = nullptr;
    conn.has_ac = false;
    conn.want_read = false;
    conn.want_write = false;
  }

  void SendInternal(Conn& conn, std::vector<std::string> args, bool last,
                    bool check_role, bool keep_reply) {
    auto request = std::make_unique<Request>();
    std::string name = CommandName(args);
    request->args = std::move(args);
    request->internal = true;
    request->deadline = conn.step_deadline;
    uint64_t generation = conn.generation;
    Conn* target = &conn;
    request->done = [target, generation, name, last, check_role,
                     keep_reply](absl::StatusOr<RedisReply> reply) {
      if (target->generation != generation) return;
      if (!reply.ok()) {
        // Anything but a Redis error means the context went away, which
        // the loop sees through the cleanup hook.
        if (reply.status().code() != absl::StatusCode::kInternal) return;
        if (target->step_error.ok()) {
          // Redis's text (e.g. WRONGPASS ...) never repeats the password.
          target->step_error = absl::UnavailableError(absl::StrCat(
              "Redis refused ", name, ": ", reply.status().message()));
        }
        target->step_done = true;
        return;
      }
      if (check_role && target->step_error.ok() &&
          (reply->type != RedisReply::Type::kArray || reply->elements.empty() ||
           reply->elements[0].str != "master")) {
        target->step_error = absl::UnavailableError(
            "the server Sentinel named is not a master (yet); asking again");
      }
      if (keep_reply) target->step_reply = std::move(*reply);
      if (last) target->step_done = true;
    };
    Send(conn, std::move(request));
  }

  void OnStepDone(Conn& conn, absl::Time now) {
    if (conn.phase == Phase::kAskSentinel) {
      std::optional<RedisReply> reply = std::move(conn.step_reply);
      absl::Status error = conn.step_error;
      AbortAc(conn);
      RedisAddress master;
      int port = 0;
      if (error.ok() && reply.has_value() &&
          reply->type == RedisReply::Type::kArray &&
          reply->elements.size() == 2 &&
          absl::SimpleAtoi(reply->elements[1].str, &port) && port > 0 &&
          port < 65536) {
        master.host = reply->elements[0].str;
        master.port = port;
        ConnectToServer(conn, master, now);
        return;
      }
      NextSentinel(conn,
                   error.ok() ? absl::StrCat("does not know master '",
                                             options_.sentinel_master, "'")
                              : std::string(error.message()),
                   now);
      return;
    }
    if (conn.phase != Phase::kConnecting) return;
    if (!conn.step_error.ok()) {
      std::string why(conn.step_error.message());
      AbortAc(conn);
      AttemptFailed(conn, why, now);
      return;
    }
    conn.phase = Phase::kReady;
    conn.backoff = conn.backoff->clone();
    conn.announced_failure = false;
    bool reconnect = conn.ever_ready;
    conn.ever_ready = true;
    if (!conn.pubsub) {
      absl::MutexLock lock(&mu_);
      stats_.connected = true;
      if (reconnect) ++stats_.reconnects;
    }
    LogInfo("connected to Redis",
            {{"connection", conn.name}, {"address", Describe(conn.target)}});
    if (conn.pubsub) SendSubscribe(conn);
  }

  void AttemptFailed(Conn& conn, const std::string& why, absl::Time now) {
    conn.phase = Phase::kIdle;
    conn.retry_at = now + conn.backoff->OnCompletion();
    std::string message = absl::StrCat("cannot connect to Redis: ", why);
    {
      absl::MutexLock lock(&mu_);
      stats_.last_error = message;
    }
    nlohmann::json fields = {{"connection", conn.name}, {"error", why}};
    if (!conn.announced_failure) {
      conn.announced_failure = true;
      LogWarning("cannot connect to Redis; retrying with backoff", fields);
    } else {
      LogDebug("cannot connect to Redis", fields);
    }
  }

  void Dropped(Conn& conn, const std::string& why, absl::Time now) {
    conn.phase = Phase::kIdle;
    conn.backoff = conn.backoff->clone();
    conn.retry_at = now + conn.backoff->OnCompletion();
    conn.announced_failure = true;
    bool was_subscribed = conn.subscribed;
    conn.subscribed = false;
    {
      absl::MutexLock lock(&mu_);
      stats_.last_error = absl::StrCat("Redis connection lost: ", why);
      if (conn.pubsub) {
        stats_.subscribed = false;
      } else {
        stats_.connected = false;
      }
    }
    LogWarning("Redis connection lost; reconnecting",
               {{"connection", conn.name}, {"error", why}});
    if (was_subscribed && subscription_.has_value() &&
        subscription_->on_state) {
      subscription_->on_state(false);
    }
  }

  void SendSubscribe(Conn& conn) {
    if (!subscription_.has_value() || conn.ac == nullptr) return;
    std::vector<std::string> args = {"SUBSCRIBE"};
    args.insert(args.end(), subscription_->channels.begin(),
                subscription_->channels.end());
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const std::string& arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    conn.confirmations = 0;
    // privdata is the Conn (it outlives every context); hiredis calls this
    // for each confirmation and message, and with NULL per channel when the
    // context goes away.
    redisAsyncCommandArgv(conn.ac, OnPubSub, &conn,
                          static_cast<int>(argv.size()), argv.data(),
                          lengths.data());
  }

  void Send(Conn& conn, std::unique_ptr<Request> request) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    argv.reserve(request->args.size());
    lengths.reserve(request->args.size());
    for (const std::string& arg : request->args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (!request->internal) {
      absl::MutexLock lock(&mu_);
      ++stats_.commands;
    }
    request->conn = &conn;
    conn.inflight.push_back(request.get());
    request->pos = std::prev(conn.inflight.end());
    Request* raw = request.release();
    int rc = conn.ac == nullptr
                 ? REDIS_ERR
                 : redisAsyncCommandArgv(conn.ac, OnReply, raw,
                                         static_cast<int>(argv.size()),
                                         argv.data(), lengths.data());
    if (rc != REDIS_OK) {
      conn.inflight.erase(raw->pos);
      Complete(std::unique_ptr<Request>(raw),
               absl::UnavailableError(
                   "the Redis connection is closing; command not sent"));
    }
  }

  void Complete(std::unique_ptr<Request> request,
                absl::StatusOr<RedisReply> result) {
    if (!request->internal) {
      absl::MutexLock lock(&mu_);
      --outstanding_;
      if (!result.ok() &&
          result.status().code() != absl::StatusCode::kCancelled) {
        ++stats_.command_errors;
      }
    }
    // No lock held: the callback may call Command() or stats().
    request->done(std::move(result));
  }

  void Shutdown() {
    cancelling_ = true;
    std::deque<std::unique_ptr<Request>> queued;
    {
      absl::MutexLock lock(&mu_);
      queued.swap(submitted_);
      stats_.connected = false;
      stats_.subscribed = false;
    }
    for (auto& request : queued) waiting_.push_back(std::move(request));
    while (!waiting_.empty()) {
      std::unique_ptr<Request> request = std::move(waiting_.front());
      waiting_.pop_front();
      Complete(std::move(request),
               absl::CancelledError("the Redis client is stopped"));
    }
    // In-flight requests are answered CANCELLED from hiredis's NULL
    // callbacks. on_state(false) is not called: the owner is stopping.
    AbortAc(commands_);
    AbortAc(pubsub_);
  }

  const RedisOptions options_;
  int wake_fd_ = -1;
  std::thread thread_;
  absl::Mutex join_mu_;

  mutable absl::Mutex mu_;
  std::thread::id loop_thread_id_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool subscribed_once_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<Request>> submitted_ ABSL_GUARDED_BY(mu_);
  std::optional<Subscription> new_subscription_ ABSL_GUARDED_BY(mu_);
  size_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  RedisClientStats stats_ ABSL_GUARDED_BY(mu_);

  // Loop thread only (and the destructor, after the join).
  Conn commands_;
  Conn pubsub_;
  std::deque<std::unique_ptr<Request>> waiting_;  // Not sent yet.
  std::optional<Subscription> subscription_;
  bool cancelling_ = false;
};

void OnReply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<Request> request(static_cast<Request*>(privdata));
  Conn* conn = request->conn;
  RedisClientImpl* client = conn->client;
  conn->inflight.erase(request->pos);
  absl::StatusOr<RedisReply> result;
  if (reply != nullptr) {
    result = internal::FromHiredisReply(*static_cast<redisReply*>(reply));
  } else if (client->cancelling_) {
    result = absl::CancelledError("the Redis client is stopped");
  } else if (request->timed_out) {
    result = absl::DeadlineExceededError(
        absl::StrCat("Redis did not answer ", CommandName(request->args),
                     " within the command timeout (",
                     absl::FormatDuration(client->options_.command_timeout),
                     "); the connection is re-made"));
  } else {
    result = absl::UnavailableError(
        absl::StrCat("the Redis connection dropped before the answer to ",
                     CommandName(request->args)));
  }
  client->Complete(std::move(request), std::move(result));
}

void OnPubSub(redisAsyncContext*, void* reply, void* privdata) {
  Conn* conn = static_cast<Conn*>(privdata);
  RedisClientImpl* client = conn->client;
  if (reply == nullptr || !client->subscription_.has_value()) return;
  const redisReply* r = static_cast<const redisReply*>(reply);
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
      r->element[0]->type != REDIS_REPLY_STRING ||
      r->element[1]->type != REDIS_REPLY_STRING) {
    return;
  }
  std::string kind(r->element[0]->str, r->element[0]->len);
  Subscription& subscription = *client->subscription_;
  if (kind == "subscribe") {
    ++conn->confirmations;
    if (!conn->subscribed &&
        conn->confirmations >= subscription.channels.size()) {
      conn->subscribed = true;
      {
        absl::MutexLock lock(&client->mu_);
        client->stats_.subscribed = true;
      }
      if (subscription.on_state) subscription.on_state(true);
    }
  } else if (kind == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
    if (subscription.on_message) {
      subscription.on_message(
          std::string(r->element[1]->str, r->element[1]->len),
          std::string(r->element[2]->str, r->element[2]->len));
    }
  }
}

absl::Status ValidateAddress(const RedisAddress& address, const char* what) {
  if (!address.unix_path.empty()) return absl::OkStatus();
  if (address.host.empty() || address.port < 1 || address.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Redis ", what, " needs a host and a port"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RedisReply> RedisClient::CommandSync(
    std::vector<std::string> args) {
  if (OnLoopThread()) {
    return absl::FailedPreconditionError(
        "CommandSync called from the Redis client's own thread");
  }
  struct State {
    absl::Notification done;
    absl::StatusOr<RedisReply> result;
  };
  auto state = std::make_shared<State>();
  Command(std::move(args), [state](absl::StatusOr<RedisReply> reply) {
    state->result = std::move(reply);
    state->done.Notify();
  });
  // Bounded: every request is answered by its deadline (command_timeout).
  state->done.WaitForNotification();
  return std::move(state->result);
}

absl::StatusOr<RedisReply> RedisClient::EvalSync(
    const std::string& script, std::vector<std::string> keys,
    std::vector<std::string> args) {
  if (OnLoopThread()) {
    return absl::FailedPreconditionError(
        "EvalSync called from the Redis client's own thread");
  }
  struct State {
    absl::Notification done;
    absl::StatusOr<RedisReply> result;
  };
  auto state = std::make_shared<State>();
  Eval(script, std::move(keys), std::move(args),
       [state](absl::StatusOr<RedisReply> reply) {
         state->result = std::move(reply);
         state->done.Notify();
       });
  state->done.WaitForNotification();
  return std::move(state->result);
}

absl::StatusOr<std::unique_ptr<RedisClient>> StartRedisClient(
    RedisOptions options) {
  if (options.sentinels.empty()) {
    absl::Status address = ValidateAddress(options.address, "address");
    if (!address.ok()) return address;
  } else {
    if (options.sentinel_master.empty()) {
      return absl::InvalidArgumentError(
          "Redis Sentinel needs the master's name");
    }
    for (const RedisAddress& sentinel : options.sentinels) {
      absl::Status address = ValidateAddress(sentinel, "Sentinel address");
      if (!address.ok()) return address;
    }
  }
  if (!options.username.empty() && options.password.empty()) {
    return absl::InvalidArgumentError("a Redis username needs a password too");
  }
  if (options.connect_timeout <= absl::ZeroDuration() ||
      options.command_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "the Redis connect and command timeouts must be positive");
  }
  if (options.reconnect_min <= absl::ZeroDuration() ||
      options.reconnect_max < options.reconnect_min) {
    return absl::InvalidArgumentError(
        "Redis reconnect delays need 0 < reconnect_min <= reconnect_max");
  }
  auto client = std::make_unique<RedisClientImpl>(std::move(options));
  absl::Status started = client->Start();
  if (!started.ok()) return started;
  return std::unique_ptr<RedisClient>(std::move(client));
}

}  // namespace tokenbroker
