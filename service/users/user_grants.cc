#include "service/users/user_grants.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/common/log.h"

namespace tokenbroker {
namespace {

void Cleanse(std::string& secret) {
  OPENSSL_cleanse(secret.data(), secret.size());
}

// Connect() reads the stored version and writes the next by compare-and-set;
// another replica writing in between makes it try again, this many times.
constexpr int kConnectAttempts = 5;

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
    : store_(store), clock_(clock), shared_(store.IsShared()) {}

UserGrants::~UserGrants() {
  writer_.Drain();
  absl::MutexLock lock(&mu_);
  for (auto& [key, entry] : grants_) Cleanse(entry.grant.refresh_token);
}

std::vector<std::string> UserGrants::Load() {
  GrantStoreLoad load = store_.LoadAll();
  for (const std::string& warning : load.warnings) {
    LogWarning(absl::StrCat("grant store: ", warning));
  }
  if (!load.error.ok()) {
    load.problems.push_back(
        absl::StrCat("the grant store could not be read to the end (",
                     load.error.message(), "): some grants may be missing"));
  }
  absl::MutexLock lock(&mu_);
  for (UserGrant& grant : load.grants) AdoptLocked(std::move(grant));
  return std::move(load.problems);
}

void UserGrants::SetWriteListener(WriteListener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void UserGrants::AdoptLocked(UserGrant grant) {
  Entry& entry = grants_[Key(grant.app, grant.user_id)];
  Cleanse(entry.grant.refresh_token);
  entry.stored_version = grant.version;
  entry.grant = std::move(grant);
}

void UserGrants::EraseLocked(const Key& key) {
  auto it = grants_.find(key);
  if (it == grants_.end()) return;
  Cleanse(it->second.grant.refresh_token);
  grants_.erase(it);
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

absl::Status UserGrants::StoreWrite(const UserGrant& grant, int64_t based_on) {
  return shared_ ? store_.PutIfVersion(grant, based_on) : store_.Put(grant);
}

void UserGrants::Written(const Key& key, int64_t version) {
  WriteListener listener;
  {
    absl::MutexLock lock(&mu_);
    auto it = grants_.find(key);
    // Not found: forgotten meanwhile (removed on another replica).
    if (it != grants_.end() && it->second.grant.version == version) {
      it->second.stored_version = version;
    }
    listener = listener_;
  }
  if (listener) listener(key.first, key.second, version);
}

absl::Status UserGrants::Connect(UserGrant grant) {
  absl::MutexLock write_lock(&write_mu_);
  grant.updated_at = clock_.Now();
  grant.needs_reauthorization = false;
  grant.reauthorization_reason.clear();
  const Key key(grant.app, grant.user_id);
  absl::Status stored;
  for (int attempt = 0; attempt < kConnectAttempts; ++attempt) {
    // Replaces whatever is stored: the next version of the stored one.
    int64_t based_on = 0;
    if (shared_) {
      absl::StatusOr<std::optional<UserGrant>> current =
          store_.Read(grant.app, grant.user_id);
      if (!current.ok()) {
        stored = current.status();
        break;
      }
      if (current->has_value()) {
        based_on = (*current)->version;
        Cleanse((*current)->refresh_token);
      }
    } else {
      absl::MutexLock lock(&mu_);
      auto it = grants_.find(key);
      if (it != grants_.end()) based_on = it->second.grant.version;
    }
    grant.version = based_on + 1;
    stored = StoreWrite(grant, based_on);
    if (!absl::IsAborted(stored)) break;
  }
  if (!stored.ok()) {
    Cleanse(grant.refresh_token);
    if (absl::IsAborted(stored)) {
      return absl::AbortedError(absl::StrCat(
          "app ", key.first,
          ": the user's grant kept changing in the store (other replicas "
          "writing it); connect the user again"));
    }
    return stored;
  }
  const int64_t version = grant.version;
  {
    absl::MutexLock lock(&mu_);
    AdoptLocked(std::move(grant));
  }
  Written(key, version);
  WriteBackAll().IgnoreError();  // Logged; tried again by the next write.
  return absl::OkStatus();
}

std::vector<UserGrantSummary> UserGrants::List(absl::string_view app) const {
  std::vector<UserGrantSummary> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, entry] : grants_) {
    if (app.empty() || key.first == app) out.push_back(Summarize(entry.grant));
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
  return Summarize(it->second.grant);
}

absl::StatusOr<UserGrantSummary> UserGrants::Resolve(
    absl::string_view app, absl::string_view user) const {
  absl::MutexLock lock(&mu_);
  const UserGrant* only = nullptr;
  int count = 0;
  for (auto it = grants_.lower_bound(Key(app, "")); it != grants_.end(); ++it) {
    if (it->first.first != app) break;
    const UserGrant& grant = it->second.grant;
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
  const UserGrant& grant = it->second.grant;
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

absl::Status UserGrants::ReRead(const Key& key) {
  absl::StatusOr<std::optional<UserGrant>> read =
      store_.Read(key.first, key.second);
  if (!read.ok()) return read.status();
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(key);
  if (!read->has_value()) {
    if (it != grants_.end()) {
      LogWarning(
          "a user grant is no longer in the shared store (removed by another "
          "replica, or the store lost it): forgotten here",
          {{"app", key.first}, {"user_id", key.second}});
      EraseLocked(key);
    }
    return absl::OkStatus();
  }
  UserGrant& stored = **read;
  if (it == grants_.end() || it->second.dirty() ||
      it->second.grant.version != stored.version) {
    AdoptLocked(std::move(stored));
  }
  Cleanse(stored.refresh_token);
  return absl::OkStatus();
}

absl::Status UserGrants::WriteBackOne(const Key& key) {
  UserGrant copy;
  int64_t based_on = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = grants_.find(key);
    if (it == grants_.end() || !it->second.dirty()) return absl::OkStatus();
    copy = it->second.grant;
    based_on = it->second.stored_version;
  }
  absl::Status status = StoreWrite(copy, based_on);
  Cleanse(copy.refresh_token);
  if (status.ok()) {
    LogInfo(
        "a user grant rotated while the store could not be written is "
        "written back",
        {{"app", key.first}, {"user_id", key.second}});
    Written(key, copy.version);
    return absl::OkStatus();
  }
  if (!absl::IsAborted(status)) return status;
  // The conflict rule: the store's record wins over ours.
  LogWarning(
      "a user grant was changed in the shared store while this replica could "
      "not write its rotated refresh token: the store's grant wins, this "
      "replica's refresh token is dropped",
      {{"app", key.first},
       {"user_id", key.second},
       {"dropped_version", copy.version},
       {"based_on_version", based_on}});
  return ReRead(key);
}

absl::Status UserGrants::WriteBackAll() {
  std::vector<Key> dirty;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, entry] : grants_) {
      if (entry.dirty()) dirty.push_back(key);
    }
  }
  for (const Key& key : dirty) {
    if (absl::Status status = WriteBackOne(key); !status.ok()) {
      LogWarning("a user grant could not be written back to the store yet",
                 {{"app", key.first},
                  {"user_id", key.second},
                  {"error", std::string(status.message())}});
      return status;
    }
  }
  return absl::OkStatus();
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
      UserGrant copy;
      int64_t based_on = 0;
      {
        absl::MutexLock lock(&mu_);
        auto it = grants_.find(key);
        if (it == grants_.end() || it->second.grant.version != version) {
          status = absl::AbortedError(absl::StrCat(
              "app ", key.first,
              ": the user's grant was replaced or removed during a refresh"));
        } else {
          // Memory first: this refresh token is the only one that works now,
          // whether or not the store takes it.
          UserGrant& grant = it->second.grant;
          Cleanse(grant.refresh_token);
          grant.refresh_token = refresh_token;
          grant.updated_at = clock_.Now();
          grant.version = version + 1;
          copy = grant;
          based_on = it->second.stored_version;
        }
      }
      if (status.ok()) {
        status = StoreWrite(copy, based_on);
        Cleanse(copy.refresh_token);
        if (status.ok()) {
          Written(key, copy.version);
          WriteBackAll().IgnoreError();  // Logged.
        } else if (absl::IsAborted(status)) {
          // Another replica rotated or replaced the grant since it was lent:
          // its record wins; this refresh token is never used again.
          if (absl::Status reread = ReRead(key); !reread.ok()) {
            // Still dirty: WriteBack() settles it by the same rule.
            LogWarning(
                "could not re-read a user grant that another replica "
                "changed",
                {{"app", key.first},
                 {"user_id", key.second},
                 {"error", std::string(reread.message())}});
          }
          status = absl::AbortedError(absl::StrCat(
              "app ", key.first,
              ": another replica changed the user's grant during a refresh"));
        }
      }
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
    UserGrant copy;
    int64_t based_on = 0;
    {
      absl::MutexLock lock(&mu_);
      auto it = grants_.find(key);
      if (it == grants_.end() || it->second.grant.version != version) return;
      UserGrant& grant = it->second.grant;
      grant.needs_reauthorization = true;
      grant.reauthorization_reason = reason;
      grant.updated_at = clock_.Now();
      grant.version = version + 1;
      copy = grant;
      based_on = it->second.stored_version;
    }
    absl::Status stored = StoreWrite(copy, based_on);
    Cleanse(copy.refresh_token);
    if (stored.ok()) {
      Written(key, copy.version);
      WriteBackAll().IgnoreError();  // Logged.
    } else if (absl::IsAborted(stored)) {
      // Another replica wrote the grant (likely rotated it: which is why
      // this replica's token was refused): its record wins.
      stored = ReRead(key);
    }
    if (!stored.ok()) {
      LogError(
          absl::StrCat("grant store: could not mark a grant of app ", key.first,
                       " as needing re-authorization: ", stored.message()));
    }
  });
}

absl::StatusOr<std::string> UserGrants::Remove(absl::string_view app,
                                               absl::string_view user_id) {
  absl::MutexLock write_lock(&write_mu_);
  const Key key(app, user_id);
  std::optional<Entry> held;
  {
    absl::MutexLock lock(&mu_);
    auto it = grants_.find(key);
    if (it != grants_.end()) held = it->second;
  }
  std::optional<UserGrant> stored;
  bool unreadable = false;
  if (shared_) {
    absl::StatusOr<std::optional<UserGrant>> read = store_.Read(app, user_id);
    if (read.ok()) {
      stored = *std::move(read);
    } else if (absl::IsDataLoss(read.status())) {
      unreadable = true;
    } else {
      if (held.has_value()) Cleanse(held->grant.refresh_token);
      return read.status();
    }
  }
  if (!held.has_value() && !stored.has_value() && !unreadable) {
    return absl::NotFoundError(
        absl::StrCat("app ", app, " has no grant of that user"));
  }
  if (absl::Status deleted = store_.Delete(app, user_id); !deleted.ok()) {
    if (held.has_value()) Cleanse(held->grant.refresh_token);
    if (stored.has_value()) Cleanse(stored->refresh_token);
    return deleted;
  }
  {
    absl::MutexLock lock(&mu_);
    EraseLocked(key);
  }
  // The newest refresh token known: ours if it is a rotation the store has
  // not seen (dirty, over what is stored), else the store's.
  const bool ours_newer =
      held.has_value() &&
      (!stored.has_value() ||
       (held->dirty() && held->stored_version == stored->version));
  std::string refresh_token;
  if (ours_newer) {
    refresh_token = std::move(held->grant.refresh_token);
  } else if (stored.has_value()) {
    refresh_token = std::move(stored->refresh_token);
  }
  if (held.has_value()) Cleanse(held->grant.refresh_token);
  if (stored.has_value()) Cleanse(stored->refresh_token);
  if (!held.has_value() && !stored.has_value()) {
    return absl::DataLossError(absl::StrCat(
        "app ", app,
        ": the user's stored grant could not be read; it is deleted, but its "
        "refresh token could not be revoked at the server"));
  }
  return refresh_token;
}

absl::Status UserGrants::RefreshOne(const Key& key) {
  bool dirty = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = grants_.find(key);
    dirty = it != grants_.end() && it->second.dirty();
  }
  // A dirty grant is written back first, or gives way to the store's.
  if (dirty) return WriteBackOne(key);
  return ReRead(key);
}

void UserGrants::Refresh(std::string app, std::string user_id, Done done) {
  if (!shared_) {
    done(absl::OkStatus());
    return;
  }
  writer_.Post([this, key = Key(std::move(app), std::move(user_id)),
                done = std::move(done)]() mutable {
    absl::Status status;
    {
      absl::MutexLock write_lock(&write_mu_);
      status = RefreshOne(key);
    }
    done(std::move(status));
  });
}

bool UserGrants::HoldsClean(const Key& key, int64_t version) const {
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(key);
  return it != grants_.end() && !it->second.dirty() &&
         it->second.grant.version == version;
}

void UserGrants::Adopt(std::string app, std::string user_id, int64_t version) {
  Key key(std::move(app), std::move(user_id));
  // This replica's own write, or one it has seen already.
  if (!shared_ || HoldsClean(key, version)) return;
  writer_.Post([this, key = std::move(key), version] {
    absl::MutexLock write_lock(&write_mu_);
    if (HoldsClean(key, version)) return;
    if (absl::Status status = RefreshOne(key); !status.ok()) {
      LogWarning("could not re-read a user grant another replica wrote",
                 {{"app", key.first},
                  {"user_id", key.second},
                  {"error", std::string(status.message())}});
    }
  });
}

void UserGrants::Forget(absl::string_view app, absl::string_view user_id) {
  absl::MutexLock lock(&mu_);
  EraseLocked(Key(app, user_id));
}

void UserGrants::WriteBack(Done done) {
  writer_.Post([this, done = std::move(done)]() mutable {
    absl::Status status;
    {
      absl::MutexLock write_lock(&write_mu_);
      status = WriteBackAll();
    }
    if (done) done(std::move(status));
  });
}

void UserGrants::Resync(Done done) {
  if (!shared_) {
    if (done) done(absl::OkStatus());
    return;
  }
  writer_.Post([this, done = std::move(done)]() mutable {
    absl::Status status;
    {
      absl::MutexLock write_lock(&write_mu_);
      WriteBackAll().IgnoreError();  // Logged; a dirty grant is kept.
      GrantStoreLoad load = store_.LoadAll();
      for (const std::string& problem : load.problems) {
        LogWarning(
            absl::StrCat("grant store: a grant could not be read: ", problem));
      }
      absl::MutexLock lock(&mu_);
      for (UserGrant& grant : load.grants) {
        auto it = grants_.find(Key(grant.app, grant.user_id));
        if (it == grants_.end() ||
            (!it->second.dirty() &&
             it->second.grant.version != grant.version)) {
          AdoptLocked(std::move(grant));
        }
        Cleanse(grant.refresh_token);
      }
      status = load.error;
    }
    if (done) done(std::move(status));
  });
}

int UserGrants::DirtyCount() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(
      std::count_if(grants_.begin(), grants_.end(),
                    [](const auto& item) { return item.second.dirty(); }));
}

void UserGrants::Drain() { writer_.Drain(); }

}  // namespace tokenbroker
