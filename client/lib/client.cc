#include "client/lib/client.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/lib/broker_rpc.h"
#include "client/lib/retry_loop.h"
#include "grpcpp/grpcpp.h"
#include "service/common/backoff_policy.h"

namespace tokenbroker {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;
using client_internal::BackoffPolicyFor;
using client_internal::CheckTokenUser;
using client_internal::FromGrpcStatus;
using client_internal::PrepareContext;
using client_internal::RetryPolicyFor;
using client_internal::RpcDescription;

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

AccessToken FromProto(const v1::GetTokenResponse& response) {
  AccessToken token;
  token.access_token = response.access_token();
  token.token_type = response.token_type();
  token.expires_at = response.has_expires_at() ? ToTime(response.expires_at())
                                               : absl::InfinitePast();
  token.scopes.assign(response.scopes().begin(), response.scopes().end());
  token.app = response.app();
  token.user_id = response.user_id();
  token.username = response.username();
  return token;
}

// Order and duplicates of scopes do not matter to the broker: one key each.
std::vector<std::string> NormalizeScopes(std::vector<std::string> scopes) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  return scopes;
}

v1::CallRequest ToProto(const std::string& app,
                        const ClientCallRequest& request) {
  v1::CallRequest call;
  call.set_app(app);
  call.set_method(absl::AsciiStrToUpper(request.method));
  call.set_path(request.path);
  for (const auto& [name, value] : request.headers) {
    v1::Header* header = call.add_headers();
    header->set_name(name);
    header->set_value(value);
  }
  call.set_body(request.body);
  for (const std::string& scope : request.scopes) call.add_scopes(scope);
  call.set_user(request.user);
  return call;
}

// Only a request without side effects may be sent twice.
bool IsSafeToRetry(const v1::CallRequest& call) {
  return call.method() == "GET" || call.method() == "HEAD";
}

RpcDescription Describe(const ClientConnection& connection,
                        absl::string_view rpc_name, absl::Duration timeout) {
  RpcDescription description;
  description.rpc_name = rpc_name;
  description.target = connection.target;
  description.timeout = timeout;
  return description;
}

// Deadlines are judged on the real clock; waits use options.sleep.
RetryClock MakeRetryClock(const ClientOptions& options) {
  RetryClock clock;
  clock.sleep = options.sleep;
  return clock;
}

ClientCallResponse Head(
    int status, const google::protobuf::RepeatedPtrField<v1::Header>& headers) {
  ClientCallResponse head;
  head.status = status;
  for (const v1::Header& header : headers) {
    head.headers.emplace_back(header.name(), header.value());
  }
  return head;
}

}  // namespace

absl::Duration BackoffDelay(const ClientRetryOptions& retry, int attempt,
                            absl::BitGenRef gen) {
  // The policy the retries use, advanced to `attempt` without drawing.
  bool draw = false;
  ExponentialBackoffPolicy policy = BackoffPolicyFor(
      retry, [&] { return draw ? absl::Uniform(gen, 0.0, 1.0) : 0.0; });
  for (int i = 1; i < attempt; ++i) {
    const absl::Duration ceiling = policy.current_ceiling();
    policy.OnCompletion();
    if (policy.current_ceiling() == ceiling) break;  // It stays there.
  }
  draw = true;
  return policy.OnCompletion();
}

// One WatchToken stream. Owned by the Client: by its cache entry while the
// stream is open, then by `finished_` until a user thread (GetToken or the
// destructor) deletes it. It is never deleted on a gRPC thread: its
// ClientContext holds a reference to the channel, and a channel must not be
// destroyed on the callback thread that runs this reactor (gRPC 1.51 would
// try to join that thread from itself).
class Client::WatchReactor final
    : public grpc::ClientReadReactor<v1::GetTokenResponse> {
 public:
  // Watches the token of `app` (as the broker resolved it) for `user_id`
  // (empty for an app acting on its own behalf).
  WatchReactor(Client* client, Key key, std::string app, std::string user_id)
      : client_(client), key_(std::move(key)), user_id_(std::move(user_id)) {
    request_.set_app(std::move(app));
    for (const std::string& scope : key_.scopes) request_.add_scopes(scope);
    request_.set_user(user_id_);
    PrepareContext(client_->connection_, absl::InfiniteFuture(), &context_);
  }

  // Must be called once, without the Client's lock (gRPC may run reactions
  // inline).
  void Start() {
    client_->broker_->async()->WatchToken(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  // Under the Client's lock: the stream was cancelled because its key was
  // evicted (so its end is not a break).
  void MarkEvicted() { evicted_ = true; }
  bool evicted() const { return evicted_; }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream is over; OnDone follows.
    client_->OnWatchToken(key_, user_id_, response_);
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    // The reactor may be deleted as soon as this returns inside: the last
    // use of `this`.
    client_->OnWatchDone(key_, this, request_.app(), status);
  }

 private:
  Client* const client_;
  const Key key_;
  const std::string user_id_;
  bool evicted_ = false;  // Guarded by the Client's mu_.
  grpc::ClientContext context_;
  v1::WatchTokenRequest request_;
  v1::GetTokenResponse response_;
};

absl::StatusOr<std::unique_ptr<Client>> Client::Create(
    const ClientChannelOptions& channel, ClientOptions options) {
  absl::StatusOr<ClientConnection> connection = MakeClientConnection(channel);
  if (!connection.ok()) return connection.status();
  return std::make_unique<Client>(*std::move(connection), std::move(options));
}

Client::Client(ClientConnection connection, ClientOptions options)
    : connection_(std::move(connection)),
      options_(std::move(options)),
      broker_(v1::TokenBroker::NewStub(connection_.channel)) {}

Client::~Client() {
  std::vector<std::shared_ptr<WatchReactor>> watches;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [key, entry] : entries_) {
      if (entry.watch != nullptr) watches.push_back(entry.watch);
    }
  }
  // Outside the lock: cancelling may run OnDone inline, which takes it.
  for (const auto& watch : watches) watch->Cancel();
  watches.clear();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* active) { return *active == 0; }, &active_watches_));
  // The reactors (`entries_`, `finished_`) are deleted on this thread, before
  // the stub and the channel.
}

absl::Time Client::Now() const {
  return options_.clock ? options_.clock() : absl::Now();
}

template <typename Response, typename Rpc>
absl::StatusOr<Response> Client::Unary(absl::string_view rpc_name, bool retry,
                                       std::atomic<int64_t>* attempts,
                                       Rpc rpc) {
  const absl::Time deadline = absl::Now() + options_.timeout;
  const RpcDescription description =
      Describe(connection_, rpc_name, options_.timeout);
  ExponentialBackoffPolicy backoff = BackoffPolicyFor(options_.retry);
  return RetryLoop(RetryPolicyFor(options_.retry, retry), backoff, deadline,
                   MakeRetryClock(options_), [&] {
                     attempts->fetch_add(1, std::memory_order_relaxed);
                     return client_internal::UnaryAttempt<Response>(
                         connection_, deadline, description, rpc);
                   });
}

bool Client::Key::operator<(const Key& other) const {
  return std::tie(app, scopes, user) <
         std::tie(other.app, other.scopes, other.user);
}

absl::StatusOr<AccessToken> Client::GetToken(
    const std::string& app, const std::vector<std::string>& scopes,
    absl::Duration min_ttl) {
  ClientTokenRequest request;
  request.scopes = scopes;
  request.min_ttl = min_ttl;
  return GetToken(app, request);
}

absl::StatusOr<AccessToken> Client::GetToken(
    const std::string& app, const ClientTokenRequest& options) {
  // The user is part of the key: a token of one user is never served for
  // another, nor for a request that names no user.
  const Key key{app, NormalizeScopes(options.scopes), options.user};
  const absl::Duration need = options.min_ttl > absl::ZeroDuration()
                                  ? options.min_ttl
                                  : options_.default_min_ttl;
  std::optional<AccessToken> hit;
  std::vector<std::shared_ptr<WatchReactor>> evicted;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = Now();
    evicted = EvictIdleLocked(now);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.token.has_value() &&
        it->second.token->expires_at - now >= need) {
      ++cache_hits_;
      it->second.last_used = now;
      hit = it->second.token;
    }
  }
  // Outside the lock: cancelling may run OnDone inline, which takes it.
  for (const auto& watch : evicted) watch->Cancel();
  evicted.clear();
  if (hit.has_value()) return *std::move(hit);

  v1::GetTokenRequest request;
  request.set_app(app);
  for (const std::string& scope : key.scopes) request.add_scopes(scope);
  request.set_min_ttl_seconds(
      static_cast<int32_t>(std::ceil(absl::ToDoubleSeconds(need))));
  request.set_user(key.user);
  constexpr absl::string_view kRpc = "TokenBroker.GetToken";
  absl::StatusOr<v1::GetTokenResponse> response = Unary<v1::GetTokenResponse>(
      kRpc, /*retry=*/true, &get_token_rpcs_,
      [&](grpc::ClientContext* context, v1::GetTokenResponse* out) {
        return broker_->GetToken(context, request, out);
      });
  if (!response.ok()) return response.status();
  absl::Status whose = CheckTokenUser(
      key.user, *response, Describe(connection_, kRpc, options_.timeout));
  if (!whose.ok()) return whose;
  AccessToken token = FromProto(*response);

  std::shared_ptr<WatchReactor> watch;
  std::vector<std::shared_ptr<WatchReactor>> finished;  // Deleted unlocked.
  {
    absl::MutexLock lock(&mu_);
    finished.swap(finished_);
    Entry& entry = entries_[key];
    entry.last_used = Now();
    // A watch may have delivered a newer token meanwhile: keep the newest.
    if (!entry.token.has_value() ||
        entry.token->expires_at <= token.expires_at) {
      entry.token = token;
    }
    if (options_.watch && entry.watch == nullptr && !shutting_down_ &&
        !token.app.empty()) {
      // The watch names what the broker resolved (the app, and the user by
      // id), so that it follows this very token.
      watch =
          std::make_shared<WatchReactor>(this, key, token.app, token.user_id);
      entry.watch = watch;
      ++active_watches_;
      ++watches_started_;
    }
  }
  if (watch != nullptr) watch->Start();
  return token;
}

void Client::OnWatchToken(const Key& key, const std::string& user_id,
                          const v1::GetTokenResponse& response) {
  AccessToken token = FromProto(response);
  {
    absl::MutexLock lock(&mu_);
    ++watch_updates_;
    auto it = entries_.find(key);
    if (it == entries_.end()) return;  // Evicted; the stream is ending.
    // Whatever the stream sent, a token of another user (or of a user, on
    // a watch of an app's own token) is not this key's.
    if (token.user_id != user_id ||
        (user_id.empty() && !token.username.empty())) {
      return;
    }
    Entry& entry = it->second;
    if (!entry.token.has_value() ||
        entry.token->expires_at <= token.expires_at) {
      entry.token = token;
    }
  }
  if (options_.on_watch_event) {
    options_.on_watch_event(token.app, absl::OkStatus());
  }
}

void Client::OnWatchDone(const Key& key, const WatchReactor* reactor,
                         const std::string& app, const grpc::Status& status) {
  absl::Status result =
      FromGrpcStatus(status, Describe(connection_, "TokenBroker.WatchToken",
                                      absl::InfiniteDuration()));
  {
    absl::MutexLock lock(&mu_);
    if (!shutting_down_ && !reactor->evicted()) ++watch_breaks_;
    // Detached from its entry first, so that a GetToken from now on opens a
    // new stream; kept alive in `ending_` while this function runs.
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.watch.get() == reactor) {
      ending_.push_back(std::move(it->second.watch));
      it->second.watch = nullptr;
    }
  }
  // Before the count drops, while the Client is surely alive.
  if (options_.on_watch_event) options_.on_watch_event(app, result);
  absl::MutexLock lock(&mu_);
  auto ending =
      std::find_if(ending_.begin(), ending_.end(),
                   [reactor](const std::shared_ptr<WatchReactor>& watch) {
                     return watch.get() == reactor;
                   });
  if (ending != ending_.end()) {
    finished_.push_back(std::move(*ending));
    ending_.erase(ending);
  }
  --active_watches_;
  // From here on the Client (and the reactor) may be destroyed.
}

absl::StatusOr<ClientCallResponse> Client::Call(
    const std::string& app, const ClientCallRequest& request) {
  const v1::CallRequest call = ToProto(app, request);
  absl::StatusOr<v1::CallResponse> response = Unary<v1::CallResponse>(
      "TokenBroker.Call", IsSafeToRetry(call), &call_rpcs_,
      [&](grpc::ClientContext* context, v1::CallResponse* out) {
        return broker_->Call(context, call, out);
      });
  if (!response.ok()) return response.status();
  ClientCallResponse out = Head(response->status(), response->headers());
  out.body = response->body();
  return out;
}

absl::StatusOr<ClientCallResponse> Client::CallStream(
    const std::string& app, const ClientCallRequest& request,
    const ClientCallStreamHandlers& handlers) {
  if (!handlers.on_body) {
    return absl::InvalidArgumentError("CallStream: on_body is required");
  }
  const v1::CallRequest call = ToProto(app, request);
  const absl::Time deadline = absl::Now() + options_.stream_timeout;
  bool answer_begun = false;
  RetryPolicy retry = RetryPolicyFor(options_.retry, IsSafeToRetry(call));
  if (retry.retryable) {
    // Once the caller has part of the answer, a retry would repeat it.
    retry.retryable = [&answer_begun](const absl::Status& status) {
      return !answer_begun && client_internal::IsRetryable(status);
    };
  }
  ExponentialBackoffPolicy backoff = BackoffPolicyFor(options_.retry);
  return RetryLoop(retry, backoff, deadline, MakeRetryClock(options_), [&] {
    return CallStreamAttempt(call, handlers, deadline, &answer_begun);
  });
}

absl::StatusOr<ClientCallResponse> Client::CallStreamAttempt(
    const v1::CallRequest& call, const ClientCallStreamHandlers& handlers,
    absl::Time deadline, bool* answer_begun) {
  constexpr absl::string_view kRpc = "TokenBroker.CallStream";
  grpc::ClientContext context;
  PrepareContext(connection_, deadline, &context);
  call_stream_rpcs_.fetch_add(1, std::memory_order_relaxed);
  std::unique_ptr<grpc::ClientReader<v1::CallStreamResponse>> reader =
      broker_->CallStream(&context, call);
  std::optional<ClientCallResponse> head;
  v1::CallStreamResponse message;
  while (reader->Read(&message)) {
    if (!head.has_value()) {
      // The first message carries the status and headers.
      head = Head(message.status(), message.headers());
      *answer_begun = true;
      if (handlers.on_head) handlers.on_head(*head);
    }
    if (message.body_chunk().empty()) continue;
    absl::Status delivered = handlers.on_body(message.body_chunk());
    if (!delivered.ok()) {
      context.TryCancel();
      reader->Finish();  // CANCELLED, by us.
      return delivered;
    }
  }
  grpc::Status status = reader->Finish();
  if (status.ok()) {
    if (!head.has_value()) {
      return absl::InternalError(
          absl::StrCat("the broker ended ", kRpc, " without an answer"));
    }
    return *std::move(head);
  }
  return FromGrpcStatus(status,
                        Describe(connection_, kRpc, options_.stream_timeout));
}

absl::StatusOr<ClientCallResponse> Client::CallStream(
    const std::string& app, const ClientCallRequest& request,
    std::ostream& body) {
  ClientCallStreamHandlers handlers;
  handlers.on_body = [&body](absl::string_view piece) {
    body.write(piece.data(), static_cast<std::streamsize>(piece.size()));
    if (!body) {
      return absl::DataLossError(
          "writing the body failed; the download was cancelled");
    }
    return absl::OkStatus();
  };
  return CallStream(app, request, handlers);
}

absl::StatusOr<ClientCallResponse> Client::Get(const std::string& app,
                                               const std::string& path) {
  ClientCallRequest request;
  request.method = "GET";
  request.path = path;
  return Call(app, request);
}

ClientStats Client::stats() const {
  ClientStats stats;
  stats.get_token_rpcs = get_token_rpcs_.load(std::memory_order_relaxed);
  stats.call_rpcs = call_rpcs_.load(std::memory_order_relaxed);
  stats.call_stream_rpcs = call_stream_rpcs_.load(std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  stats.cache_hits = cache_hits_;
  stats.watches_started = watches_started_;
  stats.watch_updates = watch_updates_;
  stats.watch_breaks = watch_breaks_;
  stats.evictions = evictions_;
  return stats;
}

std::vector<std::shared_ptr<Client::WatchReactor>> Client::EvictIdleLocked(
    absl::Time now) {
  std::vector<std::shared_ptr<WatchReactor>> cancel;
  const absl::Duration idle = options_.idle_eviction;
  if (idle <= absl::ZeroDuration() || idle == absl::InfiniteDuration() ||
      now < next_sweep_) {
    return cancel;
  }
  next_sweep_ = now + idle / 2;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.last_used < idle) {
      ++it;
      continue;
    }
    if (it->second.watch != nullptr) {
      it->second.watch->MarkEvicted();
      ending_.push_back(it->second.watch);
      cancel.push_back(std::move(it->second.watch));
    }
    it = entries_.erase(it);
    ++evictions_;
  }
  return cancel;
}

}  // namespace tokenbroker
