#include "service/app/config_diff.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace tokenbroker {
namespace {

bool SameRoutes(const std::vector<RouteRule>& a,
                const std::vector<RouteRule>& b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(),
      [](const RouteRule& x, const RouteRule& y) { return x.text == y.text; });
}

bool SameGrants(const std::vector<AppGrant>& a,
                const std::vector<AppGrant>& b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(),
      [](const AppGrant& x, const AppGrant& y) {
        return std::tie(x.app, x.scopes, x.all_scopes, x.get_token) ==
                   std::tie(y.app, y.scopes, y.all_scopes, y.get_token) &&
               SameRoutes(x.routes, y.routes);
      });
}

bool SameKeys(const std::vector<StoreKeyConfig>& a,
              const std::vector<StoreKeyConfig>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const StoreKeyConfig& x, const StoreKeyConfig& y) {
                      return x.id == y.id && x.file == y.file;
                    });
}

bool SameCaller(const CallerConfig& a, const CallerConfig& b) {
  return std::tie(a.spiffe_ids, a.common_names, a.bearer_key_sha256, a.admin) ==
             std::tie(b.spiffe_ids, b.common_names, b.bearer_key_sha256,
                      b.admin) &&
         SameGrants(a.grants, b.grants);
}

// Sorts the names of `before` and `after` into added, changed and removed.
template <typename T, typename Same>
void Diff(const std::vector<T>& before, const std::vector<T>& after, Same same,
          std::vector<std::string>* added, std::vector<std::string>* changed,
          std::vector<std::string>* removed) {
  std::map<std::string, const T*> old_by_name;
  for (const T& item : before) old_by_name[item.name] = &item;
  for (const T& item : after) {
    auto it = old_by_name.find(item.name);
    if (it == old_by_name.end()) {
      added->push_back(item.name);
    } else {
      if (!same(*it->second, item)) changed->push_back(item.name);
      old_by_name.erase(it);
    }
  }
  for (const auto& [name, item] : old_by_name) removed->push_back(name);
  std::sort(added->begin(), added->end());
  std::sort(changed->begin(), changed->end());
  std::sort(removed->begin(), removed->end());
}

}  // namespace

ConfigDiff DiffConfigs(const Config& before, const Config& after) {
  ConfigDiff diff;
  Diff(before.apps, after.apps, SameApp, &diff.added_apps, &diff.changed_apps,
       &diff.removed_apps);
  Diff(before.callers, after.callers, SameCaller, &diff.added_callers,
       &diff.changed_callers, &diff.removed_callers);
  const ListenConfig& a = before.listen;
  const ListenConfig& b = after.listen;
  if (a.grpc != b.grpc || a.admin_http != b.admin_http ||
      a.oauth_http != b.oauth_http || a.probe_grpc != b.probe_grpc ||
      a.tls.cert_file != b.tls.cert_file || a.tls.key_file != b.tls.key_file ||
      a.tls.client_ca_file != b.tls.client_ca_file ||
      before.development.insecure_plaintext !=
          after.development.insecure_plaintext) {
    diff.restart_only.push_back("listen");
  }
  if (before.upstream.ca_file != after.upstream.ca_file ||
      before.upstream.connect_timeout != after.upstream.connect_timeout) {
    diff.restart_only.push_back("upstream");
  }
  if (before.audit.path != after.audit.path ||
      before.audit.fail_closed != after.audit.fail_closed) {
    diff.restart_only.push_back("audit");
  }
  if (before.grant_store.directory != after.grant_store.directory ||
      !SameKeys(before.grant_store.keys, after.grant_store.keys)) {
    diff.restart_only.push_back("grant_store");
  }
  const SharedStateConfig& r = before.shared_state;
  const SharedStateConfig& s = after.shared_state;
  if (r.address != s.address || r.sentinels != s.sentinels ||
      r.sentinel_master != s.sentinel_master || r.username != s.username ||
      r.password_file != s.password_file || r.key_prefix != s.key_prefix ||
      r.connect_timeout != s.connect_timeout ||
      r.command_timeout != s.command_timeout || r.lease_ttl != s.lease_ttl ||
      r.sync_interval != s.sync_interval || !SameKeys(r.keys, s.keys)) {
    diff.restart_only.push_back("shared_state");
  }
  const OAuthFlowConfig& c = before.oauth;
  const OAuthFlowConfig& e = after.oauth;
  if (c.public_url != e.public_url || c.state_ttl != e.state_ttl ||
      c.start_link_ttl != e.start_link_ttl || c.max_pending != e.max_pending ||
      c.request_timeout != e.request_timeout) {
    diff.restart_only.push_back("oauth");
  }
  return diff;
}

}  // namespace tokenbroker
