#ifndef TOKENBROKER_SERVICE_APP_BROKER_SERVER_H_
#define TOKENBROKER_SERVICE_APP_BROKER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/app/shared_state.h"
#include "service/auth/audit.h"
#include "service/cache/refresher.h"
#include "service/cache/token_cache.h"
#include "service/common/clock.h"
#include "service/common/timer_queue.h"
#include "service/config/config.h"
#include "service/config/config_store.h"
#include "service/grpc/active_rpcs.h"
#include "service/grpc/broker_admin_service.h"
#include "service/grpc/broker_control.h"
#include "service/grpc/grpc_server.h"
#include "service/grpc/token_broker_service.h"
#include "service/http/admin_server.h"
#include "service/http/oauth_flow.h"
#include "service/metrics/broker_metrics.h"
#include "service/metrics/instrumented.h"
#include "service/proxy/proxy.h"
#include "service/store/grant_store.h"
#include "service/upstream/curl_http_client.h"
#include "service/upstream/http_client.h"
#include "service/upstream/oauth_token_source.h"
#include "service/users/user_grants.h"

namespace tokenbroker {

// What a BrokerServer may be given instead of its real collaborators.
struct BrokerServerDeps {
  const Clock* clock = nullptr;  // nullptr: the system clock.
  HttpClient* http = nullptr;    // nullptr: a CurlHttpClient it owns.
  AuditSink* audit = nullptr;    // nullptr: per the config's audit section.
  // Starts the background refresher thread. Tests with a fake clock turn it
  // off and call cache().RunDue() themselves.
  bool start_refresher = true;
};

// The broker for one process (or one test): the application module. It
// creates and wires every component (the libcurl clients, token source,
// cache, refresher, proxy, audit sink, metrics and the gRPC services and
// server), starts them, applies config reloads (DiffConfigs()) and stops
// them in order. It is the only place that knows the concrete HTTP client;
// every other module gets interfaces, and every observer is passed at
// construction. The gRPC server (GrpcServer) serves TLS (mTLS with
// listen.tls.client_ca_file), or plaintext only with
// development.insecure_plaintext.
//
// Thread-safe. Shutdown() may be called from any thread, once or more.
class BrokerServer final : public BrokerControl {
 public:
  static absl::StatusOr<std::unique_ptr<BrokerServer>> Create(
      Config config, BrokerServerDeps deps = {});
  ~BrokerServer() override;

  // Starts the plain-HTTP listeners: listen.admin_http (/metrics, /healthz,
  // /readyz, and the OAuth pages of user apps unless listen.oauth_http is
  // set) and listen.oauth_http. An empty address disables a listener.
  // Errors: those of AdminHttpServer::Start.
  absl::Status StartHttp();
  // Bound ports after StartHttp() (0 if disabled).
  int admin_http_port() const;
  int oauth_http_port() const;

  // Binds `listen_address` (empty: the config's listen.grpc; port 0 picks a
  // free one) and starts serving. Errors: UNAVAILABLE if it cannot bind;
  // FAILED_PRECONDITION if TLS files cannot be read or neither TLS nor
  // development.insecure_plaintext is configured.
  absl::Status Start(const std::string& listen_address = "");

  // The bound port, after Start().
  int port() const { return grpc_->port(); }
  // The bound port of listen.probe_grpc, after Start() (0 if disabled).
  int probe_port() const { return grpc_->probe_port(); }

  // Reports NOT_SERVING on every health service, waits `drain_delay` so that
  // load balancers notice, then stops accepting RPCs and gives in-flight
  // ones until `grace` to finish before cancelling them.
  void Shutdown(absl::Duration drain_delay, absl::Duration grace);

  // Blocks until the server has shut down.
  void Wait();

  // BrokerControl.
  void Revoke(const std::string& app,
              absl::AnyInvocable<void(absl::StatusOr<int>)> done) override;
  void RevokeUser(const std::string& app, const std::string& user_id,
                  absl::AnyInvocable<void(absl::StatusOr<int>)> done) override;
  void CreateConnectLink(
      const std::string& app, const std::string& minted_by,
      absl::AnyInvocable<void(absl::StatusOr<ConnectLink>)> done) override;
  // Reloads the config file here, and with shared state asks every other
  // replica to reload theirs (the ReloadConfig RPC).
  absl::StatusOr<ReloadSummary> Reload() override;

  // Reloads the config file here only (SIGHUP, the file watcher, another
  // replica's reload).
  absl::StatusOr<ReloadSummary> ReloadFromFile();

  // Whether Shutdown() has begun (readiness is false from then on).
  bool draining() const { return grpc_->draining(); }

  // Waits until every audit record so far is in the audit log.
  void FlushAudit() { audit_->Flush(); }

  TokenCache& cache() { return *cache_; }
  // The user grants; nullptr without grant_store or shared state.
  UserGrants* user_grants() { return user_grants_.get(); }
  // The shared state on Redis; nullptr without shared_state.redis.
  SharedState* shared_state() { return shared_.get(); }
  BrokerMetrics& metrics() { return *metrics_; }
  const ConfigStore& config() const { return *config_; }

 private:
  BrokerServer() = default;
  void OnFetch(const TokenRequest& request, const absl::Status& status);
  // Opens the grant store of `config` and loads its grants; problems with
  // single records are logged, not fatal.
  absl::Status OpenGrantStore(const GrantStoreConfig& config);
  // The same for the grants in Redis (shared state with user apps).
  absl::Status OpenSharedGrantStore();
  // Indexes the opened `grant_store_` and loads it, logging problems.
  void LoadGrants(const std::string& where);
  // What a replica does for the revocations and reloads of the others.
  SharedEventHandlers SharedHandlers();
  // Drops the app's tokens here and revokes them at the server.
  void RevokeHere(const std::string& app,
                  absl::AnyInvocable<void(absl::StatusOr<int>)> done);
  void RevokeUserNow(const std::string& app, const std::string& user_id,
                     absl::AnyInvocable<void(absl::StatusOr<int>)> done);
  // Revokes tokens another replica's revocation dropped here.
  void RevokeDropped(const std::string& app, std::vector<TokenPtr> tokens);
  // Revokes `tokens` of `app` at the server; `done` gets `count` or
  // UNAVAILABLE naming what the server did not confirm.
  struct Revocation {
    std::string token;  // Cleared once handed to the token source.
    std::string hint;   // RFC 7009 token_type_hint, or empty.
    std::string what;   // Names it in messages (a fingerprint).
  };
  void RevokeAtServer(const std::string& app,
                      std::vector<Revocation> revocations, int count,
                      absl::AnyInvocable<void(absl::StatusOr<int>)> done);

  std::unique_ptr<Clock> owned_clock_;
  const Clock* clock_ = nullptr;
  // Declared early: the decorators below record into it until the HTTP
  // clients and audit sink are gone.
  std::unique_ptr<BrokerMetrics> metrics_;
  std::unique_ptr<CountingAuditSink> counting_audit_;
  // Token fetches and proxied Calls have separate clients (connections,
  // event loops), so that Calls cannot starve token fetches.
  std::unique_ptr<CurlHttpClient> owned_token_http_;
  std::unique_ptr<CurlHttpClient> owned_call_http_;
  std::unique_ptr<InstrumentedHttpClient> token_http_;
  std::unique_ptr<InstrumentedHttpClient> call_http_;
  std::unique_ptr<ConfigStore> config_;
  std::unique_ptr<AuditSink> owned_audit_;
  AuditSink* audit_ = nullptr;
  // Redis shared by the replicas (null without shared_state.redis); before
  // the grant store in Redis, which uses its client.
  std::unique_ptr<SharedState> shared_;
  // The user grants of user apps (null without a grant store); before the
  // token source, which reads them. ~BrokerServer drains their writes while
  // the cache they complete is alive.
  std::unique_ptr<GrantStore> grant_store_;
  std::unique_ptr<UserGrants> user_grants_;
  int grant_store_problems_ = 0;  // Unreadable records at start.
  std::unique_ptr<OAuthTokenSource> source_;
  // With a shared grant store: re-reads a grant before its refresh.
  std::unique_ptr<GrantSyncingSource> grant_syncing_;
  std::unique_ptr<Refresher> refresher_;  // Null when deps turned it off.
  std::unique_ptr<TokenCache> cache_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<ActiveRpcs> active_;
  std::unique_ptr<TokenBrokerService> token_service_;
  std::unique_ptr<BrokerAdminService> admin_service_;
  std::unique_ptr<GrpcServer> grpc_;
  // The browser flow of user apps (null without a grant store) and the HTTP
  // listeners; the listeners stop before the flow goes.
  std::unique_ptr<OAuthFlow> oauth_flow_;
  std::unique_ptr<AdminHttpServer> admin_http_;
  std::unique_ptr<AdminHttpServer> oauth_http_;

  absl::Mutex reload_mu_;  // Serializes reloads.
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_APP_BROKER_SERVER_H_
