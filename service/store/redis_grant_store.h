#ifndef TOKENBROKER_SERVICE_STORE_REDIS_GRANT_STORE_H_
#define TOKENBROKER_SERVICE_STORE_REDIS_GRANT_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/redis/redis_client.h"
#include "service/store/grant_store.h"
#include "service/store/sealed_box.h"

namespace tokenbroker {

// A GrantStore in Redis, shared by every replica (IsShared()): one string
// key per record,
//   P "grant:" app ":" user_id  ->  "<version>:<envelope>"
// where P is the key prefix (default "tokenbroker:"), the version is in
// clear decimal (for the compare-and-set script) and the envelope is
// KeyRing::Seal() of the whole record (GrantRecordJson(), which holds the
// version too) with the full key name as associated data: a value copied to
// another key does not open, and a reader refuses a value whose clear
// version differs from the sealed one. No refresh token is ever in a key
// name or in clear in a value.
//
// PutIfVersion() is a Lua script comparing the clear version prefix (an
// absent key is version 0) and writing only if it is the expected one, so
// that of two replicas writing over the same version exactly one wins.
//
// Blocking: every method waits for Redis (RedisClient::CommandSync and
// EvalSync, each bounded by the client's command_timeout). Call it only from
// threads that may block: UserGrants' writer thread, start-up, the OAuth
// callback handler and the admin RPC handlers that already block on disk
// with the file store; never from a gRPC completion or the client's loop
// thread.
//
// Errors: UNAVAILABLE when Redis is down, slow (the command timed out) or
// the client is stopped; INTERNAL for an error reply (say a key of another
// type); DATA_LOSS for a record that cannot be read; each names the key and
// what failed, never a secret.
//
// Thread-safe. `redis` must outlive the store.
class RedisGrantStore final : public GrantStore {
 public:
  // INVALID_ARGUMENT without `keys`.
  static absl::StatusOr<std::unique_ptr<RedisGrantStore>> Create(
      RedisClient& redis, std::shared_ptr<const KeyRing> keys,
      std::string key_prefix = "tokenbroker:");

  bool IsShared() const override { return true; }

  // Lists P"grant:*" (SCAN, 256 keys a batch) and reads the values (MGET,
  // 128 a batch). A record that cannot be read (a key that is not
  // P"grant:<app>:<user>", no version prefix, a key the ring lacks, an
  // envelope that does not authenticate, e.g. a value copied from another
  // key, a sealed record naming another app, user or version) becomes a
  // problem naming its key and is left untouched. A record sealed with a key
  // other than the current one is re-sealed (a script that writes only if
  // the value is still the one read; same version); a failure to do so is a
  // warning. When Redis fails mid-way `error` says so and `grants` holds
  // what was read.
  GrantStoreLoad LoadAll() override;

  // SET of the record, whatever is stored (start-up tools and tests; the
  // broker writes by PutIfVersion()).
  absl::Status Put(const UserGrant& grant) override;
  absl::Status Delete(absl::string_view app,
                      absl::string_view user_id) override;
  absl::StatusOr<std::optional<UserGrant>> Read(
      absl::string_view app, absl::string_view user_id) override;
  absl::Status PutIfVersion(const UserGrant& grant,
                            int64_t expected_version) override;

  // P "grant:" app ":" user_id.
  std::string KeyName(absl::string_view app, absl::string_view user_id) const;

 private:
  RedisGrantStore(RedisClient& redis, std::shared_ptr<const KeyRing> keys,
                  std::string key_prefix);

  // ValidateGrantKey(), and no ':' in `app` (it ends the app in a key name).
  static absl::Status ValidateKey(absl::string_view app,
                                  absl::string_view user_id);
  // "<version>:<envelope>" for `grant`, sealed with the current key.
  absl::StatusOr<std::string> SealValue(const UserGrant& grant) const;
  // The grant a value of `key` holds; DATA_LOSS saying what is wrong.
  absl::StatusOr<UserGrant> OpenValue(const std::string& key,
                                      absl::string_view value) const;
  // One value read by LoadAll(): into `load`, re-sealed if need be.
  void LoadValue(const std::string& key, const std::string& value,
                 GrantStoreLoad* load);

  RedisClient& redis_;
  const std::shared_ptr<const KeyRing> keys_;
  const std::string key_prefix_;
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_STORE_REDIS_GRANT_STORE_H_
