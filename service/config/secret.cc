#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/config/config.h"

namespace tokenbroker {

absl::StatusOr<std::string> ResolveSecret(const SecretRef& ref) {
  if (!ref.file.empty()) {
    std::ifstream in(ref.file, std::ios::binary);
    if (!in) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read secret file ", ref.file,
                       ": check that it exists and is readable"));
    }
    std::ostringstream content;
    content << in.rdbuf();
    std::string value = content.str();
    // Files written by editors and `kubectl create secret --from-file` often
    // end in a newline that is not part of the secret.
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
      value.pop_back();
    }
    if (value.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("secret file ", ref.file, " is empty"));
    }
    return value;
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
