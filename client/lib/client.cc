#include "client/lib/client.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"

namespace tokenbroker {
namespace {

namespace v1 = ::anypoint::tokenbroker::v1;

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
  return call;
}

// Only a request without side effects may be sent twice.
bool IsSafeToRetry(const v1::CallRequest& call) {
  return call.method() == "GET" || call.method() == "HEAD";
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
  double bound_seconds = absl::ToDoubleSeconds(retry.initial_backoff) *
                         std::pow(retry.multiplier, std::max(0, attempt - 1));
  bound_seconds =
      std::min(bound_seconds, absl::ToDoubleSeconds(retry.max_backoff));
  if (!(bound_seconds > 0)) return absl::ZeroDuration();
  return absl::Seconds(absl::Uniform(gen, 0.0, bound_seconds));
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
  WatchReactor(Client* client, Key key, std::string app)
      : client_(client), key_(std::move(key)) {
    request_.set_app(std::move(app));
    for (const std::string& scope : key_.second) request_.add_scopes(scope);
    client_->Prepare(&context_);
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
    client_->OnWatchToken(key_, response_);
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

void Client::Prepare(grpc::ClientContext* context) const {
  if (!connection_.bearer_key.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", connection_.bearer_key));
  }
}

absl::Status Client::FromGrpc(const grpc::Status& status,
                              absl::string_view rpc_name,
                              absl::Duration timeout) const {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  std::string message = status.error_message();
  switch (code) {
    case absl::StatusCode::kUnimplemented:
      if (message.empty()) {
        message = absl::StrCat("the broker does not implement ", rpc_name,
                               " (is it older than this client?)");
      }
      break;
    case absl::StatusCode::kUnavailable:
      absl::StrAppend(&message, " (", rpc_name, " to the broker at ",
                      connection_.target, ")");
      break;
    case absl::StatusCode::kDeadlineExceeded:
      absl::StrAppend(&message, " (", rpc_name, " took more than ",
                      absl::FormatDuration(timeout), ")");
      break;
    default:
      break;
  }
  return absl::Status(code, message);
}

template <typename Response, typename Rpc>
absl::StatusOr<Response> Client::Unary(absl::string_view rpc_name, bool retry,
                                       std::atomic<int64_t>* attempts,
                                       Rpc rpc) {
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    Prepare(&context);
    Response response;
    attempts->fetch_add(1, std::memory_order_relaxed);
    grpc::Status status = rpc(&context, &response);
    if (status.ok()) return response;
    absl::Status error = FromGrpc(status, rpc_name, options_.timeout);
    if (!retry || error.code() != absl::StatusCode::kUnavailable ||
        !Backoff(attempt, deadline)) {
      return error;
    }
  }
}

bool Client::Backoff(int attempt, absl::Time deadline) const {
  if (attempt >= options_.retry.max_attempts) return false;
  absl::BitGen gen;  // Seeded only when a retry needs it.
  absl::Duration delay = BackoffDelay(options_.retry, attempt, gen);
  if (absl::Now() + delay >= deadline) return false;
  if (options_.sleep) {
    options_.sleep(delay);
  } else {
    absl::SleepFor(delay);
  }
  return true;
}

absl::StatusOr<AccessToken> Client::GetToken(
    const std::string& app, const std::vector<std::string>& scopes,
    absl::Duration min_ttl) {
  Key key(app, NormalizeScopes(scopes));
  const absl::Duration need =
      min_ttl > absl::ZeroDuration() ? min_ttl : options_.default_min_ttl;
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
  for (const std::string& scope : key.second) request.add_scopes(scope);
  request.set_min_ttl_seconds(
      static_cast<int32_t>(std::ceil(absl::ToDoubleSeconds(need))));
  absl::StatusOr<v1::GetTokenResponse> response = Unary<v1::GetTokenResponse>(
      "TokenBroker.GetToken", /*retry=*/true, &get_token_rpcs_,
      [&](grpc::ClientContext* context, v1::GetTokenResponse* out) {
        return broker_->GetToken(context, request, out);
      });
  if (!response.ok()) return response.status();
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
      watch = std::make_shared<WatchReactor>(this, key, token.app);
      entry.watch = watch;
      ++active_watches_;
      ++watches_started_;
    }
  }
  if (watch != nullptr) watch->Start();
  return token;
}

void Client::OnWatchToken(const Key& key,
                          const v1::GetTokenResponse& response) {
  AccessToken token = FromProto(response);
  {
    absl::MutexLock lock(&mu_);
    ++watch_updates_;
    auto it = entries_.find(key);
    if (it == entries_.end()) return;  // Evicted; the stream is ending.
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
      FromGrpc(status, "TokenBroker.WatchToken", absl::InfiniteDuration());
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
  constexpr absl::string_view kRpc = "TokenBroker.CallStream";
  const v1::CallRequest call = ToProto(app, request);
  const bool retry = IsSafeToRetry(call);
  const absl::Time deadline = absl::Now() + options_.stream_timeout;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    Prepare(&context);
    call_stream_rpcs_.fetch_add(1, std::memory_order_relaxed);
    std::unique_ptr<grpc::ClientReader<v1::CallStreamResponse>> reader =
        broker_->CallStream(&context, call);
    std::optional<ClientCallResponse> head;
    v1::CallStreamResponse message;
    while (reader->Read(&message)) {
      if (!head.has_value()) {
        // The first message carries the status and headers.
        head = Head(message.status(), message.headers());
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
    absl::Status error = FromGrpc(status, kRpc, options_.stream_timeout);
    // Once the caller has part of the answer, a retry would repeat it.
    if (!retry || head.has_value() ||
        error.code() != absl::StatusCode::kUnavailable ||
        !Backoff(attempt, deadline)) {
      return error;
    }
  }
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
