#include "client/cli/io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

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

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Open(
    const std::string& path) {
  std::unique_ptr<OutputFile> output(new OutputFile(path));
  output->file_.open(path, std::ios::binary | std::ios::trunc);
  if (!output->file_) {
    output->committed_ = true;  // Nothing of ours to remove.
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return output;
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {}

OutputFile::~OutputFile() {
  if (committed_) return;
  file_.close();
  std::remove(path_.c_str());
}

absl::Status OutputFile::Commit() {
  file_.close();
  if (file_.fail()) {
    return absl::DataLossError(absl::StrCat("error writing ", path_));
  }
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace tokenbroker::cli
