#include "service/store/file_grant_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "service/common/crash_point.h"
#include "service/common/log.h"
#include "service/common/process_hardening.h"
#include "service/common/status_macros.h"
#include "service/common/token_fingerprint.h"

namespace tokenbroker {
namespace {

using Json = nlohmann::json;

constexpr int kFormat = 1;
constexpr absl::string_view kRecordSuffix = ".grant";
constexpr absl::string_view kTempMarker = ".tmp.";
// A record is well under a kilobyte; a file far larger is not one of ours.
constexpr size_t kMaxRecordFileBytes = 64 << 10;

std::string GrantAad(absl::string_view app, absl::string_view user_id) {
  const absl::string_view nul("\0", 1);
  return absl::StrCat("tokenbroker/grant/v1", nul, app, nul, user_id);
}

// Errors that may pass on their own (a full disk, a flaky device) are
// UNAVAILABLE; the rest (permissions, a read-only file system) need someone.
absl::Status IoError(absl::string_view action, absl::string_view path,
                     int error) {
  std::string message = absl::StrCat("grant store: cannot ", action, " ", path,
                                     ": ", std::strerror(error));
  switch (error) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EAGAIN:
    case EINTR:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

int WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// `<record file name>.tmp.<16 hex digits>`, as WriteFileLocked() names them;
// other files are not ours to remove.
bool IsTempFileName(absl::string_view name) {
  constexpr size_t kHashDigits = 64;
  auto is_hex = [](absl::string_view digits) {
    return std::all_of(digits.begin(), digits.end(), [](char c) {
      return absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
             (c >= 'a' && c <= 'f');
    });
  };
  const size_t prefix = kHashDigits + kRecordSuffix.size() + kTempMarker.size();
  return name.size() == prefix + 16 && is_hex(name.substr(0, kHashDigits)) &&
         name.substr(kHashDigits, prefix - kHashDigits) ==
             absl::StrCat(kRecordSuffix, kTempMarker) &&
         is_hex(name.substr(prefix));
}

absl::StatusOr<std::string> RandomSuffix() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError(
        "grant store: no random bytes for a temporary file name");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileGrantStore>> FileGrantStore::Open(
    std::string dir, std::shared_ptr<const KeyRing> keys) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("grant store: no directory given");
  }
  if (keys == nullptr) {
    return absl::InvalidArgumentError("grant store: no key ring given");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("create the directory", dir, errno);
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("open the directory", dir, errno);
  auto refuse = [fd](absl::Status status) {
    ::close(fd);
    return status;
  };
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    return refuse(IoError("inspect the directory", dir, errno));
  }
  if (info.st_uid != ::geteuid()) {
    return refuse(absl::FailedPreconditionError(absl::StrCat(
        "grant store directory ", dir, " is owned by uid ", info.st_uid,
        ", not by this process's uid ", ::geteuid(),
        ": chown it to the broker's user or use another directory")));
  }
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return refuse(absl::FailedPreconditionError(absl::StrFormat(
        "grant store directory %s is writable by group or others (mode "
        "%04o): chmod 700 it, or use a directory of its own inside the "
        "volume",
        dir, info.st_mode & 07777)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return refuse(absl::FailedPreconditionError(absl::StrCat(
          "grant store directory ", dir,
          " is in use by another store (another broker process?); each "
          "broker needs a directory of its own")));
    }
    return refuse(IoError("lock the directory", dir, errno));
  }
  return std::unique_ptr<FileGrantStore>(
      new FileGrantStore(std::move(dir), fd, std::move(keys)));
}

FileGrantStore::FileGrantStore(std::string dir, int dir_fd,
                               std::shared_ptr<const KeyRing> keys)
    : dir_(std::move(dir)), dir_fd_(dir_fd), keys_(std::move(keys)) {}

FileGrantStore::~FileGrantStore() { ::close(dir_fd_); }

std::string FileGrantStore::RecordFileName(absl::string_view app,
                                           absl::string_view user_id) {
  return absl::StrCat(
      Sha256Hex(absl::StrCat(app, absl::string_view("\0", 1), user_id)),
      kRecordSuffix);
}

std::string FileGrantStore::PathOf(absl::string_view name) const {
  return absl::StrCat(dir_, "/", name);
}

void FileGrantStore::SetWriteHookForTesting(WriteHook hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

absl::Status FileGrantStore::RunHook(WriteStep step) {
  return hook_ ? hook_(step) : absl::OkStatus();
}

absl::StatusOr<std::string> FileGrantStore::SealRecord(
    const UserGrant& grant) const {
  std::string plaintext = GrantRecordJson(grant);
  absl::StatusOr<std::string> sealed =
      keys_->Seal(plaintext, GrantAad(grant.app, grant.user_id));
  ClearSecret(&plaintext);
  if (!sealed.ok()) return sealed.status();
  Json file = {{"format", kFormat},
               {"app", grant.app},
               {"user_id", grant.user_id},
               {"sealed", *sealed}};
  return file.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::Status FileGrantStore::SyncDirLocked() {
  if (::fsync(dir_fd_) != 0) return IoError("fsync the directory", dir_, errno);
  return absl::OkStatus();
}

absl::Status FileGrantStore::WriteFileLocked(const std::string& name,
                                             absl::string_view content) {
  TB_ASSIGN_OR_RETURN(std::string suffix, RandomSuffix());
  const std::string temp = absl::StrCat(name, kTempMarker, suffix);
  int fd = ::openat(dir_fd_, temp.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int error = errno;
    return IoError("create", PathOf(temp), error);
  }
  // Until the rename, a failure removes the temporary file: the record keeps
  // its previous content and nothing is left behind.
  auto fail = [&](absl::Status status) {
    if (fd >= 0) ::close(fd);
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    return status;
  };
  // The creation mode went through the umask; make it exactly 0600.
  if (::fchmod(fd, 0600) != 0) {
    int error = errno;
    return fail(IoError("chmod", PathOf(temp), error));
  }
  if (int error = WriteAll(fd, content); error != 0) {
    return fail(IoError("write", PathOf(temp), error));
  }
  if (absl::Status status = RunHook(WriteStep::kTempWritten); !status.ok()) {
    return fail(status);
  }
  if (::fsync(fd) != 0) {
    int error = errno;
    return fail(IoError("fsync", PathOf(temp), error));
  }
  int closed = ::close(fd);
  int close_error = errno;
  fd = -1;
  if (closed != 0) return fail(IoError("close", PathOf(temp), close_error));
  if (absl::Status status = RunHook(WriteStep::kTempSynced); !status.ok()) {
    return fail(status);
  }
  CrashPoint("store.after_temp_write");
  if (::renameat(dir_fd_, temp.c_str(), dir_fd_, name.c_str()) != 0) {
    int error = errno;
    return fail(
        IoError(absl::StrCat("rename ", temp, " to"), PathOf(name), error));
  }
  // The record now holds the new content; only its durability is pending.
  TB_RETURN_IF_ERROR(RunHook(WriteStep::kRenamed));
  CrashPoint("store.after_rename");
  return SyncDirLocked();
}

absl::Status FileGrantStore::Put(const UserGrant& grant) {
  TB_RETURN_IF_ERROR(ValidateGrant(grant));
  TB_ASSIGN_OR_RETURN(std::string content, SealRecord(grant));
  const std::string name = RecordFileName(grant.app, grant.user_id);
  absl::MutexLock lock(&mu_);
  return WriteFileLocked(name, content);
}

absl::Status FileGrantStore::Delete(absl::string_view app,
                                    absl::string_view user_id) {
  TB_RETURN_IF_ERROR(ValidateGrantKey(app, user_id));
  const std::string name = RecordFileName(app, user_id);
  absl::MutexLock lock(&mu_);
  if (::unlinkat(dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) {
    int error = errno;
    return IoError("remove", PathOf(name), error);
  }
  return SyncDirLocked();
}

void FileGrantStore::LoadRecordLocked(const std::string& name,
                                      GrantStoreLoad* load) {
  const std::string path = PathOf(name);
  std::string app;
  std::string user_id;
  auto problem = [&](absl::string_view what) {
    std::string line = absl::StrCat(path, ": ", what);
    if (!app.empty() || !user_id.empty()) {
      absl::StrAppend(&line, " (app '", app, "', user '", user_id, "')");
    }
    load->problems.push_back(std::move(line));
  };

  int fd = ::openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int error = errno;
    problem(absl::StrCat("cannot open it: ", std::strerror(error)));
    return;
  }
  std::string content;
  struct stat info;
  bool read_ok = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) &&
                 static_cast<size_t>(info.st_size) <= kMaxRecordFileBytes;
  int read_error = 0;
  if (read_ok) {
    char buffer[4096];
    while (true) {
      ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        read_error = errno;
        break;
      }
      content.append(buffer, static_cast<size_t>(n));
      if (content.size() > kMaxRecordFileBytes) break;
    }
  }
  ::close(fd);
  if (!read_ok || content.size() > kMaxRecordFileBytes) {
    problem(absl::StrCat("not a regular file of at most ", kMaxRecordFileBytes,
                         " bytes"));
    return;
  }
  if (read_error != 0) {
    problem(absl::StrCat("cannot read it: ", std::strerror(read_error)));
    return;
  }
  if (content.empty()) {
    problem("it is empty");
    return;
  }
  // Never report the parser's message: it quotes the content.
  Json file = Json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (file.is_discarded() || !file.is_object()) {
    problem("it is not a JSON object (truncated or corrupt)");
    return;
  }
  auto format = file.find("format");
  if (format == file.end() || !format->is_number_integer() ||
      format->get<int64_t>() != kFormat) {
    problem("unknown or missing \"format\" (expected 1)");
    return;
  }
  auto app_field = file.find("app");
  auto user_field = file.find("user_id");
  auto sealed_field = file.find("sealed");
  if (app_field == file.end() || !app_field->is_string() ||
      user_field == file.end() || !user_field->is_string() ||
      sealed_field == file.end() || !sealed_field->is_string()) {
    problem("missing or non-string \"app\", \"user_id\" or \"sealed\"");
    return;
  }
  app = app_field->get<std::string>();
  user_id = user_field->get<std::string>();
  if (absl::Status status = ValidateGrantKey(app, user_id); !status.ok()) {
    problem(status.message());
    return;
  }
  if (RecordFileName(app, user_id) != name) {
    problem(
        "the file name is not the hash of its app and user (a record copied "
        "or renamed?)");
    return;
  }
  const std::string& sealed = sealed_field->get_ref<const std::string&>();
  absl::StatusOr<std::string> plaintext =
      keys_->Open(sealed, GrantAad(app, user_id));
  if (!plaintext.ok()) {
    problem(plaintext.status().message());
    return;
  }
  absl::StatusOr<UserGrant> parsed = ParseGrantRecordJson(&*plaintext);
  if (!parsed.ok()) {
    problem(parsed.status().message());
    return;
  }
  UserGrant grant = std::move(*parsed);
  ClearSecret(&parsed->refresh_token);  // a short string's move copies it
  if (grant.app != app || grant.user_id != user_id) {
    problem("its sealed record names another app or user");
    return;
  }
  if (!keys_->IsCurrent(sealed)) {
    std::string old_key = KeyRing::KeyIdOf(sealed).value_or("?");
    absl::StatusOr<std::string> resealed = SealRecord(grant);
    absl::Status status =
        resealed.ok() ? WriteFileLocked(name, *resealed) : resealed.status();
    if (status.ok()) {
      LogInfo("re-sealed a user grant with the current key",
              {{"app", app},
               {"user_id", user_id},
               {"file", path},
               {"old_key_id", old_key},
               {"key_id", keys_->current_key_id()}});
    } else {
      std::string warning = absl::StrCat(
          path, ": loaded, but could not be re-sealed with the current key '",
          keys_->current_key_id(), "' (keep key '", old_key,
          "' in the ring): ", status.message());
      LogWarning("could not re-seal a user grant with the current key",
                 {{"app", app},
                  {"user_id", user_id},
                  {"file", path},
                  {"old_key_id", old_key},
                  {"error", std::string(status.message())}});
      load->warnings.push_back(std::move(warning));
    }
  }
  load->grants.push_back(std::move(grant));
}

GrantStoreLoad FileGrantStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  GrantStoreLoad load;
  // A descriptor of its own: readdir moves the directory's offset.
  int list_fd = ::openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* listing = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
  if (listing == nullptr) {
    int error = errno;
    if (list_fd >= 0) ::close(list_fd);
    load.problems.push_back(
        IoError("list the directory", dir_, error).ToString());
    return load;
  }
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(listing)) {
    absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(listing);
  std::sort(names.begin(), names.end());

  bool removed = false;
  for (const std::string& name : names) {
    const std::string path = PathOf(name);
    if (IsTempFileName(name)) {
      // A write that crashed before its rename: the record it was replacing
      // is intact, the temporary file is of no use.
      if (::unlinkat(dir_fd_, name.c_str(), 0) != 0) {
        int error = errno;
        load.warnings.push_back(
            IoError("remove the leftover temporary file", path, error)
                .ToString());
        continue;
      }
      removed = true;
      LogWarning("removed a leftover temporary grant file", {{"file", path}});
      load.warnings.push_back(absl::StrCat(
          path, ": removed (a write interrupted before it completed)"));
    } else if (absl::EndsWith(name, kRecordSuffix)) {
      LoadRecordLocked(name, &load);
    } else {
      load.warnings.push_back(
          absl::StrCat(path, ": not a grant file; ignored"));
    }
  }
  if (removed) {
    if (absl::Status status = SyncDirLocked(); !status.ok()) {
      load.warnings.push_back(status.ToString());
    }
  }
  std::sort(load.grants.begin(), load.grants.end(),
            [](const UserGrant& a, const UserGrant& b) {
              return std::tie(a.app, a.user_id) < std::tie(b.app, b.user_id);
            });
  return load;
}

}  // namespace tokenbroker
