#ifndef TOKENBROKER_EMULATOR_EMULATOR_IMPL_H_
#define TOKENBROKER_EMULATOR_EMULATOR_IMPL_H_

// Emulator::Impl: the emulator's shared state and its request handlers
// (library-internal, not part of emulator.h). The methods are defined by
// topic, one file each:
//   emulator.cc        Start/Stop (the httplib server and its threads)
//   routes.cc          the route table; counting, fault and logging wrapper
//   faults.cc          fault matching and the injected answers
//   oauth.cc           token, revoke, userinfo, discovery; client and bearer
//                      authentication; token issue
//   oauth_authorize.cc authorize, sign-in and consent (the browser side of
//                      the authorization code flow)
//   pages.h/.cc        the HTML of those pages
//   resources.cc       me, environments, design center, exchange, cloudhub,
//                      echo; scope checks
//   control_api.cc     the test-control methods and /_emulator/ API
//
// Locks: mu_ guards all mutable state and is held only for short sections,
// never across a wait or I/O; life_mu_ serializes Start/Stop and is never
// taken by a request handler (Stop joins them); log_mu_ serializes stderr.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/http_helpers.h"
#include "httplib.h"

namespace tokenbroker::emulator {

namespace internal {
// The largest request body the server accepts and the largest ?bytes= answer
// of the echo endpoints.
inline constexpr size_t kMaxEchoBytes = 64 << 20;
}  // namespace internal

class Emulator::Impl {
 public:
  explicit Impl(Fixture fixture) : fixture_(std::move(fixture)) {
    absl::MutexLock lock(&mu_);
    for (const AppFixture& app : fixture_.apps) {
      apps_[app.client_id] = AppState{
          app, 0,
          app.rotate_refresh_tokens.value_or(fixture_.rotate_refresh_tokens)};
    }
    for (const UserFixture& user : fixture_.users) {
      users_[user.id] = UserState{user.password, 0};
    }
    token_lifetime_seconds_ = fixture_.token_lifetime_seconds;
  }

  ~Impl() { Stop(); }

  // emulator.cc
  absl::Status Start(const Options& options) ABSL_LOCKS_EXCLUDED(life_mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(life_mu_);
  int port() const { return port_.load(); }
  std::string base_url() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return base_url_;
  }

  // control_api.cc (the simple setters are inline here)
  absl::Status SetAppScopes(const std::string& client_id,
                            std::vector<ScopeGrant> scopes)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RevokeApp(const std::string& client_id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AddRedirectUri(const std::string& client_id,
                              const std::string& uri) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SetClientSecret(const std::string& client_id,
                               const std::string& secret)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SetTokenLifetime(int seconds) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    token_lifetime_seconds_ = std::max(1, seconds);
  }
  absl::Status SetRotateRefreshTokens(const std::string& client_id, bool rotate)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SetRefreshTokenLifetime(const std::string& client_id,
                                       int64_t seconds)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SetUserPassword(const std::string& user,
                               const std::string& password)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RevokeGrant(const std::string& grant_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<GrantInfo> ListGrants() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AdvanceTime(absl::Duration by) ABSL_LOCKS_EXCLUDED(mu_);
  void AddFault(Fault fault) ABSL_LOCKS_EXCLUDED(mu_) {
    if (fault.count == 0) return;
    absl::MutexLock lock(&mu_);
    faults_.push_back(std::move(fault));
  }
  void ClearFaults() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    faults_.clear();
  }
  Counters GetCounters() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return counters_;
  }
  void ResetCounters() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    counters_ = Counters();
  }

 private:
  struct AppState {
    AppFixture app;
    // Bumped by SetAppScopes and RevokeApp: tokens and codes carry the value
    // at issue time and are refused once it differs.
    int64_t generation = 0;
    bool rotate_refresh_tokens = true;
  };
  struct UserState {
    std::string password;
    // Bumped by a password change: codes and sign-ins carry the value at
    // sign-in and are refused once it differs.
    int64_t epoch = 0;
  };
  enum class TokenKind { kAccess, kRefresh };
  struct TokenRecord {
    TokenKind kind = TokenKind::kAccess;
    std::string client_id;
    std::string user_id;              // empty for client_credentials tokens
    std::vector<std::string> scopes;  // consented scopes (user tokens)
    std::string grant_id;             // empty for client_credentials tokens
    int64_t generation = 0;
    absl::Time issued;
    absl::Time expires;  // access tokens; refresh: issued + the app's lifetime
    bool revoked = false;
    // Refresh tokens: presented at the token endpoint at least once (which
    // retires its predecessor), and the refresh token issued from it.
    bool presented = false;
    std::string successor;
  };
  // One authorization of a user for an app: a code's redemption starts it;
  // every token issued from it (through refreshes) belongs to it.
  struct GrantRecord {
    std::string client_id, user_id;
    std::vector<std::string> scopes;
    absl::Time created;
    int64_t sequence = 0;  // creation order, for ListGrants
    bool revoked = false;
    std::vector<std::string> refresh_tokens;  // in issue order
  };
  struct CodeRecord {
    std::string client_id, user_id;
    // As sent to authorize (empty if omitted) and the one redirected to.
    std::string redirect_uri_sent, redirect_uri;
    std::vector<std::string> scopes;
    std::string code_challenge;  // S256; empty: no PKCE
    int64_t generation = 0;
    int64_t user_epoch = 0;
    absl::Time expires;
    bool used = false;
    std::string grant_id;  // set when redeemed
  };
  // A validated authorize request waiting for sign-in and consent, keyed by
  // its unguessable transaction id (the hidden `txn` of the pages).
  struct AuthorizeTxn {
    std::string client_id;
    std::string redirect_uri_sent, redirect_uri;
    std::string state;
    std::vector<std::string> scopes;
    std::string code_challenge;
    absl::Time expires;
    int failed_logins = 0;
    // Set by a successful sign-in; the consent page is then the only step.
    std::string user_id;
    int64_t user_epoch = 0;
  };
  // What a valid bearer token grants, copied out of the lock.
  struct Grant {
    std::string client_id, user_id, app_name, app_org;
    std::vector<ScopeGrant> scopes;
  };

  using Handler =
      std::function<void(const httplib::Request&, httplib::Response&)>;

  // routes.cc
  // Registers `handler` for `method` and `pattern`, wrapped with counting
  // (`counter`; empty: not counted), fault injection (`fault_endpoint`; empty:
  // none) and logging.
  void Route(httplib::Server& server, const std::string& method,
             const std::string& pattern, std::string counter,
             std::string fault_endpoint, Handler handler);
  void RegisterRoutes(httplib::Server& server);
  void LogRequest(const httplib::Request& req, const httplib::Response& res,
                  const std::string& endpoint, absl::Duration elapsed,
                  const std::optional<Fault>& fault) ABSL_LOCKS_EXCLUDED(mu_);

  // faults.cc
  // The first fault for `endpoint` (or "*"), counted down; nullopt if none.
  std::optional<Fault> TakeFault(const std::string& endpoint)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Returns true if the fault produced the whole response. `counter` names
  // the endpoint in Counters.
  bool ApplyFault(const Fault& fault, const std::string& counter,
                  const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);

  // oauth.cc
  void HandleToken(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleRevoke(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleUserinfo(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleDiscovery(const httplib::Request& req, httplib::Response& res);
  // Authenticates the client of a token or revoke request; on failure fills
  // `res` and returns nullopt.
  std::optional<AppState> AuthenticateClient(const httplib::Request& req,
                                             const internal::Params& params,
                                             httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Validates the bearer token; on failure answers 401 and returns nullopt.
  std::optional<Grant> Authenticate(const httplib::Request& req,
                                    httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::string IssueToken(TokenKind kind, const AppState& app,
                         const std::string& user_id,
                         const std::vector<std::string>& scopes,
                         absl::Duration lifetime,
                         const std::string& grant_id = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PurgeExpired(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The authorization_code and refresh_token grants of HandleToken: fill
  // `res` with an error, or set *user_id, *scopes, *grant_id and
  // *with_refresh for the tokens to issue.
  bool RedeemCode(const internal::Params& params, const AppState& app,
                  absl::Time now, httplib::Response& res, std::string* user_id,
                  std::vector<std::string>* scopes, std::string* grant_id,
                  bool* with_refresh) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RedeemRefreshToken(const internal::Params& params, const AppState& app,
                          absl::Time now, httplib::Response& res,
                          std::string* user_id,
                          std::vector<std::string>* scopes,
                          std::string* grant_id, std::string* predecessor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A refresh token's expiry: its issue plus its app's current lifetime.
  absl::Time RefreshExpiry(const TokenRecord& record) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a refresh token would be accepted at `now` (not counting its
  // app's generation).
  bool RefreshTokenLive(const TokenRecord& record, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool GrantRevoked(const std::string& grant_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The emulator's clock: the real time plus AdvanceTime's offset.
  absl::Time Now() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::Now() + time_offset_;
  }
  // The issuer (RFC 9207 `iss`, discovery's `issuer`).
  std::string Issuer() const ABSL_LOCKS_EXCLUDED(mu_);

  // oauth_authorize.cc
  void HandleAuthorize(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleLogin(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleConsent(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);

  // resources.cc
  void HandleMe(const httplib::Request& req, httplib::Response& res);
  void HandleEnvironments(const httplib::Request& req, httplib::Response& res);
  void HandleProjects(const httplib::Request& req, httplib::Response& res);
  void HandleExchange(const httplib::Request& req, httplib::Response& res);
  void HandleCloudHub(const httplib::Request& req, httplib::Response& res);
  void HandleEcho(const httplib::Request& req, httplib::Response& res,
                  bool authed);
  // True if `grant` holds one of `any_of` for the org/env context (empty =
  // none); otherwise answers 403 naming the missing scope.
  bool Authorize(const Grant& grant, const std::vector<std::string>& any_of,
                 const std::string& org, const std::string& env,
                 httplib::Response& res);
  const OrgFixture* FindOrg(const std::string& id) const;
  // The fixture user with this id (or, if `or_username`, this username);
  // nullptr if none. The fixture is immutable: no lock needed.
  const UserFixture* FindUser(const std::string& id,
                              bool or_username = false) const;
  static bool IsMember(const UserFixture& user, const std::string& org_id);

  // control_api.cc
  void HandleControl(const std::string& what, const httplib::Request& req,
                     httplib::Response& res);

  // Immutable after construction except `apps`, which lives in apps_.
  const Fixture fixture_;

  mutable absl::Mutex mu_;
  std::map<std::string, AppState> apps_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, UserState> users_ ABSL_GUARDED_BY(mu_);  // by id
  absl::flat_hash_map<std::string, TokenRecord> tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CodeRecord> codes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, AuthorizeTxn> txns_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, GrantRecord> grants_ ABSL_GUARDED_BY(mu_);
  int64_t grant_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration time_offset_ ABSL_GUARDED_BY(mu_);
  std::string issuer_ ABSL_GUARDED_BY(mu_);
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
  int token_lifetime_seconds_ ABSL_GUARDED_BY(mu_) = 3600;
  std::string base_url_ ABSL_GUARDED_BY(mu_);
  bool log_requests_ ABSL_GUARDED_BY(mu_) = false;

  // Start/Stop. Never taken by request handlers (Stop joins them).
  absl::Mutex life_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<httplib::Server> server_ ABSL_GUARDED_BY(life_mu_);
  std::thread thread_ ABSL_GUARDED_BY(life_mu_);
  std::atomic<int> port_{0};

  absl::Mutex log_mu_;  // serializes stderr lines
};

}  // namespace tokenbroker::emulator

#endif  // TOKENBROKER_EMULATOR_EMULATOR_IMPL_H_
