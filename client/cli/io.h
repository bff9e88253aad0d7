// Reading local input files for the CLI.
#ifndef TOKENBROKER_CLIENT_CLI_IO_H_
#define TOKENBROKER_CLIENT_CLI_IO_H_

#include <fstream>
#include <istream>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"

namespace tokenbroker::cli {

// Returns the whole content of the file at `path`, as bytes. Errors:
// INVALID_ARGUMENT naming the file and the OS reason when it cannot be read
// (deliberately not NOT_FOUND, which the CLI reserves for unknown apps).
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Returns everything left on `in`, as bytes. Errors: INVALID_ARGUMENT when the
// stream fails before its end.
absl::StatusOr<std::string> ReadAll(std::istream& in);

// A file that receives a command's output (`call -o FILE`). Open() creates or
// truncates it; Commit() flushes and closes it. Destroyed without a
// successful Commit(), it removes the file, so that a command that failed
// leaves no partial output behind. Thread-compatible.
class OutputFile {
 public:
  // Errors: INVALID_ARGUMENT naming the file and the OS reason.
  static absl::StatusOr<std::unique_ptr<OutputFile>> Open(
      const std::string& path);
  ~OutputFile();

  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  std::ostream& stream() { return file_; }

  // Errors: DATA_LOSS naming the file when a write or the close failed (the
  // file is removed then too).
  absl::Status Commit();

 private:
  explicit OutputFile(std::string path);

  const std::string path_;
  std::ofstream file_;
  bool committed_ = false;
};

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_IO_H_
