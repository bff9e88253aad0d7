#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "service/common/process_hardening.h"
#include "service/config/config.h"

namespace tokenbroker {
namespace {

// Larger files are refused: no client id or secret is anywhere near, and a
// fixed bound lets the value be read into one buffer allocated once.
constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// Reads the file at `path` straight into one buffer sized up front, so that
// no stream buffer or reallocation leaves a copy of the secret behind in
// freed memory. `error` is set to what went wrong.
bool ReadSecretFile(const std::string& path, std::string* value,
                    std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "check that it exists and is readable";
    return false;
  }
  value->assign(kMaxSecretFileBytes + 1, '\0');
  size_t size = 0;
  while (size < value->size()) {
    ssize_t n = read(fd, value->data() + size, value->size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      ClearSecret(value);
      *error = "check that it is a readable file";
      return false;
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  close(fd);
  if (size > kMaxSecretFileBytes) {
    ClearSecret(value);
    *error = absl::StrCat("it is larger than ", kMaxSecretFileBytes,
                          " bytes; it should hold only the value");
    return false;
  }
  value->resize(size);  // Shrinks in place: nothing is copied.
  return true;
}

}  // namespace

absl::StatusOr<std::string> ResolveSecret(const SecretRef& ref) {
  if (!ref.file.empty()) {
    std::string value;
    std::string error;
    if (!ReadSecretFile(ref.file, &value, &error)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read secret file ", ref.file, ": ", error));
    }
    // Files written by editors and `kubectl create secret --from-file` often
    // end in a newline that is not part of the secret.
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
      value.pop_back();
    }
    if (value.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("secret file ", ref.file, " is empty"));
    }
    return value;  // Moved (implicitly): the one buffer, not a copy.
  }
  if (!ref.env.empty()) {
    const char* value = std::getenv(ref.env.c_str());
    if (value == nullptr || *value == '\0') {
      return absl::FailedPreconditionError(absl::StrCat(
          "environment variable ", ref.env, " is not set or empty"));
    }
    return std::string(value);
  }
  if (!ref.value.empty()) return ref.value;
  return absl::FailedPreconditionError("no secret source configured");
}

}  // namespace tokenbroker
