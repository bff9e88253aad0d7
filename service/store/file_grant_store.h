#ifndef TOKENBROKER_SERVICE_STORE_FILE_GRANT_STORE_H_
#define TOKENBROKER_SERVICE_STORE_FILE_GRANT_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/store/grant_store.h"
#include "service/store/sealed_box.h"

namespace tokenbroker {

// A GrantStore in a local directory (a persistent volume), one file per
// record so that one damaged record never takes the others down.
//
// Record file: `<hex SHA-256 of app + '\0' + user_id>.grant`, mode 0600,
// holding one JSON object with the routing fields in clear and the whole
// record sealed (service/store/sealed_box.h):
//   {"format":1,"app":"...","user_id":"...","sealed":"tbx1.<key id>...."}
// The seal's associated data is "tokenbroker/grant/v1\0" + app + "\0" +
// user_id: a record copied to another app's or user's file, or whose clear
// fields were edited, does not open; a file whose name is not the hash of its
// clear app and user is refused too.
//
// Writes are atomic and durable: the new content goes to
// `<name>.tmp.<random>` (O_EXCL, 0600), which is fsynced, renamed over the
// record, and the directory fsynced. A crash at any point leaves the old
// record or the new one, plus at worst a temporary file, which LoadAll()
// removes. Writes are serialized within the process; the directory is
// locked (flock) so that a second store, in this process or another, cannot
// open it while this one lives.
//
// Key rotation: LoadAll() re-seals, with the ring's current key, every record
// sealed with another key. After one start with the ring [new, old] and no
// "could not be re-sealed" warning, every record is under the new key and
// the old key can be removed.
//
// Thread-safe. The refresh token never appears in a log line, an error or a
// problem text; the buffers this class fills with it are cleared
// (OPENSSL_cleanse) after use (nlohmann::json's internal parse buffers are
// out of its reach).
class FileGrantStore final : public GrantStore {
 public:
  // Opens the store in `dir`, creating the directory (0700) if it is missing
  // (its parent must exist). Errors, each naming the directory:
  // FAILED_PRECONDITION if it is not owned by this process's effective user,
  // is writable by group or others, or is already opened by another store
  // (in any process); INVALID_ARGUMENT for an empty `dir` or no `keys`;
  // UNAVAILABLE or INTERNAL (with the errno text) if it cannot be created or
  // opened. Point it at a directory of its own inside a volume (say
  // /var/lib/tokenbroker/grants): a volume's root may be group-writable
  // (Kubernetes fsGroup).
  static absl::StatusOr<std::unique_ptr<FileGrantStore>> Open(
      std::string dir, std::shared_ptr<const KeyRing> keys);

  ~FileGrantStore() override;
  FileGrantStore(const FileGrantStore&) = delete;
  FileGrantStore& operator=(const FileGrantStore&) = delete;

  // Reads every `*.grant` file. A record that is truncated, corrupt, sealed
  // with a key the ring lacks or that does not authenticate, or whose file
  // name does not match it, becomes a problem (file name, app and user if
  // readable, what is wrong) and is left on disk untouched; the others load.
  // Removes leftover `*.tmp.*` files (a write interrupted by a crash before
  // its rename) and re-seals records found under a non-current key; both are
  // logged and reported in `warnings`. Meant for start-up; it holds the write
  // lock while it runs.
  GrantStoreLoad LoadAll() override;

  // See GrantStore. Errors name the file and the failed call with its errno
  // text: UNAVAILABLE for conditions that may pass (ENOSPC, EIO, ...),
  // INTERNAL otherwise; INVALID_ARGUMENT from ValidateGrant(). On error no
  // temporary file is left behind.
  absl::Status Put(const UserGrant& grant) override;
  absl::Status Delete(absl::string_view app,
                      absl::string_view user_id) override;

  // The file name of a record: hex SHA-256 of app + '\0' + user_id, plus
  // ".grant".
  static std::string RecordFileName(absl::string_view app,
                                    absl::string_view user_id);

  const std::string& dir() const { return dir_; }

  // Test seam for crash consistency: the points of an atomic write after
  // which `hook` is called (with the write lock held). A non-OK status from
  // the hook fails the write there, as an I/O error at that point would (the
  // temporary file is removed); a hook that kills the process shows what a
  // crash at that point leaves. An empty hook removes it.
  enum class WriteStep {
    kTempWritten,  // the temporary file is written, not yet fsynced
    kTempSynced,   // it is fsynced and closed, not yet renamed
    kRenamed,      // it replaced the record; the directory is not fsynced
  };
  using WriteHook = std::function<absl::Status(WriteStep step)>;
  void SetWriteHookForTesting(WriteHook hook);

 private:
  FileGrantStore(std::string dir, int dir_fd,
                 std::shared_ptr<const KeyRing> keys);

  std::string PathOf(absl::string_view name) const;
  // The record file's content for `grant`, sealed with the current key.
  absl::StatusOr<std::string> SealRecord(const UserGrant& grant) const;
  absl::Status RunHook(WriteStep step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteFileLocked(const std::string& name,
                               absl::string_view content)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SyncDirLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoadRecordLocked(const std::string& name, GrantStoreLoad* load)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const int dir_fd_;  // open for the store's lifetime; holds the flock
  const std::shared_ptr<const KeyRing> keys_;

  absl::Mutex mu_;  // serializes every change to the directory
  WriteHook hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_STORE_FILE_GRANT_STORE_H_
