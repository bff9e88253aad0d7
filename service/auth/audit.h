#ifndef TOKENBROKER_SERVICE_AUTH_AUDIT_H_
#define TOKENBROKER_SERVICE_AUTH_AUDIT_H_

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tokenbroker {

// One audit record: a decision about a request, a use of a token, a
// revocation or a config reload. Never holds a token or secret: a token is
// named by its fingerprint (TokenFingerprint()).
struct AuditRecord {
  absl::Time time;
  std::string event;      // "decision", "use", "revoke", "reload".
  std::string caller;     // Configured caller name ("-" if unknown).
  std::string auth;       // "mtls", "bearer", "anonymous" or "none".
  std::string principal;  // SPIFFE id, CN or key fingerprint.
  std::string peer;       // Transport address.
  std::string rpc;        // e.g. "TokenBroker.GetToken".
  std::string app;
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

// Where audit records go. Thread-safe.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Writes and flushes one record. Errors: UNAVAILABLE when it could not be
  // written (then a fail-closed broker refuses the request).
  virtual absl::Status Write(const AuditRecord& record) = 0;
};

// Appends JSON lines to a file, or to stdout for path "-", flushing each.
class FileAuditSink final : public AuditSink {
 public:
  // Errors: UNAVAILABLE if the file cannot be opened for appending.
  static absl::StatusOr<std::unique_ptr<FileAuditSink>> Open(
      const std::string& path);
  ~FileAuditSink() override;

  absl::Status Write(const AuditRecord& record) override;

 private:
  FileAuditSink(std::string path, std::FILE* file, bool owned)
      : path_(std::move(path)), file_(file), owned_(owned) {}

  const std::string path_;
  absl::Mutex mu_;
  std::FILE* file_ ABSL_GUARDED_BY(mu_);
  const bool owned_;
};

// Discards records (audit not configured).
class NullAuditSink final : public AuditSink {
 public:
  absl::Status Write(const AuditRecord&) override { return absl::OkStatus(); }
};

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_AUTH_AUDIT_H_
