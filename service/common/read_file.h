#ifndef TOKENBROKER_SERVICE_COMMON_READ_FILE_H_
#define TOKENBROKER_SERVICE_COMMON_READ_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace tokenbroker {

// Reads the whole file at `path` (binary). Errors: NOT_FOUND if it does not
// exist, PERMISSION_DENIED if it cannot be opened for reading, INVALID_ARGUMENT
// if it is a directory or larger than `max_bytes`, INTERNAL for a read error;
// each message names the path and the reason, never the content. Callers add
// their own context ("listen.tls.cert_file: ...").
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes = size_t{64} << 20);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_READ_FILE_H_
