// libFuzzer target: the YAML config parser and validator. Any input must
// give a Config or an INVALID_ARGUMENT status: no crash, no exception, no
// sanitizer report.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tokenbroker::Config> config =
      tokenbroker::ParseConfig(text, "fuzz.yaml");
  if (!config.ok() &&
      config.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();  // The contract: errors are INVALID_ARGUMENT.
  }
  return 0;
}
