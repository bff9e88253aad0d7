#include "client/cli/io.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tokenbroker::cli {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("error reading ", path));
  }
  return content.str();
}

absl::StatusOr<std::string> ReadAll(std::istream& in) {
  std::string content((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError("error reading stdin");
  return content;
}

}  // namespace tokenbroker::cli
