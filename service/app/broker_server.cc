#include "service/app/broker_server.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/app/config_diff.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"
#include "service/http/redis_pending_flows.h"
#include "service/store/file_grant_store.h"
#include "service/store/redis_grant_store.h"
#include "service/store/sealed_box.h"
#include "service/upstream/curl_http_client.h"

namespace tokenbroker {
namespace {

SharedTokenPolicy SharedPolicyFrom(const Config& config) {
  SharedTokenPolicy policy;
  policy.refresh_fraction = config.cache.refresh_fraction;
  policy.lease_ttl = config.shared_state.lease_ttl;
  policy.failed_retry_after = config.cache.backoff_base;
  return policy;
}

ProxyOptions ProxyOptionsFrom(const Config& config) {
  ProxyOptions options;
  options.max_response_body_bytes = config.upstream.max_response_bytes;
  options.request_timeout = config.upstream.request_timeout;
  options.min_ttl = config.cache.min_ttl;
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Create(
    Config config, BrokerServerDeps deps) {
  std::unique_ptr<BrokerServer> server(new BrokerServer());
  BrokerServer* self = server.get();
  if (deps.clock == nullptr) {
    server->owned_clock_ = std::make_unique<SystemClock>();
    deps.clock = server->owned_clock_.get();
  }
  server->clock_ = deps.clock;
  server->metrics_ = std::make_unique<BrokerMetrics>();
  HttpClient* token_http = deps.http;
  HttpClient* call_http = deps.http;
  if (deps.http == nullptr) {
    // Token fetches and proxied Calls each get their own client (event loop,
    // multi handle and connections), so that Calls to a slow endpoint can
    // never make a token fetch queue behind them.
    CurlHttpClientOptions http_options;
    http_options.ca_file = config.upstream.ca_file;
    http_options.connect_timeout = config.upstream.connect_timeout;
    for (auto* owned :
         {&server->owned_token_http_, &server->owned_call_http_}) {
      absl::StatusOr<std::unique_ptr<CurlHttpClient>> http =
          CurlHttpClient::Create(http_options);
      if (!http.ok()) return http.status();
      *owned = *std::move(http);
    }
    CurlHttpClient* token_curl = server->owned_token_http_.get();
    CurlHttpClient* call_curl = server->owned_call_http_.get();
    server->metrics_->SetUpstreamSource([token_curl, call_curl] {
      CurlHttpClientStats a = token_curl->stats();
      CurlHttpClientStats b = call_curl->stats();
      a.requests_started += b.requests_started;
      a.requests_completed += b.requests_completed;
      a.connections_opened += b.connections_opened;
      a.connections_reused += b.connections_reused;
      return a;
    });
    token_http = token_curl;
    call_http = call_curl;
  }
  server->token_http_ = std::make_unique<InstrumentedHttpClient>(
      *token_http, *server->metrics_,
      [](const HttpRequest&) { return std::string("token"); });
  server->call_http_ = std::make_unique<InstrumentedHttpClient>(
      *call_http, *server->metrics_,
      [](const HttpRequest&) { return std::string("call"); });

  OAuthTokenSourceOptions source_options;
  source_options.default_lifetime = config.cache.default_lifetime;
  source_options.min_lifetime = config.cache.min_lifetime;
  source_options.max_lifetime = config.cache.max_lifetime;
  source_options.fetch_timeout = config.cache.fetch_timeout;
  if (deps.audit == nullptr) {
    if (config.audit.path.empty()) {
      LogWarning("audit.path is not set: requests are not audited");
      server->owned_audit_ = std::make_unique<NullAuditSink>();
    } else {
      absl::StatusOr<std::unique_ptr<FileAuditSink>> audit =
          FileAuditSink::Open(config.audit.path,
                              /*synchronous=*/config.audit.fail_closed);
      if (!audit.ok()) return audit.status();
      server->owned_audit_ = *std::move(audit);
    }
    deps.audit = server->owned_audit_.get();
  }
  server->counting_audit_ =
      std::make_unique<CountingAuditSink>(*deps.audit, *server->metrics_);
  server->audit_ = server->counting_audit_.get();

  if (config.shared_state.enabled()) {
    TB_ASSIGN_OR_RETURN(server->shared_,
                        SharedState::Open(config.shared_state));
    // Also without user apps yet: a reload may add one, as with a
    // configured grant_store.
    TB_RETURN_IF_ERROR(server->OpenSharedGrantStore());
  } else if (config.grant_store.enabled()) {
    TB_RETURN_IF_ERROR(server->OpenGrantStore(config.grant_store));
  }
  server->source_ = std::make_unique<OAuthTokenSource>(
      *server->token_http_, *server->clock_, source_options,
      server->user_grants_.get());
  server->source_->SetApps(config.apps);
  // What the cache fetches from: the upstream source, with shared state
  // behind the replicas' leases and records (and, for a grant store in
  // Redis, a re-read of the grant before each refresh).
  TokenSource* cache_source = server->source_.get();
  if (server->shared_ != nullptr) {
    if (server->user_grants_ != nullptr) {
      server->grant_syncing_ = std::make_unique<GrantSyncingSource>(
          *server->source_, *server->user_grants_);
      cache_source = server->grant_syncing_.get();
    }
    cache_source = &server->shared_->ShareFetches(
        *cache_source, *server->clock_, SharedPolicyFrom(config));
  }
  if (deps.start_refresher) {
    server->refresher_ = std::make_unique<Refresher>(*server->clock_);
  }
  // Every observer is in place before the cache exists: nothing is assigned
  // once RPC threads can read it.
  TokenCacheHooks hooks;
  hooks.on_fetch = [self](const TokenRequest& request,
                          const absl::Status& status) {
    self->OnFetch(request, status);
  };
  if (Refresher* refresher = server->refresher_.get()) {
    hooks.on_schedule = [refresher] { refresher->Kick(); };
  }
  server->cache_ = std::make_unique<TokenCache>(
      *cache_source, *server->clock_, config.cache, nullptr, std::move(hooks));
  server->metrics_->SetCacheSource(server->cache_.get(), server->clock_);
  server->metrics_->ConfigLoaded(true, server->clock_->Now());
  LimitsConfig limits = config.limits;
  server->config_ = std::make_unique<ConfigStore>(
      std::make_shared<const Config>(std::move(config)));
  server->timers_ = std::make_unique<TimerQueue>();
  server->proxy_ = std::make_unique<Proxy>(
      *server->cache_, *server->call_http_, *server->timers_, *server->clock_,
      ProxyOptionsFrom(*server->config_->Get()));
  server->active_ = std::make_unique<ActiveRpcs>(*server->timers_, limits);
  server->metrics_->SetRpcSource([self] {
    ActiveRpcStats stats = self->active_->stats();
    stats.tokens_scrubbed = self->proxy_->tokens_scrubbed();
    return stats;
  });
  if (server->user_grants_ != nullptr) {
    server->metrics_->SetUserGrantSource([self] {
      UserGrantStats stats;
      for (const UserGrantSummary& grant : self->user_grants_->List()) {
        UserGrantStats::AppGrants& app = stats.apps[grant.app];
        ++(grant.needs_reauthorization ? app.needs_reauthorization
                                       : app.connected);
      }
      stats.unreadable_records = self->grant_store_problems_;
      stats.unsaved = self->user_grants_->DirtyCount();
      if (self->oauth_flow_ != nullptr) {
        for (const auto& [outcome, count] :
             self->oauth_flow_->stats().callbacks) {
          stats.connects[outcome] = static_cast<int64_t>(count);
        }
      }
      return stats;
    });
  }
  if (server->user_grants_ != nullptr) {
    OAuthFlowOptions flow_options;
    flow_options.oauth = server->config_->Get()->oauth;
    flow_options.client.default_lifetime = source_options.default_lifetime;
    flow_options.client.min_lifetime = source_options.min_lifetime;
    flow_options.client.max_lifetime = source_options.max_lifetime;
    if (SharedState* shared = server->shared_.get()) {
      // A link minted on one replica is started and completed on any.
      flow_options.pending_flows =
          [shared](
              const Clock& clock,
              PendingFlowsOptions options) -> std::unique_ptr<PendingFlows> {
        return std::make_unique<RedisPendingFlows>(
            shared->redis(), shared->keys(), shared->key_prefix(), clock,
            options);
      };
    }
    server->oauth_flow_ = std::make_unique<OAuthFlow>(
        std::move(flow_options), *server->token_http_, *server->audit_,
        *server->clock_, [self](UserGrant grant) {
          const std::string app = grant.app;
          const std::string user_id = grant.user_id;
          absl::Status stored = self->user_grants_->Connect(std::move(grant));
          // Tokens (or a refusal) of the user's previous grant go.
          if (stored.ok()) self->cache_->DropUser(app, user_id);
          return stored;
        });
    server->oauth_flow_->SetApps(server->config_->Get()->apps);
  }
  server->token_service_ = std::make_unique<TokenBrokerService>(
      *server->config_, *server->cache_, *server->proxy_, *server->active_,
      *server->audit_, *server->clock_, server->user_grants_.get());
  server->admin_service_ = std::make_unique<BrokerAdminService>(
      *server->config_, *server->cache_, *server, *server->audit_,
      *server->clock_, server->user_grants_.get());
  server->grpc_ = std::make_unique<GrpcServer>(
      *server->token_service_, *server->admin_service_, *server->metrics_);
  if (server->shared_ != nullptr) {
    // Everything the handlers reach exists now.
    server->shared_->StartEvents(server->SharedHandlers(), [self] {
      // Messages may have been missed while unsubscribed: grants written
      // meanwhile are read again, rotations made meanwhile written back.
      if (self->user_grants_ != nullptr) self->user_grants_->Resync();
    });
    if (server->user_grants_ != nullptr) {
      server->user_grants_->SetWriteListener([self](const std::string& app,
                                                    const std::string& user_id,
                                                    int64_t version) {
        self->shared_->events().PublishGrantChanged(app, user_id, version);
      });
    }
    server->metrics_->SetSharedStateSource(
        [self] { return self->shared_->stats(); });
  }
  return server;
}

BrokerServer::~BrokerServer() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
  // No page request may reach the flow once it goes.
  if (oauth_http_ != nullptr) oauth_http_->Stop();
  if (admin_http_ != nullptr) admin_http_->Stop();
  metrics_->SetCacheSource(nullptr, nullptr);
  metrics_->SetUpstreamSource(nullptr);
  metrics_->SetRpcSource(nullptr);
  metrics_->SetUserGrantSource(nullptr);
  metrics_->SetSharedStateSource(nullptr);
  if (refresher_ != nullptr) refresher_->Stop();
  // Shared fetches still waiting are answered while the cache is alive, and
  // no event of another replica or grant re-read starts an upstream request
  // once the HTTP clients begin to go.
  if (shared_ != nullptr) shared_->StopSharing();
  if (grant_syncing_ != nullptr) grant_syncing_->Stop();
  // Revocations and reloads already queued run while what they reach lives.
  if (shared_ != nullptr) shared_->DrainBlocking();
  // The HTTP clients complete (cancel) every exchange still in flight while
  // the cache and proxy they report to are alive.
  owned_call_http_.reset();
  owned_token_http_.reset();
  // Rotations queued by those exchanges complete their fetches now, while
  // the cache and everything its hooks reach are alive (and, with a grant
  // store in Redis, its client).
  if (user_grants_ != nullptr) user_grants_->Drain();
  if (shared_ != nullptr) shared_->Stop();
}

absl::Status BrokerServer::StartHttp() {
  std::shared_ptr<const Config> config = config_->Get();
  const bool own_oauth_listener = !config->listen.oauth_http.empty();
  if (!config->listen.admin_http.empty()) {
    AdminHttpHandlers handlers;
    handlers.metrics = [this] { return metrics_->Serialize(); };
    handlers.ready = [this] { return !draining(); };
    if (!own_oauth_listener) handlers.oauth = oauth_flow_.get();
    TB_ASSIGN_OR_RETURN(
        admin_http_,
        AdminHttpServer::Start(config->listen.admin_http, std::move(handlers)));
    if (!own_oauth_listener && oauth_flow_ != nullptr) {
      oauth_flow_->SetListenerUrl(admin_http_->url());
    }
  }
  if (own_oauth_listener && oauth_flow_ != nullptr) {
    AdminHttpHandlers handlers;
    handlers.oauth = oauth_flow_.get();
    TB_ASSIGN_OR_RETURN(
        oauth_http_,
        AdminHttpServer::Start(config->listen.oauth_http, std::move(handlers),
                               AdminHttpRole::kOAuth));
    oauth_flow_->SetListenerUrl(oauth_http_->url());
  }
  return absl::OkStatus();
}

int BrokerServer::admin_http_port() const {
  return admin_http_ == nullptr ? 0 : admin_http_->port();
}

int BrokerServer::oauth_http_port() const {
  return oauth_http_ == nullptr ? 0 : oauth_http_->port();
}

absl::Status BrokerServer::Start(const std::string& listen_address) {
  std::shared_ptr<const Config> config = config_->Get();
  std::string address =
      listen_address.empty() ? config->listen.grpc : listen_address;
  TB_RETURN_IF_ERROR(grpc_->Start(*config, address));
  if (refresher_ != nullptr) refresher_->Start(*cache_);
  if (shared_ != nullptr) {
    shared_->WatchHealth([this](bool up) {
      grpc_->SetSharedStateHealth(up);
      // Rotations kept in memory while Redis was away go back now.
      if (up && user_grants_ != nullptr) user_grants_->WriteBack();
    });
  }
  return absl::OkStatus();
}

void BrokerServer::Revoke(const std::string& app,
                          absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  if (shared_ == nullptr) {
    RevokeHere(app, std::move(done));
    return;
  }
  // The app's revocation generation grows first (so that no replica,
  // this one included, adopts the revoked record again) and the other
  // replicas drop theirs. Bounded by the Redis command timeout; if Redis
  // does not take it, SharedEvents retries it and this replica goes on.
  shared_->events().PublishRevoke(
      app, [this, app,
            done = std::move(done)](absl::StatusOr<int64_t> published) mutable {
        if (!published.ok()) {
          LogWarning(
              "the revocation could not be announced to the other replicas "
              "yet; retrying in the background",
              {{"app", app},
               {"error", std::string(published.status().message())}});
        }
        RevokeHere(app, std::move(done));
      });
}

void BrokerServer::RevokeHere(
    const std::string& app,
    absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  std::vector<TokenPtr> tokens = cache_->DropApp(app);
  const int count = static_cast<int>(tokens.size());
  std::vector<Revocation> revocations;
  for (const TokenPtr& token : tokens) {
    revocations.push_back({token->access_token, "", token->fingerprint});
  }
  RevokeAtServer(app, std::move(revocations), count, std::move(done));
}

void BrokerServer::RevokeUser(
    const std::string& app, const std::string& user_id,
    absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  if (user_grants_ == nullptr) {
    done(absl::FailedPreconditionError("no grant_store is configured"));
    return;
  }
  if (shared_ != nullptr) {
    // Deleting a grant in Redis waits for Redis: not on a gRPC thread.
    shared_->RunBlocking(
        [this, app, user_id, done = std::move(done)]() mutable {
          RevokeUserNow(app, user_id, std::move(done));
        });
    return;
  }
  RevokeUserNow(app, user_id, std::move(done));
}

void BrokerServer::RevokeUserNow(
    const std::string& app, const std::string& user_id,
    absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  absl::StatusOr<std::string> refresh_token =
      user_grants_->Remove(app, user_id);
  if (!refresh_token.ok()) {
    done(refresh_token.status());
    return;
  }
  if (shared_ != nullptr) shared_->events().PublishRevokeUser(app, user_id);
  std::vector<TokenPtr> tokens = cache_->DropUser(app, user_id);
  const int count = static_cast<int>(tokens.size());
  // The refresh token first: revoking it revokes the grant (RFC 7009 2.1),
  // access tokens included on most servers; theirs are revoked too.
  std::vector<Revocation> revocations;
  revocations.push_back(
      {*std::move(refresh_token), "refresh_token", "the user's refresh token"});
  for (const TokenPtr& token : tokens) {
    revocations.push_back(
        {token->access_token, "access_token", token->fingerprint});
  }
  LogInfo("user grant deleted", {{"app", app}});
  RevokeAtServer(app, std::move(revocations), count, std::move(done));
}

void BrokerServer::RevokeAtServer(
    const std::string& app, std::vector<Revocation> revocations, int count,
    absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  if (revocations.empty()) {
    done(count);
    return;
  }
  // Completed by the last revocation to answer.
  struct Pending {
    absl::Mutex mu;
    int remaining ABSL_GUARDED_BY(mu);
    std::vector<std::string> failures ABSL_GUARDED_BY(mu);
    absl::AnyInvocable<void(absl::StatusOr<int>)> done;
  };
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->remaining = static_cast<int>(revocations.size());
  }
  pending->done = std::move(done);
  for (Revocation& revocation : revocations) {
    source_->Revoke(
        app, revocation.token,
        [pending, count, app,
         what = std::move(revocation.what)](absl::Status status) {
          std::vector<std::string> failures;
          {
            absl::MutexLock lock(&pending->mu);
            if (!status.ok()) {
              pending->failures.push_back(
                  absl::StrCat(what, ": ", status.message()));
            }
            if (--pending->remaining > 0) return;
            failures = pending->failures;
          }
          LogInfo("tokens revoked", {{"app", app},
                                     {"dropped", count},
                                     {"unconfirmed", failures.size()}});
          if (failures.empty()) {
            pending->done(count);
          } else {
            pending->done(absl::UnavailableError(absl::StrCat(
                "dropped ", count, " token(s) of app ", app,
                " from the broker, but Anypoint did not confirm the "
                "revocation of ",
                failures.size(), " (", absl::StrJoin(failures, "; "),
                "); they stay usable upstream until they expire")));
          }
        },
        revocation.hint);
    OPENSSL_cleanse(revocation.token.data(), revocation.token.size());
  }
}

void BrokerServer::CreateConnectLink(
    const std::string& app, const std::string& minted_by,
    absl::AnyInvocable<void(absl::StatusOr<ConnectLink>)> done) {
  if (oauth_flow_ == nullptr) {
    done(absl::FailedPreconditionError(
        "the broker has no grant_store, so it serves no sign-in pages"));
    return;
  }
  oauth_flow_->CreateStartLink(
      app, minted_by,
      [done = std::move(done)](absl::StatusOr<StartLink> link) mutable {
        if (!link.ok()) {
          done(link.status());
          return;
        }
        done(ConnectLink{std::move(link->url), link->expires_at});
      });
}

absl::Status BrokerServer::OpenGrantStore(const GrantStoreConfig& config) {
  TB_ASSIGN_OR_RETURN(std::shared_ptr<const KeyRing> ring,
                      LoadKeyRing(config.keys, "grant_store"));
  absl::StatusOr<std::unique_ptr<FileGrantStore>> store =
      FileGrantStore::Open(config.directory, std::move(ring));
  if (!store.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("grant_store: ", store.status().message()));
  }
  grant_store_ = *std::move(store);
  LoadGrants(config.directory);
  return absl::OkStatus();
}

absl::Status BrokerServer::OpenSharedGrantStore() {
  absl::StatusOr<std::unique_ptr<RedisGrantStore>> store =
      RedisGrantStore::Create(shared_->redis(), shared_->keys(),
                              shared_->key_prefix());
  if (!store.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("shared_state.redis: ", store.status().message()));
  }
  grant_store_ = *std::move(store);
  // With Redis down this loads nothing and says so; the grants are read
  // when the subscription comes up (Resync).
  LoadGrants("redis");
  return absl::OkStatus();
}

void BrokerServer::LoadGrants(const std::string& where) {
  user_grants_ = std::make_unique<UserGrants>(*grant_store_, *clock_);
  std::vector<std::string> problems = user_grants_->Load();
  for (const std::string& problem : problems) {
    // The other grants load; this one stays in the store for an operator.
    LogError(
        absl::StrCat("grant store: a grant could not be read and is "
                     "skipped (its user must connect again, or restore "
                     "the record or its key): ",
                     problem));
  }
  grant_store_problems_ = static_cast<int>(problems.size());
  LogInfo("grant store opened", {{"store", where},
                                 {"grants", user_grants_->List().size()},
                                 {"unreadable", problems.size()}});
}

SharedEventHandlers BrokerServer::SharedHandlers() {
  SharedEventHandlers handlers;
  handlers.on_revoke = [this](const std::string& app) {
    LogInfo("another replica revoked an app's tokens", {{"app", app}});
    RevokeDropped(app, cache_->DropApp(app));
  };
  handlers.on_revoke_user = [this](const std::string& app,
                                   const std::string& user_id) {
    LogInfo("another replica revoked a user's grant", {{"app", app}});
    if (user_grants_ != nullptr) user_grants_->Forget(app, user_id);
    RevokeDropped(app, cache_->DropUser(app, user_id));
  };
  handlers.on_reload = [this] {
    shared_->RunBlocking([this] {
      LogInfo("another replica reloaded its config: reloading");
      (void)ReloadFromFile();
    });
  };
  handlers.on_grant_changed = [this](const std::string& app,
                                     const std::string& user_id,
                                     int64_t version) {
    if (user_grants_ != nullptr) user_grants_->Adopt(app, user_id, version);
  };
  return handlers;
}

void BrokerServer::RevokeDropped(const std::string& app,
                                 std::vector<TokenPtr> tokens) {
  // Mostly the token the revoking replica revoked already (shared), which
  // the server confirms again (RFC 7009 2.2); a token this replica fetched
  // on its own (Redis was down) is revoked only here.
  std::vector<Revocation> revocations;
  for (const TokenPtr& token : tokens) {
    revocations.push_back({token->access_token, "", token->fingerprint});
  }
  const int count = static_cast<int>(tokens.size());
  RevokeAtServer(
      app, std::move(revocations), count, [app](absl::StatusOr<int> revoked) {
        if (!revoked.ok()) {
          LogWarning("revoking dropped tokens failed",
                     {{"app", app},
                      {"error", std::string(revoked.status().message())}});
        }
      });
}

absl::StatusOr<ReloadSummary> BrokerServer::Reload() {
  absl::StatusOr<ReloadSummary> summary = ReloadFromFile();
  if (summary.ok() && shared_ != nullptr) shared_->events().PublishReload();
  return summary;
}

absl::StatusOr<ReloadSummary> BrokerServer::ReloadFromFile() {
  absl::MutexLock reload_lock(&reload_mu_);
  std::shared_ptr<const Config> old = config_->Get();
  absl::StatusOr<Config> loaded = LoadConfigFile(old->path);
  if (!loaded.ok()) {
    metrics_->ConfigLoaded(false, clock_->Now());
    LogWarning("config reload rejected; the running config stays in force",
               {{"error", std::string(loaded.status().message())}});
    return absl::FailedPreconditionError(
        absl::StrCat("the config file is not valid, nothing changed: ",
                     loaded.status().message()));
  }
  auto fresh = std::make_shared<const Config>(*std::move(loaded));

  ConfigDiff diff = DiffConfigs(*old, *fresh);
  ReloadSummary summary;
  summary.added = diff.added_apps;
  summary.changed = diff.changed_apps;
  summary.removed = diff.removed_apps;
  for (const std::string& section : diff.restart_only) {
    LogWarning(
        "config reload: this section changed but takes effect only "
        "after a restart",
        {{"section", section}});
  }

  source_->SetApps(fresh->apps);
  if (oauth_flow_ != nullptr) oauth_flow_->SetApps(fresh->apps);
  cache_->SetPolicy(fresh->cache);
  if (shared_ != nullptr) shared_->SetPolicy(SharedPolicyFrom(*fresh));
  proxy_->SetOptions(ProxyOptionsFrom(*fresh));
  config_->Set(fresh);
  if (LogLevel level; ParseLogLevel(fresh->log_level, &level)) {
    SetLogLevel(level);
  }
  for (const std::string& app : summary.changed) cache_->DropApp(app);
  for (const std::string& app : summary.removed) cache_->DropApp(app);
  // Apps whose credentials were rejected get a fresh try at once.
  for (const TokenEntryInfo& info : cache_->Snapshot()) {
    if (!info.valid && !info.last_error.ok()) cache_->DropApp(info.app);
  }
  // Streams whose caller lost its key or grant end now.
  active_->SetLimits(fresh->limits);
  active_->Recheck(fresh);
  for (const std::string& app : summary.added) grpc_->SetAppHealth(app, true);
  for (const std::string& app : summary.changed) {
    grpc_->SetAppHealth(app, true);
  }
  for (const std::string& app : summary.removed) {
    grpc_->SetAppHealth(app, false);
  }
  metrics_->ConfigLoaded(true, clock_->Now());
  LogInfo("config reloaded", {{"added", summary.added},
                              {"changed", summary.changed},
                              {"removed", summary.removed},
                              {"callers", fresh->callers.size()}});
  return summary;
}

void BrokerServer::OnFetch(const TokenRequest& request,
                           const absl::Status& status) {
  metrics_->TokenFetched(request.app, status);
  bool healthy = status.ok();
  if (!healthy) {
    // An app whose refresh fails but whose token is still valid still serves.
    for (const TokenEntryInfo& info : cache_->Snapshot()) {
      if (info.app == request.app && info.user == request.user && info.valid) {
        healthy = true;
      }
    }
  }
  if (!request.user.empty() && user_grants_ != nullptr) {
    // A user app is healthy while none of its users must connect again
    // (the refusal of one user's grant is marked before this runs, or just
    // after: the next fetch of the app corrects it).
    for (const UserGrantSummary& grant : user_grants_->List(request.app)) {
      if (grant.needs_reauthorization) healthy = false;
    }
    if (absl::IsFailedPrecondition(status)) healthy = false;
  }
  grpc_->SetAppHealth(request.app, healthy);
}

void BrokerServer::Shutdown(absl::Duration drain_delay, absl::Duration grace) {
  grpc_->Shutdown(drain_delay, grace);
}

void BrokerServer::Wait() { grpc_->Wait(); }

}  // namespace tokenbroker
