#include "service/users/user_grants.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"

namespace tokenbroker {
namespace {

void Cleanse(std::string& secret) {
  OPENSSL_cleanse(secret.data(), secret.size());
}

std::string ConnectAgain(absl::string_view app) {
  return absl::StrCat("connect the user again: tokenbrokerctl connect ", app);
}

}  // namespace

RefreshCredential::RefreshCredential(RefreshCredential&& other) noexcept
    : refresh_token(std::move(other.refresh_token)),
      version(other.version),
      username(std::move(other.username)),
      scopes(std::move(other.scopes)) {}

RefreshCredential::~RefreshCredential() { Cleanse(refresh_token); }

UserGrants::UserGrants(GrantStore& store, const Clock& clock)
    : store_(store), clock_(clock) {}

UserGrants::~UserGrants() {
  writer_.Drain();
  absl::MutexLock lock(&mu_);
  for (auto& [key, grant] : grants_) Cleanse(grant.refresh_token);
}

std::vector<std::string> UserGrants::Load() {
  GrantStoreLoad load = store_.LoadAll();
  for (const std::string& warning : load.warnings) {
    LogWarning(absl::StrCat("grant store: ", warning));
  }
  absl::MutexLock lock(&mu_);
  for (UserGrant& grant : load.grants) {
    grant.version = next_version_++;
    Key key(grant.app, grant.user_id);
    grants_[std::move(key)] = std::move(grant);
  }
  return std::move(load.problems);
}

UserGrantSummary UserGrants::Summarize(const UserGrant& grant) {
  UserGrantSummary summary;
  summary.app = grant.app;
  summary.user_id = grant.user_id;
  summary.username = grant.username;
  summary.scopes = grant.scopes;
  summary.connected_at = grant.connected_at;
  summary.updated_at = grant.updated_at;
  summary.needs_reauthorization = grant.needs_reauthorization;
  summary.reason = grant.reauthorization_reason;
  return summary;
}

absl::Status UserGrants::Connect(UserGrant grant) {
  absl::MutexLock write_lock(&write_mu_);
  grant.updated_at = clock_.Now();
  grant.needs_reauthorization = false;
  grant.reauthorization_reason.clear();
  {
    absl::MutexLock lock(&mu_);
    grant.version = next_version_++;
  }
  absl::Status stored = store_.Put(grant);
  if (!stored.ok()) {
    Cleanse(grant.refresh_token);
    return stored;
  }
  absl::MutexLock lock(&mu_);
  UserGrant& slot = grants_[Key(grant.app, grant.user_id)];
  Cleanse(slot.refresh_token);
  slot = std::move(grant);
  return absl::OkStatus();
}

std::vector<UserGrantSummary> UserGrants::List(absl::string_view app) const {
  std::vector<UserGrantSummary> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, grant] : grants_) {
    if (app.empty() || key.first == app) out.push_back(Summarize(grant));
  }
  std::sort(out.begin(), out.end(),
            [](const UserGrantSummary& a, const UserGrantSummary& b) {
              return std::tie(a.app, a.username, a.user_id) <
                     std::tie(b.app, b.username, b.user_id);
            });
  return out;
}

std::optional<UserGrantSummary> UserGrants::Find(
    absl::string_view app, absl::string_view user_id) const {
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(Key(app, user_id));
  if (it == grants_.end()) return std::nullopt;
  return Summarize(it->second);
}

absl::StatusOr<UserGrantSummary> UserGrants::Resolve(
    absl::string_view app, absl::string_view user) const {
  absl::MutexLock lock(&mu_);
  const UserGrant* only = nullptr;
  int count = 0;
  for (auto it = grants_.lower_bound(Key(app, "")); it != grants_.end(); ++it) {
    if (it->first.first != app) break;
    const UserGrant& grant = it->second;
    if (user.empty()) {
      only = &grant;
      ++count;
    } else if (grant.user_id == user || grant.username == user) {
      return Summarize(grant);
    }
  }
  if (user.empty() && count == 1) return Summarize(*only);
  if (user.empty() && count > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("app ", app, " acts for ", count,
                     " users: name one in the request's user field"));
  }
  if (user.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no user has connected app ", app,
                     " yet: an operator runs tokenbrokerctl connect ", app,
                     " and the user signs in"));
  }
  return absl::NotFoundError(
      absl::StrCat("user ", user, " has not connected app ", app,
                   ": an operator runs tokenbrokerctl connect ", app,
                   " and the user signs in"));
}

absl::StatusOr<RefreshCredential> UserGrants::BorrowRefreshToken(
    absl::string_view app, absl::string_view user_id) const {
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(Key(app, user_id));
  if (it == grants_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "app ", app, ": the user's grant was removed; ", ConnectAgain(app)));
  }
  const UserGrant& grant = it->second;
  if (grant.needs_reauthorization) {
    return absl::FailedPreconditionError(
        absl::StrCat("app ", app, ": the grant of user ", grant.username,
                     " needs re-authorization (", grant.reauthorization_reason,
                     "); ", ConnectAgain(app)));
  }
  RefreshCredential credential;
  credential.refresh_token = grant.refresh_token;
  credential.version = grant.version;
  credential.username = grant.username;
  credential.scopes = grant.scopes;
  return credential;
}

absl::Status UserGrants::Persist(const Key& key) {
  UserGrant copy;
  {
    absl::MutexLock lock(&mu_);
    auto it = grants_.find(key);
    if (it == grants_.end()) return absl::OkStatus();
    copy = it->second;
  }
  absl::Status stored = store_.Put(copy);
  Cleanse(copy.refresh_token);
  return stored;
}

void UserGrants::StoreRotated(std::string app, std::string user_id,
                              int64_t version, std::string refresh_token,
                              absl::AnyInvocable<void(absl::Status)> done) {
  writer_.Post([this, key = Key(std::move(app), std::move(user_id)), version,
                refresh_token = std::move(refresh_token),
                done = std::move(done)]() mutable {
    absl::Status status;
    {
      absl::MutexLock write_lock(&write_mu_);
      {
        absl::MutexLock lock(&mu_);
        auto it = grants_.find(key);
        if (it == grants_.end() || it->second.version != version) {
          status = absl::AbortedError(absl::StrCat(
              "app ", key.first,
              ": the user's grant was replaced or removed during a refresh"));
        } else {
          // Memory first: this refresh token is the only one that works now,
          // whether or not the store takes it.
          Cleanse(it->second.refresh_token);
          it->second.refresh_token = refresh_token;
          it->second.updated_at = clock_.Now();
          it->second.version = next_version_++;
        }
      }
      if (status.ok()) status = Persist(key);
    }
    Cleanse(refresh_token);
    if (!status.ok() && !absl::IsAborted(status)) {
      LogError(
          absl::StrCat("grant store: could not store the rotated refresh "
                       "token of a user of app ",
                       key.first, ": ", status.message()));
    }
    done(std::move(status));
  });
}

void UserGrants::MarkNeedsReauthorization(std::string app, std::string user_id,
                                          int64_t version, std::string reason) {
  writer_.Post([this, key = Key(std::move(app), std::move(user_id)), version,
                reason = std::move(reason)] {
    absl::MutexLock write_lock(&write_mu_);
    {
      absl::MutexLock lock(&mu_);
      auto it = grants_.find(key);
      if (it == grants_.end() || it->second.version != version) return;
      it->second.needs_reauthorization = true;
      it->second.reauthorization_reason = reason;
      it->second.updated_at = clock_.Now();
      it->second.version = next_version_++;
    }
    if (absl::Status stored = Persist(key); !stored.ok()) {
      LogError(
          absl::StrCat("grant store: could not mark a grant of app ", key.first,
                       " as needing re-authorization: ", stored.message()));
    }
  });
}

absl::StatusOr<std::string> UserGrants::Remove(absl::string_view app,
                                               absl::string_view user_id) {
  absl::MutexLock write_lock(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (grants_.find(Key(app, user_id)) == grants_.end()) {
      return absl::NotFoundError(
          absl::StrCat("app ", app, " has no grant of that user"));
    }
  }
  if (absl::Status deleted = store_.Delete(app, user_id); !deleted.ok()) {
    return deleted;
  }
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(Key(app, user_id));
  std::string refresh_token = std::move(it->second.refresh_token);
  grants_.erase(it);
  return refresh_token;
}

void UserGrants::Drain() { writer_.Drain(); }

}  // namespace tokenbroker
