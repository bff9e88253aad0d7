// Reading local input files for the CLI.
#ifndef TOKENBROKER_CLIENT_CLI_IO_H_
#define TOKENBROKER_CLIENT_CLI_IO_H_

#include <istream>
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

}  // namespace tokenbroker::cli

#endif  // TOKENBROKER_CLIENT_CLI_IO_H_
