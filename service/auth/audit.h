#ifndef TOKENBROKER_SERVICE_AUTH_AUDIT_H_
#define TOKENBROKER_SERVICE_AUTH_AUDIT_H_

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tokenbroker {

// One audit record: a decision about a request, a use of a token, a
// revocation or a config reload. Never holds a token or secret: a token is
// named by its fingerprint (TokenFingerprint(),
// service/common/token_fingerprint.h).
struct AuditRecord {
  absl::Time time;
  // "decision", "use", "revoke", "reload", "connect" (a user's sign-in
  // through the OAuth pages, allowed or refused).
  std::string event;
  std::string caller;     // Configured caller name ("-" if unknown).
  std::string auth;       // "mtls", "bearer", "anonymous" or "none".
  std::string principal;  // SPIFFE id, CN or key fingerprint.
  std::string peer;       // Transport address.
  std::string rpc;        // e.g. "TokenBroker.GetToken".
  std::string app;
  // The user of a user app the request acts for (username, else user id).
  std::string user;
  std::vector<std::string> scopes;
  std::string http_method;  // Call only.
  std::string path;         // Call only, without its query string.
  std::string decision;     // "allow" or "deny".
  std::string reason;
  std::string grpc_status;  // e.g. "OK", "PERMISSION_DENIED".
  int upstream_status = 0;  // HTTP status of a Call, 0 if none.
  absl::Duration latency = absl::ZeroDuration();
  std::string token_fingerprint;
};

// The record as one line of JSON (no trailing newline). A query string in
// `path` is dropped here too, whatever the caller passed.
std::string AuditRecordToJson(const AuditRecord& record);
// The same, appended to `out`.
void AppendAuditRecordJson(const AuditRecord& record, std::string& out);

// Where audit records go. Thread-safe.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Writes and flushes one record. Errors: UNAVAILABLE when it could not be
  // written (then a fail-closed broker refuses the request).
  virtual absl::Status Write(const AuditRecord& record) = 0;

  // Blocks until every record accepted so far has been written (or failed).
  virtual void Flush() {}
};

// Appends JSON lines to a file, or to stdout for path "-", each flushed
// to the file as soon as it is written.
// - synchronous (fail-closed brokers): Write() writes and flushes the record
//   before it returns, so an error means the record is not in the file.
// - otherwise: Write() queues the record and a writer thread writes and
//   flushes what is queued; the RPC does not wait for the disk. The writer
//   commits in groups: once a record is queued it lets the records of the
//   next millisecond join it (or 64 KiB, or a Flush()), so that a busy
//   broker does one wake-up and one write(2) per group, not per record.
//   Write() then returns the error of the writer's last attempt (the log is
//   failing), or UNAVAILABLE when more than 64 MiB wait (record dropped).
// The destructor writes what is still queued.
class FileAuditSink final : public AuditSink {
 public:
  // Errors: UNAVAILABLE if the file cannot be opened for appending.
  static absl::StatusOr<std::unique_ptr<FileAuditSink>> Open(
      const std::string& path, bool synchronous = true);
  ~FileAuditSink() override;

  absl::Status Write(const AuditRecord& record) override;
  void Flush() override;

 private:
  static constexpr size_t kMaxPendingBytes = 64 << 20;
  // A thread's formatting buffer is freed after a record larger than this.
  static constexpr size_t kMaxLineBuffer = 64 << 10;
  // A group is written when it is this old or this large.
  static constexpr absl::Duration kGroupCommitDelay = absl::Milliseconds(1);
  static constexpr size_t kGroupCommitBytes = 64 << 10;

  FileAuditSink(std::string path, std::FILE* file, bool owned,
                bool synchronous);
  absl::Status WriteAndFlush(absl::string_view lines)
      ABSL_LOCKS_EXCLUDED(io_mu_);
  void WriterLoop();
  bool GroupComplete() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex io_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::FILE* const file_;  // Written under io_mu_.
  const bool owned_;
  const bool synchronous_;

  absl::Mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;   // A batch is being written.
  int flush_waiters_ ABSL_GUARDED_BY(mu_) = 0;  // Flush() calls waiting.
  absl::CondVar wake_;  // The writer waits on it (with mu_), alone.
  std::thread writer_;
};

// Discards records (audit not configured).
class NullAuditSink final : public AuditSink {
 public:
  absl::Status Write(const AuditRecord&) override { return absl::OkStatus(); }
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_AUTH_AUDIT_H_
