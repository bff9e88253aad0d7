#ifndef TOKENBROKER_SERVICE_STORE_MEMORY_GRANT_STORE_H_
#define TOKENBROKER_SERVICE_STORE_MEMORY_GRANT_STORE_H_

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/store/grant_store.h"

namespace tokenbroker {

// A GrantStore in memory: for tests of the modules that use a store, and as
// a fake. Nothing survives the object. Put() and Delete() validate as
// FileGrantStore does (ValidateGrant(), ValidateGrantKey()), and a test can
// make them fail. Thread-safe.
class MemoryGrantStore final : public GrantStore {
 public:
  MemoryGrantStore() = default;

  // Every record, ordered by (app, user_id); never a problem.
  GrantStoreLoad LoadAll() override;
  // While a failure is set (SetFailure), returns it and changes nothing.
  absl::Status Put(const UserGrant& grant) override;
  absl::Status Delete(absl::string_view app,
                      absl::string_view user_id) override;

  // The record of (app, user_id), if any.
  std::optional<UserGrant> Get(absl::string_view app,
                               absl::string_view user_id) const;
  size_t size() const;
  // How many Put() and Delete() calls succeeded.
  int put_count() const;
  int delete_count() const;

  // Makes every later Put() and Delete() return `status` (a simulated
  // storage failure) until it is called with OK.
  void SetFailure(absl::Status status);

 private:
  using Key = std::pair<std::string, std::string>;  // app, user_id

  mutable absl::Mutex mu_;
  std::map<Key, UserGrant> grants_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  int put_count_ ABSL_GUARDED_BY(mu_) = 0;
  int delete_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_STORE_MEMORY_GRANT_STORE_H_
