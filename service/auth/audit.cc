#include "service/auth/audit.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tokenbroker {

std::string AuditRecordToJson(const AuditRecord& record) {
  nlohmann::json json = {
      {"ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", record.time,
                              absl::UTCTimeZone())},
      {"event", record.event},
      {"caller", record.caller.empty() ? "-" : record.caller},
      {"auth", record.auth.empty() ? "none" : record.auth},
      {"principal", record.principal},
      {"peer", record.peer},
      {"rpc", record.rpc},
      {"decision", record.decision},
      {"reason", record.reason},
      {"grpc_status", record.grpc_status},
      {"latency_ms", absl::ToDoubleMilliseconds(record.latency)},
  };
  if (!record.app.empty()) json["app"] = record.app;
  if (!record.scopes.empty()) json["scopes"] = record.scopes;
  if (!record.http_method.empty()) json["method"] = record.http_method;
  if (!record.path.empty()) {
    // Query strings can carry personal data or credentials: never audited.
    json["path"] = record.path.substr(0, record.path.find('?'));
  }
  if (record.upstream_status != 0) {
    json["upstream_status"] = record.upstream_status;
  }
  if (!record.token_fingerprint.empty()) {
    json["token"] = record.token_fingerprint;
  }
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::unique_ptr<FileAuditSink>> FileAuditSink::Open(
    const std::string& path) {
  if (path == "-") {
    return std::unique_ptr<FileAuditSink>(
        new FileAuditSink(path, stdout, /*owned=*/false));
  }
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot open the audit log ", path, " for appending: ",
                     std::strerror(errno)));
  }
  return std::unique_ptr<FileAuditSink>(
      new FileAuditSink(path, file, /*owned=*/true));
}

FileAuditSink::~FileAuditSink() {
  absl::MutexLock lock(&mu_);
  if (owned_ && file_ != nullptr) std::fclose(file_);
}

absl::Status FileAuditSink::Write(const AuditRecord& record) {
  std::string line = AuditRecordToJson(record);
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() ||
      std::fflush(file_) != 0) {
    int error = errno;
    std::clearerr(file_);
    return absl::UnavailableError(absl::StrCat(
        "cannot write the audit log ", path_, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace tokenbroker
