#ifndef TOKENBROKER_SERVICE_CONFIG_CONFIG_H_
#define TOKENBROKER_SERVICE_CONFIG_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tokenbroker {

// Where a credential comes from. Exactly one of `file`, `env` or `value` is
// set. `value` (inline in the config file) is refused for secrets unless
// `development.allow_inline_secrets` is true.
struct SecretRef {
  std::string file;   // Path of a file holding the value (trailing newline
                      // stripped). Re-read on every fetch so that a rotated
                      // Kubernetes Secret is picked up.
  std::string env;    // Name of an environment variable.
  std::string value;  // The value itself (development only for secrets).
};

inline bool operator==(const SecretRef& a, const SecretRef& b) {
  return a.file == b.file && a.env == b.env && a.value == b.value;
}

// Reads the current value of `ref`. Errors name the file or variable, never
// the value.
absl::StatusOr<std::string> ResolveSecret(const SecretRef& ref);

enum class GrantType { kClientCredentials, kAuthorizationCode };
enum class ClientAuthMethod { kClientSecretPost, kClientSecretBasic };

struct AppConfig {
  std::string name;           // Unique; [A-Za-z0-9._-]{1,64}.
  std::string control_plane;  // "us", "eu", "gov", or "custom" for base_url.
  std::string base_url;       // Resolved from control_plane or given; no
                              // trailing slash.
  GrantType grant_type = GrantType::kClientCredentials;
  SecretRef client_id;
  SecretRef client_secret;
  std::vector<std::string> scopes;  // Sorted, de-duplicated.
  std::string org_id;
  std::vector<std::string> environment_ids;
  std::string token_path = "/accounts/api/v2/oauth2/token";
  std::string revoke_path = "/accounts/api/v2/oauth2/revoke";
  std::string authorize_path = "/accounts/api/v2/oauth2/authorize";
  // Whether the requested scopes are sent as `scope` on the token request
  // (off for Anypoint client-credentials apps).
  bool send_scope = false;
  ClientAuthMethod client_auth = ClientAuthMethod::kClientSecretPost;
  // Lower-case hex SHA-256 of the client id as it resolved when the config
  // was loaded (FingerprintClientIds), so that a reload sees a {file:} or
  // {env:} client id that now names another connected app. nullopt: not
  // taken; empty: the client id could not be resolved then.
  std::optional<std::string> client_id_sha256;

  // Apps acting on behalf of users (grant_type authorization_code) only.
  // Where the authorization server sends the browser back: the broker's
  // /oauth/callback as browsers reach it (registered at the server, compared
  // exactly). Empty: oauth.public_url + "/oauth/callback" (RedirectUri()).
  std::string redirect_uri;
  // PKCE S256 (RFC 7636) on the authorize and code requests; off only for
  // servers that refuse it.
  bool pkce = true;
  // Extra authorize request parameters, e.g. {prompt: consent} for OpenID
  // servers that drop offline_access without it. Sorted by name.
  std::vector<std::pair<std::string, std::string>> authorize_params;
  // The authorization server's issuer identifier: an `iss` in the
  // authorization response (RFC 9207) must equal it. Empty: base_url +
  // "/accounts/api/v2/oauth2" (Anypoint's; IssuerOf()).
  std::string issuer;
  std::string userinfo_path = "/accounts/api/v2/oauth2/userinfo";
};

// The redirect URI of user app `app` given the broker's OAuth public URL
// (`public_url` may be derived from the listener at start): the app's own,
// else public_url + "/oauth/callback".
std::string RedirectUri(const AppConfig& app, absl::string_view public_url);

// The issuer an authorization response of `app` must name (RFC 9207).
std::string IssuerOf(const AppConfig& app);

// Whether two app configs would fetch tokens of the same connected app the
// same way (config reload keeps the tokens of apps that compare equal): the
// same settings and secret references and, when either was fingerprinted
// (LoadConfigFile does it), client ids that resolved to the same value both
// times. A client id that could not be resolved either time counts as a
// change. A rotated client secret does not: the tokens are the same app's.
// `before` is the running config's app, `after` the reloaded one.
bool SameApp(const AppConfig& before, const AppConfig& after);

struct Config;

// Resolves every app's client id (ResolveSecret) and records its SHA-256 in
// AppConfig::client_id_sha256: empty if it cannot be resolved, which is not
// an error here (fetches will report it). The id itself is not kept.
// LoadConfigFile() calls it; call it on a config built otherwise before
// comparing it with SameApp().
void FingerprintClientIds(Config* config);

struct CachePolicy {
  absl::Duration min_ttl = absl::Seconds(30);
  double refresh_fraction = 2.0 / 3.0;  // Of the lifetime, in (0, 1).
  double refresh_jitter = 0.1;          // +- fraction of the refresh point.
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Minutes(5);
  // Retry delay after the credentials were rejected (invalid_client).
  absl::Duration rejected_retry = absl::Minutes(5);
  absl::Duration idle_evict_after = absl::Hours(1);
  // Lifetime assumed when a token answer has no usable `expires_in`.
  absl::Duration default_lifetime = absl::Seconds(3600);
  // Token answers with a shorter `expires_in` are refused
  // (FAILED_PRECONDITION): such a token would be expired before use and
  // refetched in a loop. At most default_lifetime.
  absl::Duration min_lifetime = absl::Seconds(10);
  // Longer lifetimes are clamped to this.
  absl::Duration max_lifetime = absl::Hours(24);
  // Bound on one token fetch.
  absl::Duration fetch_timeout = absl::Seconds(10);
  // Callers that may wait on one key at a time (GetToken, Call); more get
  // RESOURCE_EXHAUSTED.
  int max_waiters_per_key = 1024;
};

struct UpstreamConfig {
  std::string ca_file;  // CA bundle; empty: the system's.
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration request_timeout = absl::Seconds(30);
  // Body limits of proxied Calls.
  int64_t max_request_bytes = 8 << 20;
  int64_t max_response_bytes = 32 << 20;
};

// TLS of the gRPC listener. With `client_ca_file`, callers must present a
// certificate signed by that CA (mTLS); without it, callers authenticate
// with bearer keys over server-side TLS.
struct TlsConfig {
  std::string cert_file;       // PEM certificate chain of the broker.
  std::string key_file;        // PEM private key of the broker.
  std::string client_ca_file;  // PEM CA bundle that signs caller certs.
  bool enabled() const { return !cert_file.empty(); }
};

struct ListenConfig {
  std::string grpc = "127.0.0.1:50051";
  TlsConfig tls;
  // Plain-HTTP admin listener (/metrics, /healthz, /readyz): HOST:PORT or
  // [IPV6]:PORT; empty disables it. Serves no secret or token.
  std::string admin_http = "127.0.0.1:9090";
  // Plain-HTTP listener of the OAuth browser pages (/oauth/start,
  // /oauth/callback), to be exposed to browsers (e.g. through an Ingress)
  // apart from /metrics. HOST:PORT; empty: the pages are served on
  // admin_http.
  std::string oauth_http;
  // Plaintext gRPC listener that serves only the standard health service,
  // for the kubelet's native gRPC probes (they cannot speak mTLS): service
  // "liveness" stays SERVING while the broker drains; "readiness" (and "")
  // turns NOT_SERVING when shutdown begins. HOST:PORT; empty disables it.
  std::string probe_grpc;
};

struct DevelopmentConfig {
  bool allow_inline_secrets = false;
  // Serve plaintext gRPC; callers without credentials are the caller named
  // "anonymous" (which the policy must still grant). Logged as a warning.
  bool insecure_plaintext = false;
};

// One `Call` route a caller may use: "METHOD /path/pattern" where METHOD is
// an HTTP method or "*", and the pattern's segments are literals, "*" (one
// segment) or a final "**" (the rest of the path, possibly empty).
struct RouteRule {
  std::string method;                 // "GET", ..., or "*".
  std::vector<std::string> segments;  // The pattern split on '/'.
  std::string text;                   // As written, for messages.
};

// What one caller may do with one app.
struct AppGrant {
  std::string app;
  // Scopes it may ask for; "*" (all_scopes) means every scope of the app.
  std::vector<std::string> scopes;  // Sorted.
  bool all_scopes = false;
  // Whether GetToken/WatchToken are allowed (false: Call only, so the token
  // never leaves the broker).
  bool get_token = true;
  std::vector<RouteRule> routes;  // Call routes; none: no Call.
  // User apps: the users (usernames or user ids) whose tokens the caller may
  // use; "*" (all_users) means every connected user. None: no user.
  std::vector<std::string> users;  // Sorted.
  bool all_users = false;
};

// A caller of the broker and its grants. Deny by default: what is not
// granted here is refused.
struct CallerConfig {
  std::string name;  // Unique; used in audit records.
  // mTLS identities, from the config's `identities` list, in two separate
  // namespaces so that one can never be taken for the other:
  // SPIFFE ids (the entries starting with "spiffe:"; each must pass
  // CheckSpiffeId), matched only against a certificate's single URI SAN;
  std::vector<std::string> spiffe_ids;
  // and subject CNs (every other entry), matched only against the CN of a
  // certificate that has no URI SAN at all.
  std::vector<std::string> common_names;
  // Lower-case hex SHA-256 of each bearer key the caller may present.
  std::vector<std::string> bearer_key_sha256;
  bool admin = false;  // May use BrokerAdmin.
  std::vector<AppGrant> grants;

  // The grant for `app`, or nullptr.
  const AppGrant* FindGrant(absl::string_view app) const;
};

// Bounds on what callers may hold open at once; over one, the RPC is refused
// with RESOURCE_EXHAUSTED naming the limit.
struct LimitsConfig {
  int max_calls_in_flight = 512;    // Call and CallStream, all callers.
  int max_calls_per_caller = 128;   // Call and CallStream, one caller.
  int max_watches_per_caller = 64;  // Open WatchToken streams, one caller.
  // Body bytes queued for slow CallStream readers, all streams together.
  int64_t max_stream_buffer_bytes = int64_t{256} << 20;
  // A WatchToken or CallStream stream is ended (UNAVAILABLE, reopen it) at
  // this age, so that no authorization lives forever.
  absl::Duration max_stream_lifetime = absl::Hours(1);
};

struct AuditConfig {
  // Where audit records go: a file path (appended), "-" for stdout, or empty
  // for none (a warning is logged at start).
  std::string path;
  // Refuse requests when the audit record cannot be written.
  bool fail_closed = false;
};

// The browser flow of user apps (service/http/oauth_flow.h).
struct OAuthFlowConfig {
  // Base URL at which browsers reach the OAuth pages, e.g.
  // "https://tokenbroker.example.com" (no trailing slash). Empty: derived
  // at start from the bound listener, "http://127.0.0.1:PORT", allowed only
  // when that listener is on a loopback address (development).
  std::string public_url;
  // How long a started sign-in may take until its callback (the `state`).
  absl::Duration state_ttl = absl::Minutes(10);
  // How long a link minted by CreateConnectLink stays valid.
  absl::Duration start_link_ttl = absl::Minutes(10);
  // Links and sign-ins in progress at once; more are refused.
  int max_pending = 1000;
  // Bound on the code exchange and the userinfo request.
  absl::Duration request_timeout = absl::Seconds(10);
};

// One key of the grant store's key ring.
struct StoreKeyConfig {
  std::string id;    // [A-Za-z0-9._-]{1,32}, unique.
  std::string file;  // 32 random bytes as 64 hex digits or base64.
};

// Where the refresh-token grants of user apps are kept (service/store).
struct GrantStoreConfig {
  std::string directory;  // Created 0700 if missing.
  // The first key encrypts new records; all decrypt (rotation).
  std::vector<StoreKeyConfig> keys;
  bool enabled() const { return !directory.empty(); }
};

// Shared state on Redis (service/shared): tokens, leases, revocations and
// user grants shared by every replica. Disabled (each replica alone) unless
// an address or Sentinels are set.
struct SharedStateConfig {
  std::string address;                 // "host:port" or "unix:/path".
  std::vector<std::string> sentinels;  // "host:port" each; or address.
  std::string sentinel_master;         // Required with sentinels.
  std::string username;                // Redis ACL user; may be empty.
  std::string password_file;           // May be empty (no AUTH).
  std::string key_prefix = "tokenbroker:";
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration command_timeout = absl::Milliseconds(500);
  // How long a replica may hold a key's fetch lease without renewing it:
  // longer than an upstream request (upstream.request_timeout).
  absl::Duration lease_ttl = absl::Seconds(10);
  // How often a replica re-reads revocation generations (catch-up).
  absl::Duration sync_interval = absl::Seconds(1);
  // AES-256 keys sealing every value; the first seals, every one opens.
  std::vector<StoreKeyConfig> keys;
  bool enabled() const { return !address.empty() || !sentinels.empty(); }
};

struct Config {
  std::string path;  // The file it was read from (for messages).
  ListenConfig listen;
  std::string log_level = "info";
  UpstreamConfig upstream;
  CachePolicy cache;
  DevelopmentConfig development;
  std::vector<AppConfig> apps;  // Sorted by name.
  std::vector<CallerConfig> callers;
  AuditConfig audit;
  LimitsConfig limits;
  OAuthFlowConfig oauth;
  GrantStoreConfig grant_store;
  SharedStateConfig shared_state;

  // Whether any app acts on behalf of users.
  bool HasUserApps() const;

  // Returns the app named `name`, or nullptr.
  const AppConfig* FindApp(absl::string_view name) const;
};

// Checks `id` against the SPIFFE ID specification (SPIFFE-ID.md, 2.1-2.3)
// for the id of a workload: "spiffe://", a trust domain of [a-z0-9._-]
// (at most 255 characters), then a non-empty path of '/'-separated segments
// of [a-zA-Z0-9._-] that are neither empty, "." nor ".."; at most 2048 bytes
// in all. Hence no upper-case scheme or trust domain, port, user info,
// query, fragment, percent-encoding or trailing '/'. Returns what is wrong
// (without quoting `id`), or an empty string if `id` is valid.
std::string CheckSpiffeId(absl::string_view id);
inline bool IsValidSpiffeId(absl::string_view id) {
  return CheckSpiffeId(id).empty();
}

// Parses and validates YAML text. `path` is used in error messages only.
// Errors are INVALID_ARGUMENT with messages of the form
//   "<path>:<line>: <key.path>: <what is wrong>"
// Unknown keys are rejected. Secrets are not resolved here.
absl::StatusOr<Config> ParseConfig(absl::string_view yaml_text,
                                   absl::string_view path);

// Reads and parses the file at `path`, then records the fingerprints of
// the client ids (FingerprintClientIds; client secrets are not read).
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Base URL of a named control plane ("us", "eu", "gov"), or empty.
std::string ControlPlaneBaseUrl(absl::string_view name);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CONFIG_CONFIG_H_
