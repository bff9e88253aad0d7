#include "service/auth/audit.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "service/common/log.h"
#include "service/common/thread_name.h"

namespace tokenbroker {
namespace {

// Printable ASCII that a JSON string holds as is.
bool NeedsNoEscape(unsigned char c) {
  return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

// Appends `text` as a JSON string. Control characters are escaped; bytes
// that are not valid UTF-8 become U+FFFD, so a record is always valid JSON.
// (Hand-written: building an nlohmann::json per record was most of the
// cost of a cache hit; see docs/performance.md.)
void AppendJsonString(std::string& out, absl::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    // Runs of plain printable ASCII (nearly every record is only that) are
    // copied at once.
    size_t plain = i;
    while (plain < text.size() &&
           NeedsNoEscape(static_cast<unsigned char>(text[plain]))) {
      ++plain;
    }
    out.append(text.data() + i, plain - i);
    i = plain;
    if (i == text.size()) break;
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out.append("\\u00");
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xf]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // A multi-byte UTF-8 sequence: copy it if well formed (no overlong
    // forms, no surrogates, at most U+10FFFF), else replace one byte.
    size_t length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    bool valid =
        length != 0 && c >= 0xc2 && c <= 0xf4 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (valid && length >= 3) {
      unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) ||
          (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) {
        valid = false;
      }
    }
    if (valid) {
      out.append(text.data() + i, length);
      i += length;
    } else {
      out.append("\xef\xbf\xbd");  // U+FFFD
      ++i;
    }
  }
  out.push_back('"');
}

void AppendField(std::string& out, absl::string_view name,
                 absl::string_view value) {
  out.append(",\"");
  out.append(name.data(), name.size());
  out.append("\":");
  AppendJsonString(out, value);
}

// Appends `time` as a JSON string in RFC 3339 UTC with milliseconds, e.g.
// "2026-11-27T09:43:50.123Z": what absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ")
// gives for years 1000 to 9999 (and four digits for 0 to 999, as RFC 3339
// wants), at a fraction of its cost.
void AppendTimestamp(std::string& out, absl::Time time) {
  absl::TimeZone::CivilInfo civil = absl::UTCTimeZone().At(time);
  const absl::CivilSecond& cs = civil.cs;
  if (cs.year() < 0 || cs.year() > 9999) {
    AppendJsonString(out, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time,
                                           absl::UTCTimeZone()));
    return;
  }
  char text[] = "\"0000-00-00T00:00:00.000Z\"";
  // Writes `value` zero-padded into the `width` digits ending before `end`.
  auto put = [&text](int end, int64_t value, int width) {
    for (int i = end - 1; i >= end - width; --i, value /= 10) {
      text[i] = static_cast<char>('0' + value % 10);
    }
  };
  put(5, cs.year(), 4);
  put(8, cs.month(), 2);
  put(11, cs.day(), 2);
  put(14, cs.hour(), 2);
  put(17, cs.minute(), 2);
  put(20, cs.second(), 2);
  put(24, absl::ToInt64Milliseconds(civil.subsecond), 3);
  out.append(text, sizeof(text) - 1);
}

}  // namespace

std::string AuditRecordToJson(const AuditRecord& record) {
  std::string out;
  AppendAuditRecordJson(record, out);
  return out;
}

void AppendAuditRecordJson(const AuditRecord& record, std::string& out) {
  out.reserve(out.size() + 384);
  out.append("{\"ts\":");
  AppendTimestamp(out, record.time);
  AppendField(out, "event", record.event);
  AppendField(out, "decision", record.decision);
  AppendField(out, "caller", record.caller.empty() ? "-" : record.caller);
  AppendField(out, "auth", record.auth.empty() ? "none" : record.auth);
  AppendField(out, "principal", record.principal);
  AppendField(out, "peer", record.peer);
  AppendField(out, "rpc", record.rpc);
  if (!record.app.empty()) AppendField(out, "app", record.app);
  if (!record.user.empty()) AppendField(out, "user", record.user);
  if (!record.scopes.empty()) {
    out.append(",\"scopes\":[");
    for (size_t i = 0; i < record.scopes.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendJsonString(out, record.scopes[i]);
    }
    out.push_back(']');
  }
  if (!record.http_method.empty()) {
    AppendField(out, "method", record.http_method);
  }
  if (!record.path.empty()) {
    // Query strings can carry personal data or credentials: never audited.
    absl::string_view path = record.path;
    AppendField(out, "path", path.substr(0, path.find('?')));
  }
  AppendField(out, "grpc_status", record.grpc_status);
  if (record.upstream_status != 0) {
    absl::StrAppend(&out, ",\"upstream_status\":", record.upstream_status);
  }
  absl::StrAppend(
      &out, ",\"latency_ms\":", absl::ToDoubleMilliseconds(record.latency));
  AppendField(out, "reason", record.reason);
  if (!record.token_fingerprint.empty()) {
    AppendField(out, "token", record.token_fingerprint);
  }
  out.push_back('}');
}

absl::StatusOr<std::unique_ptr<FileAuditSink>> FileAuditSink::Open(
    const std::string& path, bool synchronous) {
  std::FILE* file = stdout;
  if (path != "-") {
    file = std::fopen(path.c_str(), "a");
    if (file == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot open the audit log ", path,
                       " for appending: ", std::strerror(errno)));
    }
  }
  return std::unique_ptr<FileAuditSink>(
      new FileAuditSink(path, file, /*owned=*/path != "-", synchronous));
}

FileAuditSink::FileAuditSink(std::string path, std::FILE* file, bool owned,
                             bool synchronous)
    : path_(std::move(path)),
      file_(file),
      owned_(owned),
      synchronous_(synchronous) {
  if (!synchronous_) {
    writer_ = std::thread([this] {
      SetCurrentThreadName("tb-audit");
      WriterLoop();
    });
  }
}

FileAuditSink::~FileAuditSink() {
  if (writer_.joinable()) {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      wake_.Signal();
    }
    writer_.join();  // Writes what is still queued first.
  }
  absl::MutexLock lock(&io_mu_);
  if (owned_ && file_ != nullptr) std::fclose(file_);
}

absl::Status FileAuditSink::WriteAndFlush(absl::string_view lines) {
  absl::MutexLock lock(&io_mu_);
  if (std::fwrite(lines.data(), 1, lines.size(), file_) != lines.size() ||
      std::fflush(file_) != 0) {
    int error = errno;
    std::clearerr(file_);
    return absl::UnavailableError(absl::StrCat(
        "cannot write the audit log ", path_, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

absl::Status FileAuditSink::Write(const AuditRecord& record) {
  // Formatted outside the lock, into a buffer each thread reuses.
  thread_local std::string line;
  line.clear();
  AppendAuditRecordJson(record, line);
  line.push_back('\n');
  absl::Cleanup trim = [] {
    if (line.capacity() > kMaxLineBuffer) std::string().swap(line);
  };
  if (synchronous_) return WriteAndFlush(line);
  absl::MutexLock lock(&mu_);
  if (pending_.size() > kMaxPendingBytes) {
    return absl::UnavailableError(absl::StrCat(
        "the audit log ", path_, " is not keeping up; record dropped"));
  }
  // The writer is woken by the first record of a group and by a full
  // group; the records in between only append (no waiter to evaluate).
  bool first = pending_.empty();
  pending_.append(line);
  if (first || pending_.size() >= kGroupCommitBytes) wake_.Signal();
  return last_error_;
}

bool FileAuditSink::GroupComplete() const {
  return stopping_ || flush_waiters_ > 0 ||
         pending_.size() >= kGroupCommitBytes;
}

bool FileAuditSink::Idle() const { return pending_.empty() && !writing_; }

void FileAuditSink::Flush() {
  if (synchronous_) return;
  absl::MutexLock lock(&mu_);
  ++flush_waiters_;  // Ends the writer's wait for more of the group.
  wake_.Signal();
  mu_.Await(absl::Condition(this, &FileAuditSink::Idle));
  --flush_waiters_;
}

void FileAuditSink::WriterLoop() {
  std::string batch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (pending_.empty() && !stopping_) wake_.Wait(&mu_);
      if (pending_.empty() && stopping_) return;
      // Group commit: the records of the next moment join this one.
      absl::Time deadline = absl::Now() + kGroupCommitDelay;
      while (!GroupComplete() && !wake_.WaitWithDeadline(&mu_, deadline)) {
      }
      batch.swap(pending_);
      writing_ = true;
    }
    absl::Status written = WriteAndFlush(batch);
    if (!written.ok()) {
      LogError("audit records not written",
               {{"error", std::string(written.message())}});
    }
    batch.clear();
    absl::MutexLock lock(&mu_);
    last_error_ = written;
    writing_ = false;
  }
}

}  // namespace tokenbroker
