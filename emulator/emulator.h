#ifndef TOKENBROKER_EMULATOR_EMULATOR_H_
#define TOKENBROKER_EMULATOR_EMULATOR_H_

// anypoint-emulator: a local stand-in for the Anypoint Platform endpoints the
// token broker uses (OAuth token/authorize/revoke/userinfo/discovery and a few
// resource APIs), with scope enforcement as the shared anypoint-api.md
// models it, fault injection and request counters. Tests run it in-process on
// 127.0.0.1 port 0; scripts run the `anypoint-emulator` binary. The HTTP
// surface (including the /_emulator/ test-control API) is described in
// emulator/README.md.
//
// Errors: every fallible function returns absl::Status / absl::StatusOr; no
// exception crosses this header (YAML and JSON exceptions are caught inside).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tokenbroker::emulator {

// One scope assigned to an app, with its context. An empty org or env matches
// any org or env (and an endpoint without an org/env context matches any
// grant).
struct ScopeGrant {
  std::string scope;
  std::string org;
  std::string env;
};

// "Who can use this application" of a user app (Access Management).
enum class Audience {
  kAllUsers,    // any Anypoint user may sign in and consent
  kOrgMembers,  // only members of the app's org_id
};

inline constexpr int64_t kDefaultRefreshTokenLifetimeSeconds = 90 * 86400;

// A connected app. grant_types: "client_credentials", "authorization_code",
// "refresh_token". For user apps, `scopes` bounds what authorize may request,
// `redirect_uris` are compared to the authorize request's exactly, and
// `audience` says who may consent.
struct AppFixture {
  std::string client_id, client_secret, name, org_id;
  std::vector<std::string> grant_types;
  std::vector<ScopeGrant> scopes;
  std::vector<std::string> redirect_uris;
  Audience audience = Audience::kAllUsers;
  // Unset: Fixture::rotate_refresh_tokens.
  std::optional<bool> rotate_refresh_tokens;
  // Measured from each refresh token's issue.
  int64_t refresh_token_lifetime_seconds = kDefaultRefreshTokenLifetimeSeconds;
};

// A user who can sign in on the authorize page. An empty password: the user
// cannot sign in. org_ids: the organizations the user is a member of (always
// including org_id, the user's own).
struct UserFixture {
  std::string id, username, org_id;
  std::string password;
  std::vector<std::string> org_ids;
};

struct EnvironmentFixture {
  std::string id, name;
  bool is_production = false;
  std::string type;  // "production", "sandbox", "design"
};

struct OrgFixture {
  std::string id, name;
  std::vector<EnvironmentFixture> environments;
};

// GET /designcenter/api-designer/projects answers the projects of the
// X-ORGANIZATION-ID org.
struct DesignCenterProjectFixture {
  std::string id, name, org_id, owner_id;
};

// GET /exchange/api/v2/assets/search searches these (name/asset_id substring).
struct ExchangeAssetFixture {
  std::string group_id, asset_id, version, name, org_id;
};

// GET /cloudhub/api/applications answers the apps of the X-ANYPNT-ENV-ID env.
struct CloudHubAppFixture {
  std::string domain, status, org_id, env_id;
};

// Everything the emulator serves. See emulator/fixtures/demo.yaml.
struct Fixture {
  int token_lifetime_seconds = 3600;
  // The default of AppFixture::rotate_refresh_tokens. When true, a
  // refresh_token grant returns a new refresh token; the old one stays usable
  // until the new one is first presented (see README.md, "Refresh tokens");
  // when false, the answer has no refresh_token and the old one stays valid.
  bool rotate_refresh_tokens = true;
  std::vector<OrgFixture> organizations;
  std::vector<AppFixture> apps;
  std::vector<UserFixture> users;
  std::vector<DesignCenterProjectFixture> design_center_projects;
  std::vector<ExchangeAssetFixture> exchange_assets;
  std::vector<CloudHubAppFixture> cloudhub_applications;
};

// Parses and validates a YAML fixture. Unknown keys, missing required fields,
// duplicate ids and dangling references are kInvalidArgument errors whose
// message starts with `name_for_errors` and the line number.
absl::StatusOr<Fixture> ParseFixture(absl::string_view yaml,
                                     absl::string_view name_for_errors);
// Reads `path` and calls ParseFixture. kNotFound if it cannot be read.
absl::StatusOr<Fixture> LoadFixtureFile(const std::string& path);

enum class FaultKind {
  kLatency,       // wait latency_ms, then answer normally; if the client
                  // closes the connection meanwhile, stop waiting, answer
                  // nothing and count it in Counters::aborted_by_client
  kStatus500,     // 500 JSON {"message":...}
  kRateLimit503,  // 503, empty body, X-RateLimit-Reset = now +
                  // retry_after_seconds (epoch seconds)
  kTooMany429,    // 429 with Retry-After: retry_after_seconds
  kReset,  // TCP connection shut down before any byte of a response is sent
           // (client sees EOF: httplib Error::Read, curl "Empty reply from
           // server" / CURLE_GOT_NOTHING)
  kMalformedJson,  // 200, Content-Type application/json, body not JSON
  kPlainText401,   // 401 text/plain
  kInvalidClient,  // 401 JSON {"error":"invalid_client",...}
};

// "latency", "status_500", "rate_limit_503", "too_many_429", "reset",
// "malformed_json", "plain_text_401", "invalid_client".
std::string FaultKindName(FaultKind kind);
// Inverse of FaultKindName; kInvalidArgument for anything else.
absl::StatusOr<FaultKind> ParseFaultKind(absl::string_view name);

struct Fault {
  // "token", "revoke", "userinfo", "authorize" (also the sign-in and consent
  // POSTs), "discovery", "resource" (any
  // resource endpoint, including /_emulator/authed-echo), "echo"
  // (/_emulator/echo) or "*" (all of them; never the control API).
  std::string endpoint = "token";
  FaultKind kind = FaultKind::kStatus500;
  int count = -1;      // how many requests it applies to; -1 until cleared
  int latency_ms = 0;  // kLatency: delay then answer normally
  int retry_after_seconds = 1;
};

struct Counters {
  // Every POST to the token endpoint, keyed by client_id ("" if none), faulted
  // or not.
  std::map<std::string, int64_t> token_requests_by_client;
  // Keys: token, authorize, authorize_login, authorize_consent, revoke,
  // userinfo, discovery, me, environments, designcenter_projects,
  // exchange_assets, cloudhub_applications, echo, authed_echo, not_found.
  // The control API is not counted.
  std::map<std::string, int64_t> requests_by_endpoint;
  // Requests whose client closed the connection while a latency fault held
  // the answer back, keyed like requests_by_endpoint: proof that a client
  // (the broker) abandoned its upstream transfer rather than read the answer.
  std::map<std::string, int64_t> aborted_by_client;
  // TCP connections accepted (counted exactly: one per accepted socket).
  int64_t connections = 0;
  int64_t tokens_issued = 0;  // access and refresh tokens
  // Every POST to the token endpoint by grant_type: "authorization_code",
  // "refresh_token", "client_credentials", or "other" (missing or another).
  std::map<std::string, int64_t> token_requests_by_grant_type;
  // Sign-in pages served by GET authorize (valid requests only).
  int64_t authorize_page_views = 0;
  int64_t logins_ok = 0;
  int64_t logins_failed = 0;
  int64_t consents_approved = 0;
  int64_t consents_denied = 0;
  // Refresh tokens presented after their successor was used: each one
  // revoked its whole grant.
  int64_t refresh_token_reuse_detected = 0;
};

// One live grant (authorization): what a user consented to for an app, with
// every access and refresh token issued from it. Never holds a token value.
struct GrantInfo {
  std::string grant_id;  // an opaque handle for RevokeGrant, not a token
  std::string user_id, username, client_id;
  std::vector<std::string> scopes;  // as consented
  // Refresh tokens that would be accepted now: not revoked, not expired and
  // whose successor (if any) was never presented.
  int live_refresh_tokens = 0;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port
  // One JSON line per request on stderr (never tokens, secrets or queries).
  bool log_requests = false;
  // The issuer of discovery and of the authorization response's `iss`
  // (RFC 9207). Empty: base_url() + "/accounts/api/v2/oauth2".
  std::string issuer;
};

// The emulator. All methods are thread-safe; the test-control methods take
// effect for requests that arrive after they return.
class Emulator final {
 public:
  explicit Emulator(Fixture fixture);
  ~Emulator();  // stops

  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  // Binds (port 0 = ephemeral) and serves on background threads; returns when
  // listening. kUnavailable if the address cannot be bound,
  // kFailedPrecondition if already started.
  absl::Status Start(const Options& options);
  // Stops serving and joins the threads. Idempotent.
  void Stop();
  int port() const;              // 0 before Start
  std::string base_url() const;  // "http://127.0.0.1:PORT"

  // Replaces the app's scopes; tokens issued before then get 401.
  // kNotFound for an unknown client_id.
  absl::Status SetAppScopes(const std::string& client_id,
                            std::vector<ScopeGrant> scopes);
  // All tokens (access and refresh) of the app issued so far get 401 /
  // invalid_grant; the app can still get new tokens. kNotFound if unknown.
  absl::Status RevokeApp(const std::string& client_id);
  // Secret rotation: the old secret stops working at once; tokens issued
  // before stay valid. kNotFound if unknown, kInvalidArgument if empty.
  absl::Status SetClientSecret(const std::string& client_id,
                               const std::string& secret);
  // Registers one more redirect URI of the app (Access Management's "add
  // redirect URI"), for tests whose client listens on a port picked at
  // start. kNotFound if unknown, kInvalidArgument for an empty URI or one
  // with a fragment.
  absl::Status AddRedirectUri(const std::string& client_id,
                              const std::string& uri);
  // Lifetime (expires_in) of access tokens issued from now on.
  void SetTokenLifetime(int seconds);
  // Whether refresh_token grants of the app rotate the refresh token.
  // kNotFound for an unknown client_id.
  absl::Status SetRotateRefreshTokens(const std::string& client_id,
                                      bool rotate);
  // Refresh token lifetime of the app, measured from each refresh token's
  // issue; applies to refresh tokens already issued too. kNotFound if the app
  // is unknown, kInvalidArgument if seconds < 1.
  absl::Status SetRefreshTokenLifetime(const std::string& client_id,
                                       int64_t seconds);
  // "The user changed their password": sets it and revokes every grant of
  // the user (all their access and refresh tokens) and every code and
  // sign-in not yet redeemed. `user` is a user id or username. kNotFound if
  // unknown, kInvalidArgument if the password is empty.
  absl::Status SetUserPassword(const std::string& user,
                               const std::string& password);
  // Revokes one grant: every access and refresh token issued from it.
  // kNotFound if no live grant has that id.
  absl::Status RevokeGrant(const std::string& grant_id);
  // The live (not revoked) grants, oldest first.
  std::vector<GrantInfo> ListGrants() const;
  // Moves the emulator's clock forward (token, code, sign-in and refresh
  // token expiry; not the fault headers): how tests let time pass without
  // sleeping. kInvalidArgument if negative.
  absl::Status AdvanceTime(absl::Duration by);
  void AddFault(Fault fault);
  void ClearFaults();
  Counters GetCounters() const;
  void ResetCounters();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokenbroker::emulator

#endif  // TOKENBROKER_EMULATOR_EMULATOR_H_
