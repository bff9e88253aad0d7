#include "service/store/memory_grant_store.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/common/status_macros.h"

namespace tokenbroker {

GrantStoreLoad MemoryGrantStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  GrantStoreLoad load;
  load.grants.reserve(grants_.size());
  for (const auto& [key, grant] : grants_) load.grants.push_back(grant);
  return load;
}

absl::Status MemoryGrantStore::Put(const UserGrant& grant) {
  TB_RETURN_IF_ERROR(ValidateGrant(grant));
  absl::MutexLock lock(&mu_);
  TB_RETURN_IF_ERROR(failure_);
  grants_[Key(grant.app, grant.user_id)] = grant;
  ++put_count_;
  return absl::OkStatus();
}

absl::Status MemoryGrantStore::Delete(absl::string_view app,
                                      absl::string_view user_id) {
  TB_RETURN_IF_ERROR(ValidateGrantKey(app, user_id));
  absl::MutexLock lock(&mu_);
  TB_RETURN_IF_ERROR(failure_);
  grants_.erase(Key(std::string(app), std::string(user_id)));
  ++delete_count_;
  return absl::OkStatus();
}

std::optional<UserGrant> MemoryGrantStore::Get(
    absl::string_view app, absl::string_view user_id) const {
  absl::MutexLock lock(&mu_);
  auto it = grants_.find(Key(std::string(app), std::string(user_id)));
  if (it == grants_.end()) return std::nullopt;
  return it->second;
}

size_t MemoryGrantStore::size() const {
  absl::MutexLock lock(&mu_);
  return grants_.size();
}

int MemoryGrantStore::put_count() const {
  absl::MutexLock lock(&mu_);
  return put_count_;
}

int MemoryGrantStore::delete_count() const {
  absl::MutexLock lock(&mu_);
  return delete_count_;
}

void MemoryGrantStore::SetFailure(absl::Status status) {
  absl::MutexLock lock(&mu_);
  failure_ = std::move(status);
}

}  // namespace tokenbroker
