// tokenbroker::Client: what a service links to get Anypoint access tokens
// from the token broker.
//
//   tokenbroker::ClientChannelOptions channel;
//   channel.target = "dns:///token-broker.tb.svc.cluster.local:50051";
//   channel.load_balancing_policy = "round_robin";
//   channel.ca_file = "/etc/tokenbroker/ca.pem";  // + cert_file, key_file
//   absl::StatusOr<std::unique_ptr<tokenbroker::Client>> client =
//       tokenbroker::Client::Create(channel);
//   absl::StatusOr<tokenbroker::AccessToken> token =
//       (*client)->GetToken("exchange");
//   // send "Authorization: Bearer " + token->access_token to Anypoint
//
// Or let the broker send the request, and never hold the token at all:
//   absl::StatusOr<tokenbroker::ClientCallResponse> me =
//       (*client)->Get("exchange", "/accounts/api/me");
//
// Apps acting on behalf of users (authorization code): name the user, by
// Anypoint username or user id, in the request (it may be left empty when
// the app has exactly one connected user):
//   tokenbroker::ClientTokenRequest request;
//   request.user = "alice";
//   absl::StatusOr<tokenbroker::AccessToken> token =
//       (*client)->GetToken("viewer", request);
//   // token->user_id, token->username: whose token it is.
// and likewise ClientCallRequest::user for Call and CallStream. A user whose
// grant was revoked or expired gets FAILED_PRECONDITION: an operator must
// connect that user again (`tokenbrokerctl connect APP`).
//
// Local cache. GetToken keeps each token it receives, keyed by app, the
// sorted set of scopes and the user as the request named it (possibly none),
// and answers later calls from memory, with no RPC at all, while the token
// has at least `min_ttl` left. A token cached for one user is never served
// for a request naming another user or naming none: each is its own key, and
// a request naming no user gets only what the broker answered to such a
// request (for a user app with one connected user: that user's token). After
// the first RPC for a key the client opens a TokenBroker.WatchToken stream
// for it, naming the app and the user (by id) the broker answered for: the
// broker pushes each token it refreshes (at about two thirds of the
// lifetime), so in steady state every GetToken is a hit; a token the stream
// sends for anyone else is ignored. When a watch ends (broker restarted,
// connection lost, error), the cached token is still served while it has
// `min_ttl` left; after that GetToken falls back to a GetToken RPC, which also
// opens a new watch. A key that GetToken has not asked for in `idle_eviction`
// is dropped (its stream cancelled, its token forgotten), so a process that
// asks for many (app, scopes, user) over its life holds streams only for
// those in use.
//
// Deadlines and retries. Every unary RPC has a deadline of `timeout` in total;
// UNAVAILABLE (broker unreachable or restarting, or Anypoint down with no
// valid token) is retried with truncated exponential backoff and full jitter
// within that deadline. GetToken is always safe to retry; Call and
// CallStream only for GET and HEAD (CallStream only before the first byte of
// the answer arrived). Other errors are returned at once.
//
// Errors are the broker's gRPC status as absl::Status (the codes have the same
// values): INVALID_ARGUMENT malformed request, UNAUTHENTICATED /
// PERMISSION_DENIED the caller may not (or the app is unknown: unknown and
// ungranted apps look the same to a caller), FAILED_PRECONDITION
// Anypoint rejected the app's credentials or the user must connect again,
// UNAVAILABLE broker or Anypoint unreachable, DEADLINE_EXCEEDED `timeout`
// passed, UNIMPLEMENTED a user was named and the broker does not act on
// behalf of users. Messages never carry a token or a secret.
//
// Thread safety: every method may be called from any thread at the same time.
// The destructor cancels the watch streams and waits for them to end; no
// other call may run on the Client then.
#ifndef TOKENBROKER_CLIENT_LIB_CLIENT_H_
#define TOKENBROKER_CLIENT_LIB_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anypoint/tokenbroker/v1/token_broker.grpc.pb.h"
#include "client/lib/channel.h"

namespace tokenbroker {

// An access token as the broker handed it out.
struct AccessToken {
  std::string access_token;  // Send as "Authorization: Bearer <token>".
  std::string token_type;    // "Bearer".
  absl::Time expires_at = absl::InfinitePast();
  std::vector<std::string> scopes;
  std::string app;  // The app the token belongs to.
  // For an app acting on behalf of users: the Anypoint user id and username
  // the token acts for. Empty for apps acting on their own behalf.
  std::string user_id;
  std::string username;
};

// What GetToken asks for, besides the app.
struct ClientTokenRequest {
  // Scopes the token must carry; order and duplicates do not matter.
  std::vector<std::string> scopes;
  // The least lifetime the token must still have; zero: the client's
  // `default_min_ttl`.
  absl::Duration min_ttl = absl::ZeroDuration();
  // For an app acting on behalf of users: whose token, by Anypoint username
  // or user id. May be empty when the app has exactly one connected user;
  // must be empty for apps acting on their own behalf.
  std::string user;
};

// One HTTP request for Client::Call. `path` is origin-form with an optional
// query ("/accounts/api/me"); the broker sends it to the app's control plane.
struct ClientCallRequest {
  std::string method = "GET";
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::vector<std::string> scopes;
  // For an app acting on behalf of users: whose token the broker injects, as
  // in ClientTokenRequest::user.
  std::string user;
};

// The upstream answer. `status` is Anypoint's HTTP status: a 403 is data, not
// an error of Call.
struct ClientCallResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// What CallStream hands to its caller, in this order: `on_head` once with the
// upstream status and headers (the body empty), then `on_body` for each piece
// of the body. Both run on the thread that called CallStream.
struct ClientCallStreamHandlers {
  // May be null.
  std::function<void(const ClientCallResponse& head)> on_head;
  // Required. A non-OK result cancels the stream and becomes CallStream's
  // result (for example a failed write to disk).
  std::function<absl::Status(absl::string_view piece)> on_body;
};

// Retries of UNAVAILABLE: attempt n (from 1) waits a uniformly random time in
// [0, min(max_backoff, initial_backoff * multiplier^(n-1))] before the next.
struct ClientRetryOptions {
  int max_attempts = 4;  // 1: no retries.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double multiplier = 2.0;
};

// The wait after failed attempt `attempt` (from 1): full jitter over the
// truncated exponential bound above. Pure but for `gen`.
absl::Duration BackoffDelay(const ClientRetryOptions& retry, int attempt,
                            absl::BitGenRef gen);

struct ClientOptions {
  // Deadline of each unary RPC, retries included.
  absl::Duration timeout = absl::Seconds(10);
  // Deadline of each CallStream, retries included: a large download takes
  // longer than a unary call.
  absl::Duration stream_timeout = absl::Minutes(10);
  // Used when GetToken's `min_ttl` is zero (the broker's default too).
  absl::Duration default_min_ttl = absl::Seconds(30);
  // Keep cached tokens fresh with WatchToken streams. Off: every token is
  // served from the cache until it is within `min_ttl` of expiry, then
  // fetched with a GetToken RPC.
  bool watch = true;
  // A cache entry (and its watch stream) unused by GetToken for this long is
  // dropped; looked for at most every `idle_eviction / 2`, on GetToken.
  // Zero or absl::InfiniteDuration(): never.
  absl::Duration idle_eviction = absl::Minutes(15);
  ClientRetryOptions retry;
  // Reads the time to judge expiry; null: absl::Now. Deadlines always use
  // the real clock.
  std::function<absl::Time()> clock;
  // Waits between retries; null: absl::SleepFor.
  std::function<void(absl::Duration)> sleep;
  // Called on a gRPC thread after a watch updated the cache (OK) and when a
  // watch ends (its final status; CANCELLED when the Client is destroyed or
  // the key was evicted).
  // For logging and tests; must not block or destroy the Client.
  std::function<void(const std::string& app, const absl::Status& status)>
      on_watch_event;
};

// Counters of what the client did, since it was created.
struct ClientStats {
  int64_t cache_hits = 0;        // GetToken answered from memory.
  int64_t get_token_rpcs = 0;    // GetToken RPC attempts (retries included).
  int64_t call_rpcs = 0;         // Call RPC attempts.
  int64_t call_stream_rpcs = 0;  // CallStream RPC attempts.
  int64_t watches_started = 0;
  int64_t watch_updates = 0;  // Tokens received on watch streams.
  int64_t watch_breaks = 0;   // Streams that ended other than by ~Client
                              // or eviction.
  int64_t evictions = 0;      // Keys dropped after `idle_eviction` unused.
};

class Client {
 public:
  // Connects with MakeClientConnection(channel). Errors: those of
  // MakeClientConnection.
  static absl::StatusOr<std::unique_ptr<Client>> Create(
      const ClientChannelOptions& channel, ClientOptions options = {});

  // Uses an existing connection (for example one channel shared with other
  // stubs).
  Client(ClientConnection connection, ClientOptions options);
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A token of `app` carrying `request.scopes`, for `request.user` if set,
  // with at least `request.min_ttl` left (zero: `default_min_ttl`), from the
  // local cache when it holds one, else from the broker. `app` may be empty:
  // the broker picks the narrowest app the caller may use whose scopes cover
  // the scopes. Errors: as above; UNIMPLEMENTED when `request.user` is set
  // and the broker's answer names no user (a broker that predates apps
  // acting on behalf of users).
  absl::StatusOr<AccessToken> GetToken(const std::string& app,
                                       const ClientTokenRequest& request);

  // GetToken(app, request) with no user.
  absl::StatusOr<AccessToken> GetToken(
      const std::string& app, const std::vector<std::string>& scopes = {},
      absl::Duration min_ttl = absl::ZeroDuration());

  // Sends `request` through the broker (TokenBroker.Call) with `app`'s token
  // injected. The token never reaches this process. The upstream HTTP status
  // (a 403, a 404) is data in the response; errors are the broker's: for
  // example INVALID_ARGUMENT for a path that is not origin-form,
  // PERMISSION_DENIED for a route the caller's grant does not cover,
  // RESOURCE_EXHAUSTED for a body over the broker's limits. The whole body
  // is held in memory: use CallStream for large answers.
  absl::StatusOr<ClientCallResponse> Call(const std::string& app,
                                          const ClientCallRequest& request);

  // Call with GET and no body.
  absl::StatusOr<ClientCallResponse> Get(const std::string& app,
                                         const std::string& path);

  // Like Call, through TokenBroker.CallStream: the body is handed to
  // `handlers.on_body` piece by piece (about 64 KiB each) as it arrives,
  // so a large answer never sits whole in memory (the broker's size limits
  // still apply). Returns the status and headers (the body empty). The
  // deadline is `stream_timeout`. An error after `on_head` ran leaves the
  // body incomplete: the caller must discard what it received. Such errors
  // are not retried.
  absl::StatusOr<ClientCallResponse> CallStream(
      const std::string& app, const ClientCallRequest& request,
      const ClientCallStreamHandlers& handlers);

  // CallStream writing the body to `body`. Errors: also DATA_LOSS when
  // `body` fails (the stream is then cancelled).
  absl::StatusOr<ClientCallResponse> CallStream(
      const std::string& app, const ClientCallRequest& request,
      std::ostream& body);

  ClientStats stats() const;

 private:
  class WatchReactor;
  // A cache entry's key: what the request asked for (the app and user as
  // named, possibly empty; scopes sorted, without duplicates).
  struct Key {
    std::string app;
    std::vector<std::string> scopes;
    std::string user;
    bool operator<(const Key& other) const;
  };
  struct Entry {
    std::optional<AccessToken> token;
    std::shared_ptr<WatchReactor> watch;  // Null when no stream is open.
    absl::Time last_used;                 // By GetToken, on `clock`.
  };

  absl::Time Now() const;
  // An RPC that must end by now + options_.timeout, with retries.
  template <typename Response, typename Rpc>
  absl::StatusOr<Response> Unary(absl::string_view rpc_name, bool retry,
                                 std::atomic<int64_t>* attempts, Rpc rpc);
  // One CallStream RPC; sets `answer_begun` when its first message arrived.
  absl::StatusOr<ClientCallResponse> CallStreamAttempt(
      const anypoint::tokenbroker::v1::CallRequest& call,
      const ClientCallStreamHandlers& handlers, absl::Time deadline,
      bool* answer_begun);

  // From WatchReactor, on gRPC threads.
  // `user_id`: whose token the watch follows (empty: the app's own).
  void OnWatchToken(const Key& key, const std::string& user_id,
                    const anypoint::tokenbroker::v1::GetTokenResponse& token);
  void OnWatchDone(const Key& key, const WatchReactor* reactor,
                   const std::string& app, const grpc::Status& status);
  // Drops the entries unused for `idle_eviction` (when a sweep is due) and
  // returns their open streams, to be cancelled without the lock.
  std::vector<std::shared_ptr<WatchReactor>> EvictIdleLocked(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ClientConnection connection_;
  const ClientOptions options_;
  const std::unique_ptr<anypoint::tokenbroker::v1::TokenBroker::Stub> broker_;

  std::atomic<int64_t> get_token_rpcs_{0};
  std::atomic<int64_t> call_rpcs_{0};
  std::atomic<int64_t> call_stream_rpcs_{0};

  mutable absl::Mutex mu_;
  std::map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Streams that have ended, to be deleted on a user thread.
  std::vector<std::shared_ptr<WatchReactor>> finished_ ABSL_GUARDED_BY(mu_);
  // Streams detached from their entry (evicted, or ended) until their
  // OnWatchDone has run; then they move to `finished_`.
  std::vector<std::shared_ptr<WatchReactor>> ending_ ABSL_GUARDED_BY(mu_);
  absl::Time next_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  int active_watches_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cache_hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t watches_started_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t watch_updates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t watch_breaks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_CLIENT_LIB_CLIENT_H_
